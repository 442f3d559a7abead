"""The sandbox SMS gateway: a real local HTTP server shaped like Alibaba Cloud SMS.

Started by the server when no ``DOORSTEP_SMS_URL`` is set (like the embedded stores),
on a free port of 127.0.0.1. It checks what a real gateway checks and answers as it
does (``{"Code": "OK", "BizId": …}`` or an error code):

- the request's signature (HMAC-SHA1, :func:`notifications.signing.request_signature`),
  its timestamp (15 minutes) and its nonce (used once): ``SignatureDoesNotMatch``,
  ``InvalidTimeStamp.Expired``, ``SignatureNonceUsed``, ``InvalidAccessKeyId.NotFound``;
- the template code is registered and the parameters are exactly its own:
  ``isv.SMS_TEMPLATE_ILLEGAL``, ``isv.TEMPLATE_PARAMS_ILLEGAL``; the phone is a
  mainland mobile number: ``isv.MOBILE_NUMBER_ILLEGAL``;
- per-phone limits (``per_minute``, ``per_hour``): ``isv.BUSINESS_LIMIT_CONTROL``;
- ``OutId`` makes a retried request idempotent: the same BizId, nothing sent again.

What it "sent" is kept in ``sms_sandbox_outbox`` (read it with ``GET /outbox`` on the
sandbox, or ``doorstep sms-outbox``). A moment after a message is taken, the sandbox
posts its delivery receipt to the callback URL (``/v1/sms/receipts`` of our server),
signed (:func:`notifications.signing.receipt_signature`), retried until answered 2xx.
Phones ending in ``0000`` are "switched off": their receipts say undelivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import asyncpg
import httpx
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from notifications.signing import Nonces, receipt_signature, rpc_request_error
from notifications.templates import SMS_TEMPLATES, render_sms

log = logging.getLogger("doorstep.sms_sandbox")


@dataclass
class SandboxConfig:
    """The sandbox's account (key id and secret), limits and where receipts go."""

    key_id: str
    secret: str
    callback_url: str | None = None
    per_minute: int = 5
    per_hour: int = 40
    receipt_delay_s: float = 0.2
    templates: dict[str, str] = field(default_factory=lambda: dict(SMS_TEMPLATES))


def _answer(code: str, message: str, status: int = 200, **extra: str) -> JSONResponse:
    return JSONResponse(
        {"Code": code, "Message": message, "RequestId": uuid.uuid4().hex.upper(), **extra},
        status_code=status,
    )


