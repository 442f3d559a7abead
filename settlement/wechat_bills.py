"""WeChat Pay's daily trade bill over the wire: the sandbox side and our client.

- :func:`mount` adds WeChat Pay v3's bill API to the payments sandbox
  (``payments.wechat_sandbox.WeChatSandbox``) without changing it:
  ``GET /v3/bill/tradebill?bill_date=YYYY-MM-DD&bill_type=ALL`` (signed request, signed
  answer ``{"hash_type": "SHA1", "hash_value", "download_url"}``), then
  ``GET /v3/billdownload/file?token=…`` (signed request; the file itself, unsigned, as
  WeChat serves it). The bill is written by :mod:`settlement.tradebill` from what the
  sandbox holds as paid and refunded on that local day — the provider's side, never our
  ledger — so a payment whose notification we lost shows as a difference.
- :class:`WeChatBills` downloads it and checks the SHA-1 (a :class:`bills.BillSource`).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterable
from datetime import date, datetime
from zoneinfo import ZoneInfo

import httpx
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from doorstep.settings import Settings
from payments import gateway as payments_gateway
from payments import wechat_wire as wire
from payments.wechat import WeChatConfig
from payments.wechat_sandbox import SandboxTrade, WeChatSandbox, WeChatSandboxServer
from settlement import tradebill
from settlement.errors import BillUnavailable

CHINA = ZoneInfo("Asia/Shanghai")
FEE_RATE_PER_MILLE = 6  # the sandbox charges 0.6 %, as WeChat does for most merchants


def bill_rows(trades: Iterable[SandboxTrade], day: date, mchid: str) -> list[tradebill.BillRow]:
    """The bill's rows for a local day: payments that succeeded that day, refunds that did."""
    rows = []
    for t in trades:
        if t.success_time is not None and t.success_time.astimezone(CHINA).date() == day:
            rows.append(
                tradebill.BillRow(
                    trade_time=t.success_time.astimezone(CHINA).replace(tzinfo=None),
                    appid=t.appid,
                    mchid=mchid,
                    transaction_id=t.transaction_id,
                    out_trade_no=t.out_trade_no,
                    openid=t.payer_openid,
                    trade_type=t.trade_type,
                    trade_state="SUCCESS",
                    bank_type="OTHERS",
                    currency=t.currency,
                    settlement_fen=t.total,
                    coupon_fen=0,
                    refund_id="",
                    out_refund_no="",
                    refund_fen=0,
                    refund_status="",
                    description=t.description[:64],
                    attach="",
                    fee_mfen=t.total * FEE_RATE_PER_MILLE,
                    rate="0.60%",
                    total_fen=t.total,
                    requested_refund_fen=0,
                )
            )
        for r in t.refunds:
            if r.success_time is None or r.status != "SUCCESS":
                continue
            if r.success_time.astimezone(CHINA).date() != day:
                continue
            rows.append(
                tradebill.BillRow(
                    trade_time=r.success_time.astimezone(CHINA).replace(tzinfo=None),
                    appid=t.appid,
                    mchid=mchid,
                    transaction_id=t.transaction_id,
                    out_trade_no=t.out_trade_no,
                    openid=t.payer_openid,
                    trade_type=t.trade_type,
                    trade_state="REFUND",
                    bank_type="OTHERS",
                    currency=t.currency,
                    settlement_fen=0,
                    coupon_fen=0,
                    refund_id=r.refund_id,
                    out_refund_no=r.out_refund_no,
                    refund_fen=r.amount,
                    refund_status="SUCCESS",
                    description=t.description[:64],
                    attach="",
                    fee_mfen=0,
                    rate="0.60%",
                    total_fen=0,
                    requested_refund_fen=r.amount,
                )
            )
    rows.sort(key=lambda x: (x.trade_time, x.out_trade_no, x.out_refund_no))
    return rows


