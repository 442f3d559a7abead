"""The Alipay sandbox and a merchant's notification endpoint, both real local HTTP servers,
for the Alipay tests (no PostgreSQL or Redis needed)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from doorstep.embedded import free_port
from payments.alipay import AlipayConfig, AlipayProvider
from payments.alipay_sandbox import AlipaySandbox, AlipaySandboxConfig, AlipaySandboxServer
from payments.alipay_sign import private_pem, public_pem
from payments.errors import NotificationRejected
from payments.providers import Notice

APP_ID = "2021000000000077"
SELLER_ID = "2088000000000077"
# Alipay's schedule (4m, 10m, 10m, 1h, 2h, 6h, 15h) scaled down, the same shape.
FAST_SCHEDULE = (0.04, 0.1, 0.1, 0.2, 0.2, 0.2, 0.2)


@dataclass
class Keys:
    """The app's key pair and the sandbox Alipay's key pair."""

    app: rsa.RSAPrivateKey
    alipay: rsa.RSAPrivateKey


def make_keys() -> Keys:
    """Two fresh 2048-bit key pairs."""
    return Keys(
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


@dataclass
class Merchant:
    """Our side of the notifications: verifies each with the adapter and answers as told.

    ``answers[out_trade_no]`` is a list of bodies to answer first (``"fail"``, ``"500"``
    for a 500, ``"SUCCESS"`` …); then ``success`` for a verified notification and
    ``fail`` for a rejected one. Every POST is kept, with what came of it.
    """

    provider: AlipayProvider | None = None
    received: list[dict[str, str]] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    answers: dict[str, list[str]] = field(default_factory=dict)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def endpoint(self, request: Request) -> Response:
        """``POST /notify``: the merchant's notify_url."""
        body = await request.body()
        params = dict(parse_qsl(body.decode(), keep_blank_values=True))
        assert self.provider is not None
        queued = self.answers.get(params.get("out_trade_no", ""), [])
        async with self.arrived:
            self.received.append(params)
            self.arrived.notify_all()
        if queued:
            answer = queued.pop(0)
            if answer == "500":
                return Response("boom", status_code=500)
            return Response(answer, media_type="text/plain")
        try:
            notice = self.provider.parse_notification(dict(request.headers), body)
        except NotificationRejected as e:
            self.rejected.append(str(e))
            ack = self.provider.acknowledge(False, str(e))
        else:
            self.notices.append(notice)
            ack = self.provider.acknowledge(True)
        return Response(ack.body, status_code=ack.status, media_type=ack.content_type)

    def for_trade(self, out_trade_no: str) -> list[dict[str, str]]:
        """The POSTs about one trade, in arrival order."""
        return [p for p in self.received if p.get("out_trade_no") == out_trade_no]

    async def wait_for(self, out_trade_no: str, count: int, timeout_s: float = 60.0) -> None:
        """Until ``count`` POSTs about the trade arrived."""
        async with asyncio.timeout(timeout_s), self.arrived:
            await self.arrived.wait_for(lambda: len(self.for_trade(out_trade_no)) >= count)


class _Quiet(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Live:
    """A running sandbox, its adapter and the merchant's endpoint."""

    sandbox: AlipaySandbox
    provider: AlipayProvider
    merchant: Merchant
    notify_url: str
    keys: Keys


@contextlib.asynccontextmanager
async def live_alipay(keys: Keys, *, timeout_s: float = 8.0) -> AsyncIterator[Live]:
    """Start the sandbox and the merchant's endpoint on free ports; stop both after."""
    sandbox = AlipaySandbox(
        AlipaySandboxConfig(
            app_id=APP_ID,
            seller_id=SELLER_ID,
            app_public_key=keys.app.public_key(),
            alipay_private_key=keys.alipay,
            retry_schedule_s=FAST_SCHEDULE,
            # Generous, so that a busy machine's slow answer is not taken for a fault.
            notify_timeout_s=15.0,
            timeout_s=timeout_s,  # the timeout fault: longer than the adapter waits
            hold_s=30.0,
        )
    )
    server = AlipaySandboxServer(sandbox, free_port())
    await server.start()
    provider = AlipayProvider(
        AlipayConfig(
            gateway_url=sandbox.gateway_url,
            app_id=APP_ID,
            seller_id=SELLER_ID,
            app_private_key=private_pem(keys.app),
            alipay_public_key=public_pem(keys.alipay.public_key()),
            timeout_s=4.0,
        )
    )
    merchant = Merchant(provider)
    port = free_port()
    receiver = _Quiet(
        uvicorn.Config(
            Starlette(routes=[Route("/notify", merchant.endpoint, methods=["POST"])]),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
    )
    task = asyncio.create_task(receiver.serve())
    while not receiver.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.02)
    try:
        yield Live(sandbox, provider, merchant, f"http://127.0.0.1:{port}/notify", keys)
    finally:
        await server.stop()
        receiver.should_exit = True
        await task
        await provider.aclose()