class SandboxGateway:
    """The gateway's request handling and its receipts."""

    def __init__(self, pool: asyncpg.Pool[Any], config: SandboxConfig) -> None:
        self.pool = pool
        self.config = config
        self._nonces = Nonces()
        self._tasks: set[asyncio.Task[None]] = set()
        self._http = httpx.AsyncClient(timeout=5.0)
        self.app = Starlette(
            routes=[
                Route("/", self.send_sms, methods=["POST"]),
                Route("/outbox", self.outbox, methods=["GET"]),
            ]
        )

    async def close(self) -> None:
        """Stop sending receipts."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._http.aclose()

    async def send_sms(self, request: Request) -> Response:
        """``POST /`` with ``Action=SendSms``."""
        # application/x-www-form-urlencoded, as the SDKs send it
        form = dict(
            parse_qsl((await request.body()).decode(errors="replace"), keep_blank_values=True)
        )
        if form.get("Action") != "SendSms":
            return _answer("InvalidAction.NotFound", "only SendSms is offered here", 404)
        wrong = rpc_request_error(
            form, key_id=self.config.key_id, secret=self.config.secret, now=datetime.now(UTC)
        )
        if wrong is not None:
            return _answer(*wrong)
        if not self._nonces.fresh(form.get("SignatureNonce", ""), time.monotonic()):
            return _answer("SignatureNonceUsed", "Specified signature nonce was used already.", 400)
        phone = form.get("PhoneNumbers", "")
        if not (len(phone) == 11 and phone.isdigit() and phone.startswith("1")):
            return _answer("isv.MOBILE_NUMBER_ILLEGAL", f"invalid mobile number {phone!r}")
        code = form.get("TemplateCode", "")
        if code not in self.config.templates:
            return _answer("isv.SMS_TEMPLATE_ILLEGAL", f"template {code!r} is not registered")
        try:
            params = orjson.loads(form.get("TemplateParam", "{}"))
            if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
                raise ValueError
            text = render_sms(code, params)
        except (ValueError, KeyError):
            return _answer("isv.TEMPLATE_PARAMS_ILLEGAL", "TemplateParam does not fit the template")
        out_id = form.get("OutId", "")
        if not out_id:
            return _answer("isv.INVALID_PARAMETERS", "OutId is required by this sandbox")
        return await self._take(phone, form.get("SignName", ""), code, params, text, out_id)

    async def _take(
        self, phone: str, sign: str, code: str, params: dict[str, str], text: str, out_id: str
    ) -> Response:
        now = datetime.now(UTC)
        async with self.pool.acquire() as conn, conn.transaction():
            # One phone's requests one at a time, so its limits are counted exactly.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('sms-sandbox:' || $1))", phone
            )
            known = await conn.fetchval(
                "SELECT biz_id FROM sms_sandbox_outbox WHERE out_id = $1", out_id
            )
            if known is not None:
                return _answer("OK", "OK", BizId=str(known))
            counts = await conn.fetchrow(
                "SELECT count(*) FILTER (WHERE received_at > $2), count(*) FROM sms_sandbox_outbox "
                "WHERE phone = $1 AND received_at > $3",
                phone,
                now - timedelta(minutes=1),
                now - timedelta(hours=1),
            )
            assert counts is not None
            minute, hour = counts[0], counts[1]
            if minute >= self.config.per_minute or hour >= self.config.per_hour:
                return _answer(
                    "isv.BUSINESS_LIMIT_CONTROL",
                    f"触发号码天级流控 Permits:{self.config.per_minute}/min, {self.config.per_hour}/h",
                )
            biz_id = f"{int(now.timestamp() * 1000)}^{uuid.uuid4().int % 10**10:010d}"
            await conn.execute(
                "INSERT INTO sms_sandbox_outbox (biz_id, out_id, phone, sign_name, template_code, "
                "params, text, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                biz_id,
                out_id,
                phone,
                sign,
                code,
                params,
                f"【{sign}】{text}",
                now,
            )
        log.info("sandbox SMS to %s: 【%s】%s", phone, sign, text)
        if self.config.callback_url:
            task = asyncio.create_task(self._report(biz_id, out_id, phone, now))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return _answer("OK", "OK", BizId=biz_id)

    async def _report(self, biz_id: str, out_id: str, phone: str, sent: datetime) -> None:
        """Post the delivery receipt, retrying until the callback answers 2xx."""
        await asyncio.sleep(self.config.receipt_delay_s)
        delivered = not phone.endswith("0000")
        body = orjson.dumps(
            [
                {
                    "phone_number": phone,
                    "send_time": sent.strftime("%Y-%m-%d %H:%M:%S"),
                    "report_time": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                    "success": delivered,
                    "err_code": "DELIVERED" if delivered else "MOBILE_NOT_ON_SERVICE",
                    "err_msg": "用户接收成功" if delivered else "用户关机",
                    "sms_size": "1",
                    "biz_id": biz_id,
                    "out_id": out_id,
                }
            ]
        )
        delay = 0.5
        for _ in range(8):
            ts = int(time.time())
            try:
                r = await self._http.post(
                    str(self.config.callback_url),
                    content=body,
                    headers={
                        "content-type": "application/json",
                        "x-sms-timestamp": str(ts),
                        "x-sms-signature": receipt_signature(self.config.secret, ts, body),
                    },
                )
                if r.is_success:
                    await self.pool.execute(
                        "UPDATE sms_sandbox_outbox SET reported_at = now() WHERE biz_id = $1",
                        biz_id,
                    )
                    return
            except (httpx.HTTPError, OSError, asyncpg.PostgresError):
                pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
        log.warning("sandbox SMS %s: the receipt was never taken", biz_id)

    async def outbox(self, request: Request) -> Response:
        """``GET /outbox?phone=&limit=``: what the sandbox sent, newest first."""
        phone = request.query_params.get("phone")
        try:
            limit = max(1, min(500, int(request.query_params.get("limit", "50"))))
        except ValueError:
            return _answer("InvalidParameter", "limit must be an integer", 400)
        rows = await self.pool.fetch(
            "SELECT biz_id, out_id, phone, template_code, params, text, received_at, reported_at "
            "FROM sms_sandbox_outbox WHERE $1::text IS NULL OR phone = $1 "
            "ORDER BY received_at DESC LIMIT $2",
            phone,
            limit,
        )
        return Response(orjson.dumps([dict(r) for r in rows]), media_type="application/json")


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signals to the process's own server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class SandboxServer:
    """A sandbox gateway (anything with a Starlette ``app`` and an async ``close``) on a
    real uvicorn server, in this process."""

    def __init__(self, gateway: Any, port: int, *, name: str = "SMS sandbox gateway") -> None:
        self.gateway = gateway
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}/"
        self._server = _QuietServer(
            uvicorn.Config(
                gateway.app,
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
        self._task = asyncio.create_task(self._server.serve(), name=self.name)
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.02)
        log.info("%s at %s", self.name, self.url)

    async def stop(self) -> None:
        """Stop serving and sending receipts."""
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.gateway.close()