def mount(sandbox: WeChatSandbox) -> None:
    """Serve the bill API on the sandbox's own server (call before it starts serving)."""
    files: dict[str, bytes] = {}

    async def tradebill_api(request: Request) -> Response:
        _, refused = await sandbox._authenticate(request)  # the sandbox's own v3 check
        if refused is not None:
            return refused
        raw = request.query_params.get("bill_date", "")
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            return sandbox._error(400, "PARAM_ERROR", "bill_date 格式为 yyyy-MM-DD")
        if request.query_params.get("bill_type", "ALL") != "ALL":
            return sandbox._error(400, "PARAM_ERROR", "本沙箱只提供 bill_type=ALL")
        if day >= datetime.now(CHINA).date():
            return sandbox._error(400, "NO_STATEMENT_EXIST", "账单尚未生成：次日 10 点后可下载")
        data = tradebill.write(bill_rows(sandbox.trades.values(), day, sandbox.keys.mchid))
        token = secrets.token_urlsafe(24)
        files[token] = data
        base = str(request.base_url).rstrip("/")
        return sandbox._signed(
            200,
            {
                "hash_type": "SHA1",
                "hash_value": hashlib.sha1(data).hexdigest(),
                "download_url": f"{base}/v3/billdownload/file?token={token}",
            },
        )

    async def download(request: Request) -> Response:
        _, refused = await sandbox._authenticate(request)
        if refused is not None:
            return refused
        data = files.pop(request.query_params.get("token", ""), None)
        if data is None:
            return sandbox._error(404, "RESOURCE_NOT_EXISTS", "账单下载链接无效或已使用")
        return Response(data, media_type="text/csv; charset=utf-8")

    sandbox.app.router.routes.append(Route("/v3/bill/tradebill", tradebill_api, methods=["GET"]))
    sandbox.app.router.routes.append(Route("/v3/billdownload/file", download, methods=["GET"]))


class WeChatBills:
    """Our client of the bill API (a ``BillSource``)."""

    def __init__(self, config: WeChatConfig) -> None:
        self.config = config
        self._http = httpx.AsyncClient(timeout=config.timeout_s)

    async def close(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def _get(self, path_and_query: str) -> httpx.Response:
        c = self.config
        auth = wire.authorization(
            c.merchant_key,
            mchid=c.mchid,
            serial_no=c.merchant_serial,
            method="GET",
            path=path_and_query,
            body=b"",
            timestamp=int(time.time()),
            nonce=wire.new_nonce(),
        )
        try:
            return await self._http.get(
                c.url + path_and_query,
                headers={"Authorization": auth, "Accept": "application/json"},
            )
        except httpx.HTTPError as e:
            raise BillUnavailable(
                f"WeChat Pay's bill API is unreachable: {type(e).__name__}"
            ) from e

    async def trade_bill(self, day: date) -> bytes:
        """The ALL trade bill of a local day, its SHA-1 checked."""
        r = await self._get(f"/v3/bill/tradebill?bill_date={day.isoformat()}&bill_type=ALL")
        why = wire.check_signed(
            dict(r.headers),
            r.content,
            public_key=self.config.platform_public_key,
            public_key_id=self.config.platform_key_id,
            now_s=int(time.time()),
        )
        if why is not None or r.status_code != 200:
            raise BillUnavailable(f"no trade bill for {day}: {r.status_code} {why or r.text[:200]}")
        meta = orjson.loads(r.content)
        url = str(meta["download_url"])
        path = url[url.index("/v3/") :]
        f = await self._get(path)
        if f.status_code != 200:
            raise BillUnavailable(f"the bill of {day} did not download: {f.status_code}")
        if hashlib.sha1(f.content).hexdigest() != meta.get("hash_value"):
            raise BillUnavailable(f"the bill of {day} does not match its SHA-1")
        return f.content


def start(settings: Settings, sandbox: WeChatSandboxServer | None) -> dict[str, WeChatBills]:
    """The server's bill sources: WeChat Pay's (the configured merchant, or the sandbox this
    process started, its bill API mounted here)."""
    if sandbox is not None:
        mount(sandbox.sandbox)
    config = payments_gateway.configured(settings)
    return {"wechat": WeChatBills(config)} if config is not None else {}
