"""The sandbox WeChat Pay gateway: a real local HTTP server speaking API v3.

Started by the server, the demo and the tests when no real gateway is configured (as
the SMS sandbox is). What an app written against WeChat Pay sees here is what it would
see there:

- ``POST /v3/pay/transactions/{jsapi,h5,native}`` → ``prepay_id`` / ``h5_url`` /
  ``code_url``; ``GET /v3/pay/transactions/out-trade-no/{no}?mchid=`` (and
  ``/id/{transaction_id}``); ``POST …/out-trade-no/{no}/close`` → 204;
  ``POST /v3/refund/domestic/refunds``; ``GET /v3/refund/domestic/refunds/{no}``.
- Requests must carry ``Authorization: WECHATPAY2-SHA256-RSA2048 mchid=…,nonce_str=…,
  signature=…,timestamp=…,serial_no=…`` signed by the merchant's key (401 SIGN_ERROR
  otherwise; a reused nonce or a timestamp 5 min off too); answers are signed with the
  platform key (``Wechatpay-Signature`` …, public-key mode: ``Wechatpay-Serial`` is the
  public key's id). Errors are ``{"code": …, "message": …}`` with WeChat's statuses and
  codes (PARAM_ERROR, ORDER_NOT_EXIST, ORDER_CLOSED, ORDERPAID, OUT_TRADE_NO_USED,
  NOT_ENOUGH, RESOURCE_NOT_EXISTS …).
- Payment (``TRANSACTION.SUCCESS``) and refund (``REFUND.SUCCESS`` / ``CLOSED`` /
  ``ABNORMAL``) notifications are POSTed to the trade's ``notify_url``, signed, with the
  resource encrypted (AEAD_AES_256_GCM, the APIv3 key), and redelivered on WeChat's
  schedule (:data:`REDELIVERY_S`, injectable) until answered 200 or 204.
- A person pays on ``/pay?prepay_id=…`` (or ``/pay?pr=…`` for a Native code, or the
  H5 URL): confirm or decline. Tests pay with ``POST /sandbox/pay``.
- Faults (``POST /sandbox/faults``, per trade or for every new one): ``declined``
  payments, API ``timeout``s, a ``duplicate`` notification, notifications
  ``out_of_order`` (the payment's after the refund's), a ``late`` payment notification
  after the trade was closed, and a notification that ``never`` comes.

State lives in memory: the sandbox is the provider, not our database.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl

import httpx
import orjson
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from payments import wechat_wire as wire

log = logging.getLogger("doorstep.wechat_sandbox")

# WeChat Pay's redelivery schedule after the first try (about 24 h in all).
REDELIVERY_S: tuple[float, ...] = (
    15,
    15,
    30,
    180,
    600,
    1200,
    1800,
    1800,
    1800,
    3600,
    10800,
    10800,
    10800,
    21600,
    21600,
)
_OUT_NO = re.compile(r"^[0-9A-Za-z_\-|*]{6,32}$")
NotifyFault = Literal["normal", "never", "duplicate", "out_of_order", "late"]
RefundFault = Literal["success", "closed", "abnormal"]


@dataclass
class Faults:
    """What goes wrong for a trade (set before or after it exists)."""

    notify: NotifyFault = "normal"
    refund: RefundFault = "success"
    hold_s: float = 3.0  # out_of_order: how long a held payment notification waits at most


@dataclass
class SandboxKeys:
    """The merchant's and the platform's keys and ids, as WeChat gives them."""

    mchid: str
    appid: str
    merchant_key: rsa.RSAPrivateKey
    merchant_serial: str
    platform_key: rsa.RSAPrivateKey
    platform_key_id: str
    apiv3_key: str

    @classmethod
    def generate(cls, mchid: str = "1900000109", appid: str = "wxd0e5f0a1b2c3d4e5") -> SandboxKeys:
        """Fresh keys for a sandbox run."""
        return cls(
            mchid=mchid,
            appid=appid,
            merchant_key=wire.new_key_pair(),
            merchant_serial=secrets.token_hex(20).upper(),
            platform_key=wire.new_key_pair(),
            platform_key_id=f"PUB_KEY_ID_{secrets.randbelow(10**28):028d}",
            apiv3_key=wire.new_nonce(32),
        )


@dataclass
class SandboxRefund:
    """A refund at the sandbox."""

    out_refund_no: str
    refund_id: str
    out_trade_no: str
    transaction_id: str
    amount: int
    total: int
    reason: str
    notify_url: str
    status: str = "PROCESSING"
    create_time: datetime = field(default_factory=lambda: datetime.now(UTC))
    success_time: datetime | None = None


@dataclass
class SandboxTrade:
    """A trade at the sandbox."""

    out_trade_no: str
    trade_type: str  # JSAPI, MWEB (H5), NATIVE
    appid: str
    description: str
    total: int
    currency: str
    notify_url: str
    fingerprint: bytes
    prepay_id: str
    code: str
    expire_at: datetime | None
    payer_openid: str
    state: str = "NOTPAY"
    state_desc: str = "未支付"
    transaction_id: str = ""
    success_time: datetime | None = None
    refunds: list[SandboxRefund] = field(default_factory=list)
    held: list[bytes] = field(default_factory=list)  # out_of_order: notifications held back


@dataclass
class Delivery:
    """One notification and what became of its tries (for the tests and the page)."""

    id: str
    event_type: str
    out_trade_no: str
    url: str
    body: bytes
    attempts: list[tuple[float, int | None]] = field(default_factory=list)  # (time, status)
    acked: bool = False


class WeChatSandbox:
    """The gateway's state, its API and its notifications."""

    def __init__(
        self,
        keys: SandboxKeys,
        *,
        redelivery_s: tuple[float, ...] = REDELIVERY_S,
        refund_delay_s: float = 0.2,
        timeout_hold_s: float = 15.0,
        notify_timeout_s: float = 5.0,
    ) -> None:
        self.keys = keys
        self.redelivery_s = redelivery_s
        self.refund_delay_s = refund_delay_s
        self.timeout_hold_s = timeout_hold_s
        self.base_url = ""
        self.trades: dict[str, SandboxTrade] = {}
        self.by_prepay: dict[str, str] = {}
        self.by_code: dict[str, str] = {}
        self.by_transaction: dict[str, str] = {}
        self.refunds: dict[str, SandboxRefund] = {}
        self.faults: dict[str, Faults] = {}
        self.default_faults = Faults()
        self.timeouts_next = 0  # the next N API calls answer too late (the client times out)
        self.deliveries: list[Delivery] = []
        self._nonces: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._http = httpx.AsyncClient(timeout=notify_timeout_s)
        self._lock = asyncio.Lock()
        v3 = "/v3/pay/transactions"
        self.app = Starlette(
            routes=[
                Route(f"{v3}/jsapi", self.prepay_jsapi, methods=["POST"]),
                Route(f"{v3}/h5", self.prepay_h5, methods=["POST"]),
                Route(f"{v3}/native", self.prepay_native, methods=["POST"]),
                Route(f"{v3}/out-trade-no/{{no}}", self.query, methods=["GET"]),
                Route(f"{v3}/id/{{tid}}", self.query_by_id, methods=["GET"]),
                Route(f"{v3}/out-trade-no/{{no}}/close", self.close_trade, methods=["POST"]),
                Route("/v3/refund/domestic/refunds", self.refund, methods=["POST"]),
                Route("/v3/refund/domestic/refunds/{no}", self.query_refund, methods=["GET"]),
                Route("/pay", self.pay_page, methods=["GET"]),
                Route("/cgi-bin/mmpayweb-bin/checkmweb", self.pay_page, methods=["GET"]),
                Route("/sandbox/pay", self.pay, methods=["POST"]),
                Route("/sandbox/faults", self.set_faults, methods=["POST"]),
                Route("/sandbox/deliveries", self.list_deliveries, methods=["GET"]),
            ]
        )

    # --- plumbing ----------------------------------------------------------------------

    async def close(self) -> None:
        """Stop delivering notifications."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._http.aclose()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def faults_for(self, out_trade_no: str) -> Faults:
        """The faults set for a trade, else the defaults."""
        return self.faults.get(out_trade_no, self.default_faults)

    def _signed(self, status: int, payload: Any | None) -> Response:
        body = b"" if payload is None else orjson.dumps(payload)
        headers = wire.signed_headers(
            self.keys.platform_key,
            self.keys.platform_key_id,
            body,
            timestamp=int(time.time()),
            nonce=wire.new_nonce(),
        )
        headers["Request-ID"] = uuid.uuid4().hex
        return Response(
            body,
            status_code=status,
            headers=headers,
            media_type="application/json" if payload is not None else None,
        )

    def _error(self, status: int, code: str, message: str) -> Response:
        return self._signed(status, {"code": code, "message": message})

    async def _authenticate(self, request: Request) -> tuple[bytes, Response | None]:
        """The request's body, or the 401 a real gateway answers."""
        body = await request.body()
        auth = wire.parse_authorization(request.headers.get("authorization", ""))
        if auth is None:
            return body, self._error(401, "SIGN_ERROR", "Authorization 头缺失或格式错误")
        if auth.mchid != self.keys.mchid or auth.serial_no != self.keys.merchant_serial:
            return body, self._error(401, "SIGN_ERROR", "商户号或证书序列号不匹配")
        if not auth.timestamp.isdigit() or abs(time.time() - int(auth.timestamp)) > wire.SKEW_S:
            return body, self._error(401, "SIGN_ERROR", "timestamp 超出有效期")
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        message = wire.request_message(request.method, path, auth.timestamp, auth.nonce_str, body)
        if not wire.verify(self.keys.merchant_key.public_key(), message, auth.signature):
            return body, self._error(401, "SIGN_ERROR", "签名错误")
        now = time.monotonic()
        for old, at in list(self._nonces.items()):
            if now - at > wire.SKEW_S:
                del self._nonces[old]
        if auth.nonce_str in self._nonces:
            return body, self._error(401, "SIGN_ERROR", "nonce_str 重复")
        self._nonces[auth.nonce_str] = now
        if self.timeouts_next > 0:  # answer after the client gave up (the work is done)
            self.timeouts_next -= 1
            await asyncio.sleep(self.timeout_hold_s)
        return body, None

    def _expire(self, trade: SandboxTrade) -> None:
        if (
            trade.state in ("NOTPAY", "PAYERROR")
            and trade.expire_at is not None
            and datetime.now(UTC) >= trade.expire_at
        ):
            trade.state, trade.state_desc = "CLOSED", "已关闭"

    # --- prepay ------------------------------------------------------------------------

    async def prepay_jsapi(self, request: Request) -> Response:
        """``POST /v3/pay/transactions/jsapi`` → ``{"prepay_id": …}``."""
        return await self._prepay(request, "JSAPI")

    async def prepay_h5(self, request: Request) -> Response:
        """``POST /v3/pay/transactions/h5`` → ``{"h5_url": …}``."""
        return await self._prepay(request, "MWEB")

    async def prepay_native(self, request: Request) -> Response:
        """``POST /v3/pay/transactions/native`` → ``{"code_url": …}``."""
        return await self._prepay(request, "NATIVE")

    async def _prepay(self, request: Request, trade_type: str) -> Response:
        body, refused = await self._authenticate(request)
        if refused is not None:
            return refused
        try:
            data = orjson.loads(body)
            if not isinstance(data, dict):
                raise ValueError
        except ValueError:
            return self._error(400, "PARAM_ERROR", "请求体不是 JSON 对象")
        problem = self._check_prepay(data, trade_type)
        if problem is not None:
            return self._error(400, "PARAM_ERROR", problem)
        no = data["out_trade_no"]
        async with self._lock:
            trade = self.trades.get(no)
            fingerprint = orjson.dumps(
                {k: data.get(k) for k in ("appid", "description", "amount", "notify_url", "payer")},
                option=orjson.OPT_SORT_KEYS,
            )
            if trade is not None:
                self._expire(trade)
                if trade.state == "SUCCESS" or trade.state == "REFUND":
                    return self._error(400, "ORDERPAID", "该订单已支付")
                if trade.state == "CLOSED":
                    return self._error(400, "ORDER_CLOSED", "订单已关闭")
                if trade.fingerprint != fingerprint or trade.trade_type != trade_type:
                    return self._error(403, "OUT_TRADE_NO_USED", "商户订单号重复")
            else:
                expire = data.get("time_expire")
                trade = SandboxTrade(
                    out_trade_no=no,
                    trade_type=trade_type,
                    appid=data["appid"],
                    description=data["description"],
                    total=data["amount"]["total"],
                    currency=data["amount"].get("currency", "CNY"),
                    notify_url=data["notify_url"],
                    fingerprint=fingerprint,
                    prepay_id=f"wx{datetime.now(UTC):%d%H%M%S}{secrets.token_hex(12)}",
                    code=secrets.token_urlsafe(12),
                    expire_at=wire.parse_rfc3339(expire) if expire else None,
                    payer_openid=(data.get("payer") or {}).get("openid", ""),
                )
                self.trades[no] = trade
                self.by_prepay[trade.prepay_id] = no
                self.by_code[trade.code] = no
        if trade_type == "JSAPI":
            return self._signed(200, {"prepay_id": trade.prepay_id})
        if trade_type == "NATIVE":
            return self._signed(200, {"code_url": f"weixin://wxpay/bizpayurl?pr={trade.code}"})
        return self._signed(
            200,
            {
                "h5_url": f"{self.base_url}/cgi-bin/mmpayweb-bin/checkmweb?"
                f"prepay_id={trade.prepay_id}&package={secrets.randbelow(10**10)}"
            },
        )

    def _check_prepay(self, data: dict[str, Any], trade_type: str) -> str | None:
        if data.get("appid") != self.keys.appid:
            return "appid 与商户号不匹配 (APPID_MCHID_NOT_MATCH)"
        if data.get("mchid") != self.keys.mchid:
            return "mchid 错误"
        desc = data.get("description")
        if not isinstance(desc, str) or not 1 <= len(desc) <= 127:
            return "description 必填，1-127 个字符"
        no = data.get("out_trade_no")
        if not isinstance(no, str) or not _OUT_NO.match(no):
            return "out_trade_no 为 6-32 位字母、数字、_-|*"
        if not isinstance(data.get("notify_url"), str) or not data["notify_url"].startswith(
            ("http://", "https://")
        ):
            return "notify_url 必须是 URL"
        amount = data.get("amount")
        if not isinstance(amount, dict):
            return "amount 必填"
        total = amount.get("total")
        if type(total) is not int or total < 1:
            return "amount.total 必须是正整数（分）"
        if amount.get("currency", "CNY") != "CNY":
            return "amount.currency 仅支持 CNY"
        if trade_type == "JSAPI" and not (data.get("payer") or {}).get("openid"):
            return "JSAPI 下单 payer.openid 必填"
        if trade_type == "MWEB" and not (data.get("scene_info") or {}).get("payer_client_ip"):
            return "H5 下单 scene_info.payer_client_ip 必填"
        expire = data.get("time_expire")
        if expire is not None:
            try:
                wire.parse_rfc3339(expire)
            except (TypeError, ValueError):
                return "time_expire 格式为 rfc3339"
        return None

    # --- query and close ---------------------------------------------------------------

    def _transaction(self, trade: SandboxTrade) -> dict[str, Any]:
        out: dict[str, Any] = {
            "appid": trade.appid,
            "mchid": self.keys.mchid,
            "out_trade_no": trade.out_trade_no,
            "trade_type": trade.trade_type,
            "trade_state": trade.state,
            "trade_state_desc": trade.state_desc,
            "amount": {"total": trade.total, "currency": trade.currency},
        }
        if trade.transaction_id:
            out.update(
                transaction_id=trade.transaction_id,
                bank_type="OTHERS",
                success_time=wire.rfc3339(trade.success_time or datetime.now(UTC)),
                payer={"openid": trade.payer_openid or "oSandboxPayer"},
            )
            out["amount"].update(payer_total=trade.total, payer_currency=trade.currency)
        return out

    async def query(self, request: Request) -> Response:
        """``GET /v3/pay/transactions/out-trade-no/{no}?mchid=``."""
        _, refused = await self._authenticate(request)
        if refused is not None:
            return refused
        if request.query_params.get("mchid") != self.keys.mchid:
            return self._error(400, "PARAM_ERROR", "mchid 错误")
        trade = self.trades.get(request.path_params["no"])
        if trade is None:
            return self._error(404, "ORDER_NOT_EXIST", "订单不存在")
        self._expire(trade)
        return self._signed(200, self._transaction(trade))

    async def query_by_id(self, request: Request) -> Response:
        """``GET /v3/pay/transactions/id/{transaction_id}?mchid=``."""
        _, refused = await self._authenticate(request)
        if refused is not None:
            return refused
        no = self.by_transaction.get(request.path_params["tid"])
        if no is None:
            return self._error(404, "ORDER_NOT_EXIST", "订单不存在")
        return self._signed(200, self._transaction(self.trades[no]))

    async def close_trade(self, request: Request) -> Response:
        """``POST /v3/pay/transactions/out-trade-no/{no}/close`` → 204."""
        body, refused = await self._authenticate(request)
        if refused is not None:
            return refused
        try:
            mchid = orjson.loads(body).get("mchid")
        except (ValueError, AttributeError):
            mchid = None
        if mchid != self.keys.mchid:
            return self._error(400, "PARAM_ERROR", "mchid 错误")
        async with self._lock:
            trade = self.trades.get(request.path_params["no"])
            if trade is None:
                return self._error(404, "ORDER_NOT_EXIST", "订单不存在")
            self._expire(trade)
            if trade.state in ("SUCCESS", "REFUND"):
                return self._error(400, "ORDERPAID", "订单已支付")
            if self.faults_for(trade.out_trade_no).notify == "late":
                # The payer's payment lands just as we close: the close answers 204 and
                # the payment notification follows (a real race at the gateway).
                self._spawn(self._pay_later(trade.out_trade_no))
                return self._signed(204, None)
            trade.state, trade.state_desc = "CLOSED", "已关闭"
        return self._signed(204, None)

    async def _pay_later(self, out_trade_no: str) -> None:
        await asyncio.sleep(0.05)
        await self.complete_payment(out_trade_no, "success", force=True)

    # --- paying --------------------------------------------------------------------------

    async def complete_payment(
        self, out_trade_no: str, outcome: str, *, force: bool = False
    ) -> tuple[int, str]:
        """The payer confirms (``success``) or the bank declines (``declined``)."""
        async with self._lock:
            trade = self.trades.get(out_trade_no)
            if trade is None:
                return 404, "订单不存在 no such trade"
            self._expire(trade)
            if trade.state in ("SUCCESS", "REFUND"):
                return 409, "订单已支付 already paid"
            if trade.state == "CLOSED" and not force:
                return 409, "订单已关闭 the trade is closed"
            if outcome == "declined":
                trade.state, trade.state_desc = "PAYERROR", "支付失败，请重新下单支付"
                return 200, "支付失败 declined"
            trade.state, trade.state_desc = "SUCCESS", "支付成功"
            trade.transaction_id = (
                f"42000{datetime.now(UTC):%Y%m%d}{secrets.randbelow(10**13):013d}"
            )
            trade.success_time = datetime.now(UTC)
            self.by_transaction[trade.transaction_id] = out_trade_no
            resource = self._transaction(trade)
        self._notify(trade, "TRANSACTION.SUCCESS", "transaction", "支付成功", resource)
        return 200, "支付成功 paid"

    async def pay(self, request: Request) -> Response:
        """``POST /sandbox/pay`` (JSON or a form): ``out_trade_no`` | ``prepay_id`` | ``pr``,
        and ``outcome`` (``success`` or ``declined``)."""
        raw = await request.body()
        if request.headers.get("content-type", "").startswith("application/json"):
            data = orjson.loads(raw) if raw else {}
        else:
            data = dict(parse_qsl(raw.decode()))
        no = (
            data.get("out_trade_no")
            or self.by_prepay.get(data.get("prepay_id", ""))
            or self.by_code.get(data.get("pr", ""))
        )
        outcome = data.get("outcome", "success")
        if outcome not in ("success", "declined"):
            return JSONResponse({"error": "outcome is success or declined"}, status_code=400)
        status, message = await self.complete_payment(no or "", outcome)
        if "json" in request.headers.get("accept", "") or request.headers.get(
            "content-type", ""
        ).startswith("application/json"):
            return JSONResponse({"message": message}, status_code=status)
        return HTMLResponse(_page("支付结果 Result", f"<p>{html.escape(message)}</p>"), status)

    async def pay_page(self, request: Request) -> Response:
        """The page where a person pays: the amount, confirm or decline."""
        q = request.query_params
        no = self.by_prepay.get(q.get("prepay_id", "")) or self.by_code.get(q.get("pr", ""))
        trade = self.trades.get(no or "")
        if trade is None:
            return HTMLResponse(_page("订单不存在 No such trade", ""), 404)
        self._expire(trade)
        yuan = f"¥{trade.total // 100}.{trade.total % 100:02d}"
        ref = f'<input type="hidden" name="out_trade_no" value="{html.escape(trade.out_trade_no)}">'
        body = (
            f'<p class="what">{html.escape(trade.description)}</p>'
            f'<p class="amount" data-fen="{trade.total}">{yuan}</p>'
            f'<p class="state" data-state="{trade.state}">{html.escape(trade.state_desc)}</p>'
            f'<form method="post" action="/sandbox/pay">{ref}'
            '<button name="outcome" value="success" id="confirm">确认支付 Pay</button> '
            '<button name="outcome" value="declined" id="decline">拒绝 Decline</button></form>'
        )
        return HTMLResponse(_page("微信支付（沙箱）WeChat Pay sandbox", body))

    # --- refunds -----------------------------------------------------------------------

    def _refund_json(self, r: SandboxRefund) -> dict[str, Any]:
        out: dict[str, Any] = {
            "refund_id": r.refund_id,
            "out_refund_no": r.out_refund_no,
            "transaction_id": r.transaction_id,
            "out_trade_no": r.out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": wire.rfc3339(r.create_time),
            "status": r.status,
            "amount": {
                "total": r.total,
                "refund": r.amount,
                "payer_total": r.total,
                "payer_refund": r.amount,
                "settlement_refund": r.amount,
                "settlement_total": r.total,
                "discount_refund": 0,
                "currency": "CNY",
            },
        }
        if r.success_time is not None:
            out["success_time"] = wire.rfc3339(r.success_time)
        return out

    async def refund(self, request: Request) -> Response:
        """``POST /v3/refund/domestic/refunds``."""
        body, refused = await self._authenticate(request)
        if refused is not None:
            return refused
        try:
            data = orjson.loads(body)
            amount = data["amount"]
            refund_fen, total, no = amount["refund"], amount["total"], data["out_refund_no"]
        except (ValueError, KeyError, TypeError):
            return self._error(400, "PARAM_ERROR", "缺少 out_refund_no 或 amount")
        if type(refund_fen) is not int or refund_fen < 1 or type(total) is not int:
            return self._error(400, "PARAM_ERROR", "amount.refund 必须是正整数（分）")
        if amount.get("currency", "CNY") != "CNY":
            return self._error(400, "PARAM_ERROR", "amount.currency 仅支持 CNY")
        if not isinstance(no, str) or not _OUT_NO.match(no):
            return self._error(400, "PARAM_ERROR", "out_refund_no 为 6-64 位字母、数字、_-|*@")
        async with self._lock:
            trade_no = data.get("out_trade_no") or self.by_transaction.get(
                data.get("transaction_id", "")
            )
            trade = self.trades.get(trade_no or "")
            if trade is None or trade.state not in ("SUCCESS", "REFUND"):
                return self._error(404, "RESOURCE_NOT_EXISTS", "订单不存在或未支付")
            existing = self.refunds.get(no)
            if existing is not None:
                if existing.amount != refund_fen or existing.out_trade_no != trade.out_trade_no:
                    return self._error(400, "INVALID_REQUEST", "退款单号重复，金额不一致")
                return self._signed(200, self._refund_json(existing))
            if total != trade.total:
                return self._error(400, "INVALID_REQUEST", "订单金额 amount.total 与原订单不符")
            taken = sum(r.amount for r in trade.refunds if r.status != "CLOSED")
            if taken + refund_fen > trade.total:
                return self._error(403, "NOT_ENOUGH", "退款金额超过订单可退金额")
            r = SandboxRefund(
                out_refund_no=no,
                refund_id=f"50300{secrets.randbelow(10**24):024d}",
                out_trade_no=trade.out_trade_no,
                transaction_id=trade.transaction_id,
                amount=refund_fen,
                total=trade.total,
                reason=str(data.get("reason", "")),
                notify_url=str(data.get("notify_url") or trade.notify_url),
            )
            self.refunds[no] = r
            trade.refunds.append(r)
            trade.state, trade.state_desc = "REFUND", "转入退款"
        self._spawn(self._finish_refund(r, self.faults_for(trade.out_trade_no).refund))
        return self._signed(200, self._refund_json(r))

    async def _finish_refund(self, r: SandboxRefund, outcome: RefundFault) -> None:
        await asyncio.sleep(self.refund_delay_s)
        async with self._lock:
            if outcome == "success":
                r.status, r.success_time = "SUCCESS", datetime.now(UTC)
            else:
                r.status = outcome.upper()
            trade = self.trades[r.out_trade_no]
        resource = {
            "mchid": self.keys.mchid,
            "out_trade_no": r.out_trade_no,
            "transaction_id": r.transaction_id,
            "out_refund_no": r.out_refund_no,
            "refund_id": r.refund_id,
            "refund_status": r.status,
            "user_received_account": "支付用户零钱",
            "amount": {
                "total": r.total,
                "refund": r.amount,
                "payer_total": r.total,
                "payer_refund": r.amount,
            },
        }
        if r.success_time is not None:
            resource["success_time"] = wire.rfc3339(r.success_time)
        summary = {"SUCCESS": "退款成功", "CLOSED": "退款关闭", "ABNORMAL": "退款异常"}[r.status]
        self._notify(trade, f"REFUND.{r.status}", "refund", summary, resource, url=r.notify_url)

    async def query_refund(self, request: Request) -> Response:
        """``GET /v3/refund/domestic/refunds/{out_refund_no}``."""
        _, refused = await self._authenticate(request)
        if refused is not None:
            return refused
        r = self.refunds.get(request.path_params["no"])
        if r is None:
            return self._error(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        return self._signed(200, self._refund_json(r))

    # --- notifications -----------------------------------------------------------------

    def notification_body(
        self, event_type: str, original_type: str, summary: str, resource: dict[str, Any]
    ) -> bytes:
        """A notification's body: the resource encrypted under the APIv3 key."""
        nonce = wire.new_nonce(12)
        return orjson.dumps(
            {
                "id": str(uuid.uuid4()),
                "create_time": wire.rfc3339(datetime.now(UTC)),
                "resource_type": "encrypt-resource",
                "event_type": event_type,
                "summary": summary,
                "resource": {
                    "original_type": original_type,
                    "algorithm": "AEAD_AES_256_GCM",
                    "ciphertext": wire.encrypt_resource(
                        self.keys.apiv3_key,
                        orjson.dumps(resource),
                        associated_data=original_type,
                        nonce=nonce,
                    ),
                    "associated_data": original_type,
                    "nonce": nonce,
                },
            }
        )

    def notification_headers(self, body: bytes) -> dict[str, str]:
        """Fresh signed headers for one try of a notification."""
        return {
            "Content-Type": "application/json",
            **wire.signed_headers(
                self.keys.platform_key,
                self.keys.platform_key_id,
                body,
                timestamp=int(time.time()),
                nonce=wire.new_nonce(),
            ),
        }

    def _notify(
        self,
        trade: SandboxTrade,
        event_type: str,
        original_type: str,
        summary: str,
        resource: dict[str, Any],
        *,
        url: str | None = None,
    ) -> None:
        faults = self.faults_for(trade.out_trade_no)
        if faults.notify == "never" and original_type == "transaction":
            return
        body = self.notification_body(event_type, original_type, summary, resource)
        target = url or trade.notify_url
        if faults.notify == "out_of_order":
            if original_type == "transaction":
                trade.held.append(body)  # sent after the next one, or when the hold ends
                self._spawn(self._release_held(trade, faults.hold_s, target))
                return
            self._spawn(self._deliver(body, event_type, trade.out_trade_no, target))
            self._release_now(trade, target, after=0.05)
            return
        self._spawn(self._deliver(body, event_type, trade.out_trade_no, target))
        if faults.notify == "duplicate":
            self._spawn(self._deliver(body, event_type, trade.out_trade_no, target, delay=0.05))

    def _release_now(self, trade: SandboxTrade, url: str, *, after: float) -> None:
        held, trade.held = trade.held, []
        for body in held:
            self._spawn(self._deliver(body, "TRANSACTION.SUCCESS", trade.out_trade_no, url, after))

    async def _release_held(self, trade: SandboxTrade, hold_s: float, url: str) -> None:
        await asyncio.sleep(hold_s)
        self._release_now(trade, url, after=0)

    async def _deliver(
        self, body: bytes, event_type: str, out_trade_no: str, url: str, delay: float = 0
    ) -> None:
        notice_id = orjson.loads(body)["id"]
        d = Delivery(notice_id, event_type, out_trade_no, url, body)
        self.deliveries.append(d)
        if delay:
            await asyncio.sleep(delay)
        for wait in (0.0, *self.redelivery_s):
            if wait:
                await asyncio.sleep(wait)
            status: int | None = None
            try:
                r = await self._http.post(
                    url, content=body, headers=self.notification_headers(body)
                )
                status = r.status_code
            except (httpx.HTTPError, OSError):
                status = None
            d.attempts.append((time.time(), status))
            if status in (200, 204):
                d.acked = True
                return
        log.warning("WeChat sandbox: notification %s to %s never acknowledged", notice_id, url)

    # --- sandbox controls ----------------------------------------------------------------

    async def set_faults(self, request: Request) -> Response:
        """``POST /sandbox/faults`` ``{"out_trade_no"?, "notify"?, "refund"?, "hold_s"?,
        "timeouts_next"?}``: without out_trade_no, the defaults for every trade."""
        data = orjson.loads(await request.body() or b"{}")
        notify = data.get("notify", "normal")
        refund = data.get("refund", "success")
        if notify not in ("normal", "never", "duplicate", "out_of_order", "late"):
            return JSONResponse({"error": f"unknown notify fault {notify!r}"}, status_code=400)
        if refund not in ("success", "closed", "abnormal"):
            return JSONResponse({"error": f"unknown refund fault {refund!r}"}, status_code=400)
        faults = Faults(notify=notify, refund=refund, hold_s=float(data.get("hold_s", 3.0)))
        if data.get("out_trade_no"):
            self.faults[data["out_trade_no"]] = faults
        else:
            self.default_faults = faults
        if "timeouts_next" in data:
            self.timeouts_next = int(data["timeouts_next"])
        return JSONResponse({"ok": True})

    async def list_deliveries(self, request: Request) -> Response:
        """``GET /sandbox/deliveries?out_trade_no=``: notifications and their tries."""
        no = request.query_params.get("out_trade_no")
        return JSONResponse(
            [
                {
                    "id": d.id,
                    "event_type": d.event_type,
                    "out_trade_no": d.out_trade_no,
                    "attempts": [s for _, s in d.attempts],
                    "acked": d.acked,
                }
                for d in self.deliveries
                if no is None or d.out_trade_no == no
            ]
        )


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="zh"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>body{{font-family:sans-serif;max-width:28em;"
        "margin:2em auto;text-align:center}.amount{font-size:2em}button{font-size:1.2em;"
        "margin:.5em;padding:.4em 1.2em}#confirm{background:#07c160;color:#fff;border:0}"
        f"</style></head><body><h1>{title}</h1>{body}</body></html>"
    )


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signals to the process's own server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WeChatSandboxServer:
    """The sandbox on a real uvicorn server, in this process."""

    def __init__(self, sandbox: WeChatSandbox, port: int) -> None:
        self.sandbox = sandbox
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        sandbox.base_url = self.url
        self._server = _QuietServer(
            uvicorn.Config(
                sandbox.app,
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
        self._task = asyncio.create_task(self._server.serve(), name="wechat-sandbox")
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.02)
        log.info("WeChat Pay sandbox at %s (pay page: %s/pay?prepay_id=…)", self.url, self.url)

    async def stop(self) -> None:
        """Stop serving and delivering."""
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.sandbox.close()
