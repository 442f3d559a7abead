"""The sandbox identity-verification and background-check provider: a real local HTTP
server shaped like Tencent Cloud's API 3.0 (FaceID ``ImageRecognition``; and
``CheckCriminalRecord``, see :mod:`onboarding.provider`).

Started by the server with the stores (like the SMS sandbox), on a free port of
127.0.0.1. It checks what the real API checks and answers as it does: the
``Authorization`` header (TC3-HMAC-SHA256 over the body and the host;
``AuthFailure.SignatureFailure``, ``AuthFailure.SecretIdNotFound``), the timestamp
(5 minutes; ``AuthFailure.SignatureExpire``), the action (``InvalidAction``), the
parameters (``InvalidParameterValue``, a face that is no JPEG/PNG image). Then:

- identity: ``Result: "Success"`` with ``Sim`` 92.5 — unless the ``mismatch`` fault is
  on or the name holds 不符 ("does not match"): ``Result: "-1"``, ``Sim`` 12.0,
  ``姓名和身份证号不一致``;
- background: ``Result: "Clear"`` — unless the ``record`` fault is on or the name holds
  有案 ("has a record"): ``Result: "Record"``;
- the ``timeout`` fault holds every answer for ``hang_s`` (longer than a client waits).

Faults are switched by tests on the object (``faults``) or over HTTP:
``PUT /_sandbox/faults {"mismatch": true, "timeout": false, "record": false}``.
``GET /_sandbox/calls`` lists the calls taken (newest first).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from onboarding import signing

log = logging.getLogger("doorstep.verify_sandbox")
FAULTS = ("mismatch", "timeout", "record")


@dataclass
class SandboxConfig:
    """The sandbox's account and how long the timeout fault holds an answer."""

    secret_id: str
    secret_key: str
    hang_s: float = 30.0
    faults: set[str] = field(default_factory=set)


def _error(code: str, message: str, status: int = 200) -> JSONResponse:
    # Tencent Cloud answers errors with HTTP 200 and an Error object.
    return JSONResponse(
        {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": _rid()}},
        status_code=status,
    )


def _rid() -> str:
    return str(uuid.uuid4())


def _is_image(data: bytes) -> bool:
    return data.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"))


class SandboxProvider:
    """Request handling: signature, parameters, answers."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.calls: list[dict[str, Any]] = []
        self.app = Starlette(
            routes=[
                Route("/", self.api, methods=["POST"]),
                Route("/_sandbox/faults", self.set_faults, methods=["PUT", "GET"]),
                Route("/_sandbox/calls", self.list_calls, methods=["GET"]),
            ]
        )

    @property
    def faults(self) -> set[str]:
        """The faults switched on."""
        return self.config.faults

    async def set_faults(self, request: Request) -> Response:
        """``PUT /_sandbox/faults``: switch faults on or off; GET shows them."""
        if request.method == "PUT":
            try:
                wanted = orjson.loads(await request.body())
            except orjson.JSONDecodeError:
                return JSONResponse({"error": "a JSON object of fault: bool"}, status_code=400)
            if not isinstance(wanted, dict) or set(wanted) - set(FAULTS):
                return JSONResponse({"error": f"faults are {', '.join(FAULTS)}"}, status_code=400)
            for name, on in wanted.items():
                (self.faults.add if on else self.faults.discard)(name)
        return JSONResponse({f: f in self.faults for f in FAULTS})

    async def list_calls(self, request: Request) -> Response:
        """``GET /_sandbox/calls``: what was asked, newest first (no photos)."""
        return JSONResponse(list(reversed(self.calls[-100:])))

    def _check_signature(self, request: Request, body: bytes) -> JSONResponse | None:
        auth = signing.parse_authorization(request.headers.get("authorization", ""))
        if not auth:
            return _error("AuthFailure.InvalidAuthorization", "Authorization header is invalid.")
        if auth["secret_id"] != self.config.secret_id:
            return _error("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
        try:
            ts = int(request.headers.get("x-tc-timestamp", ""))
        except ValueError:
            return _error("MissingParameter", "X-TC-Timestamp is required.")
        if abs(time.time() - ts) > signing.SKEW_S:
            return _error("AuthFailure.SignatureExpire", "Signature expired.")
        service = auth["scope"].split("/")[1] if auth["scope"].count("/") >= 2 else ""
        expected = signing.signature(
            secret_key=self.config.secret_key,
            service=service,
            host=request.headers.get("host", ""),
            body=body,
            timestamp=ts,
        )
        if not _hmac_equal(expected, auth["signature"]):
            return _error(
                "AuthFailure.SignatureFailure", "The provided credentials could not be validated."
            )
        return None

    async def api(self, request: Request) -> Response:
        """``POST /`` with ``X-TC-Action``."""
        body = await request.body()
        refused = self._check_signature(request, body)
        if refused is not None:
            return refused
        try:
            params = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error("InvalidParameter", "The body is not JSON.")
        if not isinstance(params, dict):
            return _error("InvalidParameter", "The body is not a JSON object.")
        action = request.headers.get("x-tc-action", "")
        name = str(params.get("Name", ""))
        id_card = str(params.get("IdCard", ""))
        if not name or len(id_card) != 18:
            return _error("InvalidParameterValue", "Name and an 18-character IdCard are required.")
        self.calls.append({"action": action, "name": name, "id_card": id_card[:4] + "…"})
        if "timeout" in self.faults:
            await asyncio.sleep(self.config.hang_s)
        if action == "ImageRecognition":
            try:
                image = base64.b64decode(str(params.get("ImageBase64", "")), validate=True)
            except (binascii.Error, ValueError):
                image = b""
            if not _is_image(image):
                return _error(
                    "InvalidParameterValue.ImageDecodeFailed", "The image cannot be decoded."
                )
            mismatch = "mismatch" in self.faults or "不符" in name
            log.info("sandbox identity check %s: %s", id_card[:4], "mismatch" if mismatch else "ok")
            if mismatch:
                return JSONResponse(
                    {
                        "Response": {
                            "Sim": 12.0,
                            "Result": "-1",
                            "Description": "姓名和身份证号不一致",
                            "RequestId": _rid(),
                        }
                    }
                )
            return JSONResponse(
                {
                    "Response": {
                        "Sim": 92.5,
                        "Result": "Success",
                        "Description": "成功",
                        "RequestId": _rid(),
                    }
                }
            )
        if action == "CheckCriminalRecord":
            record = "record" in self.faults or "有案" in name
            return JSONResponse(
                {
                    "Response": {
                        "Result": "Record" if record else "Clear",
                        "Description": "有违法犯罪记录" if record else "无违法犯罪记录",
                        "RequestId": _rid(),
                    }
                }
            )
        return _error("InvalidAction", f"The action {action!r} is not found.")


def _hmac_equal(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signals to the process's own server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class SandboxServer:
    """The provider on a real uvicorn server, in this process."""

    def __init__(self, provider: SandboxProvider, port: int) -> None:
        self.provider = provider
        self.port = port
        self.url = f"http://127.0.0.1:{port}/"
        self._server = _QuietServer(
            uvicorn.Config(
                provider.app,
                host="127.0.0.1",
                port=port,
                log_level="warning",
                lifespan="off",
                timeout_graceful_shutdown=2,
            )
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Serve, and return once it listens."""
        self._task = asyncio.create_task(self._server.serve(), name="verify-sandbox")
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.02)
        log.info("identity-verification sandbox at %s", self.url)

    async def stop(self) -> None:
        """Stop serving (a hanging answer is cut)."""
        self._server.should_exit = True
        self._server.force_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
