"""Alipay's daily trade bill over the wire: the sandbox side and our client.

- :func:`mount` adds ``alipay.data.dataservice.bill.downloadurl.query`` to the sandbox
  gateway (``payments.alipay_sandbox``; through its ``extra_methods``, so the request's
  common parameters and RSA2 signature are checked and the answer signed as for every
  method): ``biz_content {"bill_type": "trade", "bill_date": "yyyy-MM-dd"}`` answers
  ``{"code": "10000", "bill_download_url": …}``; the URL, shaped like Alipay's
  ``dwbillcenter.alipay.com/downloadBillFile.resource?bizType=trade&userId=…&fileType=csv.zip
  &bizDates=…&downloadFileName=…&fileId=…&timestamp=…&token=…``, serves the zip once
  within 30 seconds, unauthenticated (the URL is the credential), as Alipay's does. The
  bill is written by :mod:`settlement.alipay_bill` from what the sandbox holds as paid
  and refunded on that Beijing day — the provider's side, never our ledger — and only
  for days that are over (``isp.bill_not_exist`` before).
- :class:`AlipayBills` asks for the URL through our Alipay adapter (python-alipay-sdk)
  and downloads the zip (a :class:`bills.BillSource`).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from payments.alipay import AlipayProvider
from payments.alipay_book import BEIJING, ApiError, Trade
from payments.alipay_sandbox import AlipaySandbox, AlipaySandboxServer
from payments.errors import ProviderRefused, ProviderUnavailable
from settlement import alipay_bill
from settlement.errors import BillUnavailable

METHOD = "alipay.data.dataservice.bill.downloadurl.query"
FEE_PER_MILLE = 6  # the sandbox charges 0.6 % (服务费), Alipay's common rate
URL_TTL_S = 30.0  # Alipay's download addresses work for 30 seconds


def _naive(at: datetime) -> datetime:
    return at.astimezone(BEIJING).replace(tzinfo=None, microsecond=0)


def _fee(fen: int) -> int:
    return -((fen * FEE_PER_MILLE + 500) // 1000)


def bill_rows(trades: Iterable[Trade], day: date) -> list[alipay_bill.BillRow]:
    """The detail's rows for a Beijing day: trades paid that day, refunds made that day."""
    rows = []
    for t in trades:
        if t.paid_at is not None and t.paid_at.astimezone(BEIJING).date() == day:
            rows.append(
                alipay_bill.BillRow(
                    trade_no=t.trade_no,
                    out_trade_no=t.out_trade_no,
                    kind=alipay_bill.TRADE,
                    subject=t.subject[:64],
                    created_at=_naive(t.created_at),
                    finished_at=_naive(t.paid_at),
                    buyer=t.buyer_logon_id,
                    order_fen=t.total_fen,
                    receipt_fen=t.total_fen,
                    out_request_no="",
                    fee_fen=_fee(t.total_fen),
                )
            )
        for r in t.refunds.values():
            if r.at.astimezone(BEIJING).date() != day:
                continue
            rows.append(
                alipay_bill.BillRow(
                    trade_no=t.trade_no,
                    out_trade_no=t.out_trade_no,
                    kind=alipay_bill.REFUND,
                    subject=t.subject[:64],
                    created_at=_naive(t.created_at),
                    finished_at=_naive(r.at),
                    buyer=t.buyer_logon_id,
                    order_fen=-r.amount_fen,
                    receipt_fen=-r.amount_fen,
                    out_request_no=r.out_request_no,
                    fee_fen=0,
                )
            )
    rows.sort(key=lambda x: (x.finished_at, x.out_trade_no, x.out_request_no))
    return rows


