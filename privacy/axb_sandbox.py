"""The sandbox number-masking provider: a real local HTTP server shaped like Alibaba
Cloud's Phone Number Protection (``Dyplsapi``).

Started by the server when no ``DOORSTEP_AXB_URL`` is set (like the SMS sandbox). It
checks what the real service checks and answers as it does:

- the request's key id, signature, timestamp (15 minutes) and nonce (used once);
- ``BindAxb``: ``PoolKey`` is ours, A and B are mainland mobiles and differ,
  ``Expiration`` (Beijing time) is in the future; it takes a free number X of the pool
  that neither A nor B already uses (one X serves many pairs, never the same party
  twice), and answers ``SecretBindDTO``; the same ``OutId`` answers the same binding;
  an empty pool is ``isv.NO_AVAILABLE_NUMBER``;
- ``UnbindSubscription``: ends it; one it does not have is ``isv.NO_BINDING``.

And what a phone network would do, for people and tests: ``POST /call`` with
``{"from": phone, "to": X}`` connects the caller to the other party of a live binding
(``{"Code": "OK", "connected_to": phone}``) or refuses (``isv.NO_BINDING``: X is not
bound to the caller, or the binding ended or expired). ``GET /calls`` lists the calls
made, newest first; ``GET /bindings`` the live bindings.

State lives in memory: a restarted sandbox has no bindings (the server binds again on
the order's next change; see docs/privacy.md).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from notifications.signing import Nonces, rpc_request_error
from privacy.axb import BEIJING
from privacy.rules import is_mobile

POOL_KEY = "FC100000sandbox"


@dataclass
class _Bound:
    subs_id: str
    secret_no: str
    a: str
    b: str
    expires: datetime
    out_id: str


def _answer(code: str, message: str, status: int = 200, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"Code": code, "Message": message, "RequestId": uuid.uuid4().hex.upper(), **extra},
        status_code=status,
    )


class AxbSandbox:
    """The provider's request handling, its number pool and its bindings."""

    def __init__(self, key_id: str, secret: str, *, pool_size: int = 50) -> None:
        self.key_id = key_id
        self.secret = secret
        self.pool = [f"1709000{n:04d}" for n in range(pool_size)]
        self.bound: dict[str, _Bound] = {}  # by SubsId
        self.by_out_id: dict[str, str] = {}
        self.calls: list[dict[str, Any]] = []
        self._nonces = Nonces()
        self.app = Starlette(
            routes=[
                Route("/", self.rpc, methods=["POST"]),
                Route("/call", self.call, methods=["POST"]),
                Route("/calls", self.list_calls, methods=["GET"]),
                Route("/bindings", self.list_bindings, methods=["GET"]),
            ]
        )

    async def close(self) -> None:
        """Nothing runs in the background."""

    def _expire(self, now: datetime) -> None:
        for subs_id, b in list(self.bound.items()):
            if b.expires <= now:
                self._drop(subs_id)

    def _drop(self, subs_id: str) -> None:
        b = self.bound.pop(subs_id)
        self.by_out_id.pop(b.out_id, None)

    async def rpc(self, request: Request) -> Response:
        """``POST /`` with ``Action=BindAxb`` or ``UnbindSubscription``."""
        form = dict(
            parse_qsl((await request.body()).decode(errors="replace"), keep_blank_values=True)
        )
        now = datetime.now(UTC)
        wrong = rpc_request_error(form, key_id=self.key_id, secret=self.secret, now=now)
        if wrong is not None:
            return _answer(*wrong)
        if not self._nonces.fresh(form.get("SignatureNonce", ""), time.monotonic()):
            return _answer("SignatureNonceUsed", "Specified signature nonce was used already.", 400)
        if form.get("PoolKey") != POOL_KEY:
            return _answer("isv.POOL_KEY_NOT_EXIST", f"no pool {form.get('PoolKey')!r}")
        self._expire(now)
        action = form.get("Action")
        if action == "BindAxb":
            return self._bind(form, now)
        if action == "UnbindSubscription":
            subs_id = form.get("SubsId", "")
            b = self.bound.get(subs_id)
            if b is None or b.secret_no != form.get("SecretNo"):
                return _answer("isv.NO_BINDING", f"no binding {subs_id!r} of that number")
            self._drop(subs_id)
            return _answer("OK", "OK", Chargeid=None)
        return _answer("InvalidAction.NotFound", f"no action {action!r} here", 404)

    def _bind(self, form: dict[str, str], now: datetime) -> Response:
        a, b = form.get("PhoneNoA", ""), form.get("PhoneNoB", "")
        if not is_mobile(a) or not is_mobile(b) or a == b:
            return _answer("isv.INVALID_PARAMETERS", "PhoneNoA and PhoneNoB: two mobile numbers")
        try:
            expires = datetime.strptime(form.get("Expiration", ""), "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return _answer("isv.INVALID_PARAMETERS", "Expiration is yyyy-MM-dd HH:mm:ss")
        expires = expires.replace(tzinfo=BEIJING)
        if expires <= now:
            return _answer("isv.INVALID_PARAMETERS", "Expiration is in the past")
        out_id = form.get("OutId", "")
        if out_id and out_id in self.by_out_id:  # a retried request: the same binding
            same = self.bound[self.by_out_id[out_id]]
            return _answer("OK", "OK", SecretBindDTO=self._dto(same))
        busy = {x.secret_no for x in self.bound.values() if {x.a, x.b} & {a, b}}
        free = next((n for n in self.pool if n not in busy), None)
        if free is None:
            return _answer("isv.NO_AVAILABLE_NUMBER", "no number of the pool is free for them")
        bound = _Bound(uuid.uuid4().hex[:16], free, a, b, expires, out_id)
        self.bound[bound.subs_id] = bound
        if out_id:
            self.by_out_id[out_id] = bound.subs_id
        return _answer("OK", "OK", SecretBindDTO=self._dto(bound))

    @staticmethod
    def _dto(b: _Bound) -> dict[str, str]:
        return {"SubsId": b.subs_id, "SecretNo": b.secret_no, "Extension": ""}

    async def call(self, request: Request) -> Response:
        """``POST /call`` ``{"from": phone, "to": X}``: whom the network connects."""
        body: Any = None
        with contextlib.suppress(ValueError):
            body = await request.json()
        if not isinstance(body, dict) or not all(
            isinstance(body.get(k), str) for k in ("from", "to")
        ):
            return _answer("isv.INVALID_PARAMETERS", 'send {"from": phone, "to": number}', 400)
        caller, number = body["from"], body["to"]
        self._expire(datetime.now(UTC))
        target = None
        for b in self.bound.values():
            if b.secret_no == number and caller in (b.a, b.b):
                target = b.b if caller == b.a else b.a
                break
        self.calls.insert(
            0, {"from": caller, "to": number, "connected_to": target, "at": time.time()}
        )
        del self.calls[500:]
        if target is None:
            return _answer("isv.NO_BINDING", f"{number} is not bound to {caller}")
        return _answer("OK", "OK", connected_to=target)

    async def list_calls(self, request: Request) -> Response:
        """``GET /calls``: the calls made, newest first."""
        return JSONResponse(self.calls)

    async def list_bindings(self, request: Request) -> Response:
        """``GET /bindings``: the live bindings (numbers masked to their last 4 digits)."""
        self._expire(datetime.now(UTC))
        return JSONResponse(
            [
                {
                    "subs_id": b.subs_id,
                    "secret_no": b.secret_no,
                    "a": "*******" + b.a[-4:],
                    "b": "*******" + b.b[-4:],
                    "expires": b.expires.isoformat(),
                }
                for b in self.bound.values()
            ]
        )
