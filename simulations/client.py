"""The simulator's way into the server: its public HTTP API and websockets, nothing else.

One :class:`Api` per run (a pooled ``httpx.AsyncClient``); one :class:`Session` per
account, which refreshes its access token before it expires (refresh tokens rotate, so a
session refreshes under a lock: a rotated token presented twice would revoke the login).
Every response is counted by method, route template and status for the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

_ID = re.compile(r"/\d+(?=/|$)")


class ApiError(Exception):
    """The server answered with an error status."""

    def __init__(self, method: str, path: str, status: int, body: bytes) -> None:
        self.status = status
        self.code = ""
        with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError):
            self.code = str(orjson.loads(body)["error"]["code"])
        super().__init__(f"{method} {path}: {status} {body[:300].decode(errors='replace')}")


def route_of(path: str) -> str:
    """``/v1/orders/12/start`` → ``/v1/orders/{id}/start`` (for counting)."""
    return _ID.sub("/{id}", path.split("?", 1)[0])


@dataclass
class Api:
    """The server at ``base_url`` (``http://host:port``)."""

    base_url: str
    timeout_s: float = 30.0
    calls: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    http: httpx.AsyncClient = field(init=False)
    metrics_session: Session | None = None  # who reads /metrics (it needs an admin)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=self.timeout_s,
            # Idle connections are dropped after 2 s, before uvicorn's 5-s keep-alive closes
            # them: at the same 5 s a request could be sent on a connection the server was
            # closing (httpx ReadError; it failed a sweep's set-up on a busy machine).
            limits=httpx.Limits(
                max_connections=64, max_keepalive_connections=32, keepalive_expiry=2.0
            ),
        )

    @property
    def ws_base(self) -> str:
        """``ws://host:port`` for the same server."""
        return "ws" + self.base_url.removeprefix("http")

    async def close(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        session: Session | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Send a request; its JSON body (None for 204), or :class:`ApiError`."""
        h = dict(headers or {})
        if session is not None:
            h.update(await session.auth())
        content = orjson.dumps(json) if json is not None else None
        if content is not None:
            h["content-type"] = "application/json"
        r = await self.http.request(method, path, content=content, headers=h)
        self.calls[(method, route_of(path), r.status_code)] += 1
        if r.status_code >= 400:
            raise ApiError(method, path, r.status_code, r.content)
        return orjson.loads(r.content) if r.content else None

    async def text(self, path: str) -> str:
        """A plain-text GET (``/metrics``: as :attr:`metrics_session`, an admin)."""
        headers = await self.metrics_session.auth() if self.metrics_session else {}
        r = await self.http.get(path, headers=headers)
        r.raise_for_status()
        return r.text

    async def login(self, phone: str, password: str) -> Session:
        """Log in; a session that keeps its token fresh."""
        body = await self.call(
            "POST", "/v1/auth/login", json={"phone": phone, "password": password}
        )
        session = Session(self, phone)
        session.take(body)
        return session

    async def connect(self, path: str, session: Session | None = None) -> ClientConnection:
        """A websocket to ``path`` (with the session's token, if any)."""
        headers = await session.auth() if session is not None else {}
        return await connect(
            self.ws_base + path,
            additional_headers=headers,
            compression=None,
            open_timeout=30,
            max_size=2**22,
            ping_interval=20,
            ping_timeout=60,
        )


@dataclass
class Session:
    """One logged-in account."""

    api: Api
    phone: str
    user_id: int = 0
    roles: tuple[str, ...] = ()
    access: str = ""
    refresh_token: str = ""
    renew_at: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def take(self, body: dict[str, Any]) -> None:
        """Keep a token pair from login or refresh."""
        self.access = body["access_token"]
        self.refresh_token = body["refresh_token"]
        self.renew_at = time.monotonic() + 0.7 * float(body["expires_in"])
        user = body.get("user") or {}
        self.user_id = int(user.get("id", self.user_id))
        self.roles = tuple(user.get("roles", self.roles))

    async def auth(self) -> dict[str, str]:
        """The Authorization header, refreshing the token first if it is getting old."""
        if time.monotonic() >= self.renew_at:
            async with self.lock:
                if time.monotonic() >= self.renew_at:
                    body = await self.api.call(
                        "POST", "/v1/auth/refresh", json={"refresh_token": self.refresh_token}
                    )
                    self.take(body)
        return {"Authorization": f"Bearer {self.access}"}


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text → ``{"name{labels}": value}`` (comments skipped)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        try:
            out[key] = float(value)
        except ValueError:
            continue
    return out


def metric(values: dict[str, float], name: str, **labels: str) -> float:
    """One sample (0 if absent); labels in any order."""
    if not labels:
        return values.get(name, 0.0)
    want = {f'{k}="{v}"' for k, v in labels.items()}
    for key, value in values.items():
        if key.startswith(name + "{") and want <= set(key[len(name) + 1 : -1].split(",")):
            return value
    return 0.0


def buckets(values: dict[str, float], name: str, **labels: str) -> list[tuple[float, float]]:
    """A histogram's cumulative ``(le, count)`` buckets, ``+Inf`` last."""
    out = []
    want = {f'{k}="{v}"' for k, v in labels.items()}
    prefix = name + "_bucket{"
    for key, value in values.items():
        if not key.startswith(prefix):
            continue
        parts = key[len(prefix) : -1].split(",")
        le = next((p for p in parts if p.startswith("le=")), None)
        if le is None or not want <= set(parts):
            continue
        out.append((float(le[4:-1]), value))
    return sorted(out)