def mount(sandbox: AlipaySandbox) -> None:
    """Serve the bill download on the sandbox gateway (before or after it starts)."""
    files: dict[str, tuple[float, str, bytes]] = {}  # token → (expires, file name, zip)
    seller = sandbox.config.seller_id

    async def download_url(params: dict[str, str], biz: dict[str, Any]) -> dict[str, str]:
        if biz.get("bill_type") != "trade":
            raise ApiError(
                "isv.invalid-arguments",
                "bill_type 无效：本沙箱提供 trade（业务账单）",
                code="40004",
            )
        raw = str(biz.get("bill_date") or "")
        try:
            day = date.fromisoformat(raw) if len(raw) == 10 else None
        except ValueError:
            day = None
        if day is None:
            raise ApiError(
                "isv.invalid-arguments", "bill_date 格式为 yyyy-MM-dd（本沙箱只提供日账单）"
            )
        now = datetime.now(UTC)
        if day >= now.astimezone(BEIJING).date():
            raise ApiError("isp.bill_not_exist", "账单不存在：日账单次日生成")
        data = alipay_bill.write(
            bill_rows(sandbox.book.trades.values(), day),
            seller_id=seller,
            day=day,
            exported_at=_naive(now),
        )
        name, _, _ = alipay_bill.file_names(seller, day)
        token = secrets.token_hex(16)
        for old in [k for k, v in files.items() if v[0] < time.monotonic()]:
            files.pop(old, None)
        files[token] = (time.monotonic() + URL_TTL_S, name, data)
        query = urlencode(
            {
                "bizType": "trade",
                "userId": alipay_bill.user_id(seller),
                "fileType": "csv.zip",
                "bizDates": f"{day:%Y%m%d}",
                "downloadFileName": name,
                "fileId": f"/trade/{alipay_bill.user_id(seller)}/{day:%Y%m%d}.csv.zip",
                "timestamp": str(int(now.timestamp())),
                "token": token,
            }
        )
        return {
            "code": "10000",
            "msg": "Success",
            "bill_download_url": f"{sandbox.url}downloadBillFile.resource?{query}",
        }

    async def download(request: Request) -> Response:
        held = files.pop(request.query_params.get("token", ""), None)
        if held is None or held[0] < time.monotonic():
            return PlainTextResponse("下载超时，请重新下载", status_code=410)
        _, name, data = held
        return Response(
            data,
            media_type="application/oct-stream",
            headers={"Content-Disposition": f"attachment; filename*=UTF-8''{name}"},
        )

    sandbox.extra_methods[METHOD] = download_url
    sandbox.app.router.routes.append(Route("/downloadBillFile.resource", download, methods=["GET"]))


class AlipayBills:
    """Our client of the bill download (a ``BillSource``), through the Alipay adapter."""

    def __init__(self, provider: AlipayProvider, *, timeout_s: float = 30.0) -> None:
        self.provider = provider
        self._http = httpx.AsyncClient(timeout=timeout_s, follow_redirects=True)

    async def close(self) -> None:
        """Close the connections (the adapter is the payments')."""
        await self._http.aclose()

    async def trade_bill(self, day: date) -> bytes:
        """The ``trade`` bill of a Beijing day: the zip as Alipay serves it."""
        try:
            answer = await self.provider.call(
                METHOD, {"bill_type": "trade", "bill_date": day.isoformat()}
            )
        except (ProviderRefused, ProviderUnavailable) as e:
            raise BillUnavailable(f"no Alipay bill for {day}: {e.message}") from None
        url = str(answer.get("bill_download_url") or "")
        if not url.startswith(("https://", "http://")):
            raise BillUnavailable(f"Alipay gave no download address for the bill of {day}")
        try:
            r = await self._http.get(url)
        except httpx.HTTPError as e:
            raise BillUnavailable(
                f"the Alipay bill of {day} did not download: {type(e).__name__}"
            ) from None
        if r.status_code != 200 or not r.content.startswith(b"PK"):
            raise BillUnavailable(
                f"the Alipay bill of {day} did not download: {r.status_code} {r.text[:100]}"
            )
        return r.content


def start(sandbox: AlipaySandboxServer | None, provider: Any) -> dict[str, AlipayBills]:
    """The server's Alipay bill source: the configured gateway's, or the sandbox this process
    started (the bill download mounted on it)."""
    if sandbox is not None:
        mount(sandbox.sandbox)
    return {"alipay": AlipayBills(provider)} if isinstance(provider, AlipayProvider) else {}
