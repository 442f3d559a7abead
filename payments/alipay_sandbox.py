"""The sandbox Alipay gateway: a real local HTTP server speaking Alipay's OpenAPI.

Started with the stores when no real gateway is configured (like the SMS sandbox), on a
free port of 127.0.0.1. An app written against ``https://openapi.alipay.com/gateway.do``
works against ``<sandbox>/gateway.do``:

- ``GET`` or ``POST /gateway.do`` with the common parameters (``app_id``, ``method``,
  ``format``, ``charset``, ``sign_type=RSA2``, ``timestamp``, ``version``,
  ``notify_url``, ``biz_content``) signed RSA2 by the app's key
  (:mod:`payments.alipay_sign`); the answer is ``{"<method>_response": {...}, "sign":
  ...}`` signed by the sandbox's Alipay key. Methods: ``alipay.trade.precreate``
  (``qr_code``), ``alipay.trade.wap.pay`` (a browser is sent here: the pay page),
  ``alipay.trade.query``, ``alipay.trade.close``, ``alipay.trade.refund``,
  ``alipay.trade.fastpay.refund.query``. The trades' rules: :mod:`payments.alipay_book`.
- The pay page (``/qr/<token>``: opening the ``qr_code`` is the scan): a person
  confirms or declines. ``POST /sandbox/pay`` pays without a browser.
- Asynchronous notifications: a form POST of signed parameters to the trade's
  ``notify_url``, acknowledged only by the body ``success``, else sent again with the
  same ``notify_id`` after 4 m, 10 m, 10 m, 1 h, 2 h, 6 h and 15 h (``retry_schedule_s``).
- Fault switches per trade (``POST /sandbox/faults`` or :meth:`AlipaySandbox.set_faults`):
  ``declined`` (the buyer's payment is refused), ``timeout`` (the next call about the
  trade is carried out but answered only after ``timeout_s``), ``duplicate`` (every
  notification comes twice at once), ``out_of_order`` (the trade's notifications are
  held and sent newest first), ``late_after_close`` (the payment's notification is held
  until the merchant tries to close the trade), ``never_notify``, ``close_notice_first``
  (the ``TRADE_CLOSED`` notification of a close is delivered, and answered, before the
  close call itself is answered: the notice lands before the merchant's next step).

Its state is kept in memory: a restart of the process forgets the trades (see
docs/payments-alipay.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args
from urllib.parse import parse_qsl, urlencode

import httpx
import orjson
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from payments.alipay_book import ApiError, Book, Notice, Trade
from payments.alipay_money import fen_to_yuan
from payments.alipay_sign import (
    encode_response,
    request_ok,
    response_key,
    sign_notification,
)

log = logging.getLogger("doorstep.alipay_sandbox")

Fault = Literal[
    "declined",
    "timeout",
    "duplicate",
    "out_of_order",
    "late_after_close",
    "never_notify",
    "close_notice_first",
]
FAULTS: tuple[str, ...] = get_args(Fault)
# Alipay's redelivery after the first try: 4m, 10m, 10m, 1h, 2h, 6h, 15h (8 tries in 25 h).
ALIPAY_RETRY_SCHEDULE_S: tuple[float, ...] = (240, 600, 600, 3600, 7200, 21600, 54000)
_WECHAT_WORDS = {"never": "never_notify", "late": "late_after_close"}
# An OpenAPI method another module serves on this gateway (settlement's bill download):
# (the checked common parameters, the biz_content) → the answer, or ApiError.
ExtraMethod = Callable[[dict[str, str], dict[str, Any]], Awaitable[dict[str, str]]]
METHODS = frozenset(
    {
        "alipay.trade.precreate",
        "alipay.trade.wap.pay",
        "alipay.trade.query",
        "alipay.trade.close",
        "alipay.trade.refund",
        "alipay.trade.fastpay.refund.query",
    }
)


@dataclass
class AlipaySandboxConfig:
    """The sandbox merchant: ids, the app's public key (to check requests), the sandbox's
    Alipay private key (to sign answers and notifications), and the timings."""

    app_id: str
    seller_id: str
    app_public_key: rsa.RSAPublicKey
    alipay_private_key: rsa.RSAPrivateKey
    retry_schedule_s: tuple[float, ...] = ALIPAY_RETRY_SCHEDULE_S
    notify_timeout_s: float = 5.0  # how long one delivery waits for the merchant's answer
    timeout_s: float = 30.0  # how long the ``timeout`` fault withholds an answer
    hold_s: float = 60.0  # the longest ``out_of_order`` / ``late_after_close`` hold a notice
    seed: int | None = None


@dataclass
class Attempt:
    """One POST of a notification and what came back."""

    at: float
    status: int | None
    body: str


@dataclass
class Delivery:
    """A notification and its tries (all with the same ``notify_id``)."""

    notify_id: str
    out_trade_no: str
    trade_status: str
    kind: str
    params: dict[str, str]
    attempts: list[Attempt] = field(default_factory=list)
    acked: bool = False
    gave_up: bool = False
    suppressed: bool = False

    def view(self) -> dict[str, Any]:
        """As ``GET /sandbox/notifications`` lists it."""
        return {
            "notify_id": self.notify_id,
            "out_trade_no": self.out_trade_no,
            "trade_status": self.trade_status,
            "kind": self.kind,
            "attempts": [{"status": a.status, "body": a.body[:200]} for a in self.attempts],
            "acked": self.acked,
            "gave_up": self.gave_up,
            "suppressed": self.suppressed,
        }


def _now() -> datetime:
    return datetime.now(UTC)


class AlipaySandbox:
    """The gateway's request handling, its pay page and its notifications."""

    def __init__(self, config: AlipaySandboxConfig) -> None:
        self.config = config
        self.book = Book(config.app_id, config.seller_id, seed=config.seed)
        self.url = ""  # set by the server: http://127.0.0.1:<port>/
        self.deliveries: list[Delivery] = []
        self._faults: dict[str, set[str]] = {}
        self._held: dict[str, list[Notice]] = {}  # out_of_order: newest last
        self._late: dict[str, Notice] = {}  # late_after_close
        self._tasks: set[asyncio.Task[None]] = set()
        self._expiring: set[str] = set()
        self.timeouts_next = 0  # the next N API calls (any trade) answer too late
        # Methods other modules add (settlement.alipay_bills: the bill download URL); they
        # share the common checks and the signed answer.
        self.extra_methods: dict[str, ExtraMethod] = {}
        self._closing = asyncio.Event()
        self._lock = asyncio.Lock()
        self._http = httpx.AsyncClient(timeout=config.notify_timeout_s)
        self.app = Starlette(
            routes=[
                Route("/gateway.do", self.gateway, methods=["GET", "POST"]),
                Route("/qr/{token}", self.pay_page, methods=["GET"]),
                Route("/qr/{token}", self.pay_action, methods=["POST"]),
                Route("/sandbox/pay", self.pay_api, methods=["POST"]),
                Route("/sandbox/faults", self.faults_api, methods=["POST"]),
                Route("/sandbox/trades", self.trades_api, methods=["GET"]),
                Route("/sandbox/notifications", self.notifications_api, methods=["GET"]),
                Route("/sandbox/deliveries", self.notifications_api, methods=["GET"]),
            ]
        )

    @property
    def gateway_url(self) -> str:
        """Where the OpenAPI is served (what the SDKs call the gateway)."""
        return f"{self.url}gateway.do"

    async def close(self) -> None:
        """Stop delivering notifications and release withheld answers."""
        self._closing.set()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._http.aclose()

    # ---- faults ---------------------------------------------------------------------------

    def set_faults(self, out_trade_no: str, faults: set[str] | frozenset[str]) -> None:
        """Switch faults on for a trade (``"*"``: every trade); an empty set switches them off."""
        unknown = set(faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {list(FAULTS)}")
        if faults:
            self._faults[out_trade_no] = set(faults)
        else:
            self._faults.pop(out_trade_no, None)

    def _has(self, out_trade_no: str, fault: str) -> bool:
        return fault in self._faults.get(out_trade_no, ()) or fault in self._faults.get("*", ())

    def _consume(self, out_trade_no: str, fault: str) -> bool:
        """A one-shot fault (``timeout``): true once, then switched off for the trade."""
        for key in (out_trade_no, "*"):
            if fault in self._faults.get(key, ()):
                self._faults[key].discard(fault)
                return True
        return False

    # ---- the OpenAPI --------------------------------------------------------------------

    def _answer(self, method: str, payload: Mapping[str, Any], *, error: bool = False) -> Response:
        name = "error_response" if error else response_key(method)
        body = encode_response(name, payload, self.config.alipay_private_key)
        return Response(body, media_type="application/json;charset=utf-8")

    async def gateway(self, request: Request) -> Response:
        """``/gateway.do``: check the common parameters and the signature, then the method."""
        params = dict(request.query_params)
        if request.method == "POST":
            form = parse_qsl(
                (await request.body()).decode(errors="replace"), keep_blank_values=True
            )
            params.update(form)
        method = params.get("method", "")
        refused = self._check_common(params)
        if refused is not None:
            known = method in METHODS or method in self.extra_methods
            if method == "alipay.trade.wap.pay":
                return self._error_page(refused)
            return self._answer(method, refused.answer(), error=not known)
        try:
            biz = orjson.loads(params.get("biz_content") or "{}")
            if not isinstance(biz, dict):
                raise ValueError
        except ValueError:
            error = ApiError(
                "isv.invalid-parameter",
                "biz_content must be a JSON object",
                code="40002",
                msg="Invalid Arguments",
            )
            if method == "alipay.trade.wap.pay":
                return self._error_page(error)
            return self._answer(method, error.answer())
        if method == "alipay.trade.wap.pay":
            return self._wap_pay(params, biz)
        extra = self.extra_methods.get(method)
        if extra is not None:
            try:
                return self._answer(method, await extra(params, biz))
            except ApiError as e:
                return self._answer(method, e.answer())
        out_trade_no = str(biz.get("out_trade_no") or "") or self.book.out_trade_no_of(
            str(biz.get("trade_no") or "")
        )
        now = _now()
        notice: Notice | None = None
        async with self._lock:
            held = self.book.trades.get(out_trade_no)
            expired = self.book.expire(held, now=now) if held is not None else None
            if expired is not None:  # its expiry passed a moment ago: it closes first
                self._notify(expired)
            try:
                if method == "alipay.trade.precreate":
                    answer = self._precreate(params, biz, now)
                elif method == "alipay.trade.query":
                    answer = self.book.query(biz)
                elif method == "alipay.trade.close":
                    answer, notice = self.book.close(biz, now=now)
                elif method == "alipay.trade.refund":
                    answer, notice = self.book.refund(biz, now=now)
                else:
                    answer = self.book.refund_query(biz)
            except ApiError as e:
                answer = e.answer()
        if (
            notice is not None
            and method == "alipay.trade.close"
            and self._has(out_trade_no, "close_notice_first")
            and notice.notify_url
        ):
            await self._deliver(notice)  # delivered (first try) before the close is answered
        elif notice is not None:
            self._notify(notice)
        if method == "alipay.trade.close" and out_trade_no:
            self._release_late(out_trade_no)
        late = self.timeouts_next > 0
        if late:
            self.timeouts_next -= 1
        if late or (out_trade_no and self._consume(out_trade_no, "timeout")):
            log.info(
                "sandbox Alipay: %s for %s withheld %.1f s (timeout fault)",
                method,
                out_trade_no,
                self.config.timeout_s,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.config.timeout_s)
        return self._answer(method, answer)

    def _check_common(self, params: dict[str, str]) -> ApiError | None:
        def arg(sub: str, text: str, *, missing: bool = False) -> ApiError:
            if missing:
                return ApiError(sub, text, code="40001", msg="Missing Required Arguments")
            return ApiError(sub, text, code="40002", msg="Invalid Arguments")

        method = params.get("method", "")
        if not method:
            return arg("isv.missing-method", "缺少方法名参数", missing=True)
        if method not in METHODS and method not in self.extra_methods:
            return arg("isv.invalid-method", f"不存在的方法名 {method}")
        if not params.get("app_id"):
            return arg("isv.missing-app-id", "缺少AppID参数", missing=True)
        if params["app_id"] != self.config.app_id:
            return arg("isv.invalid-app-id", "无效的AppID参数")
        if params.get("format", "JSON").upper() != "JSON":
            return arg("isv.invalid-format", "无效的数据格式")
        if params.get("charset", "utf-8").lower() != "utf-8":
            return arg("isv.invalid-charset", "字符集错误")
        if not params.get("sign_type"):
            return arg("isv.missing-signature-type", "缺少签名类型参数", missing=True)
        if params["sign_type"] != "RSA2":
            return arg("isv.invalid-signature-type", "无效的签名类型")
        if not params.get("sign"):
            return arg("isv.missing-signature", "缺少签名参数", missing=True)
        if not params.get("timestamp"):
            return arg("isv.missing-timestamp", "缺少时间戳参数", missing=True)
        try:
            datetime.strptime(params["timestamp"], "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return arg("isv.invalid-timestamp", "非法的时间戳参数 yyyy-MM-dd HH:mm:ss")
        if params.get("version", "1.0") != "1.0":
            return arg("isv.missing-version", "版本号错误")
        if not request_ok(params, self.config.app_public_key):
            return arg(
                "isv.invalid-signature", "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配"
            )
        return None

    def _watch_expiry(self, trade: Trade) -> None:
        if trade.expire_at is not None and trade.token not in self._expiring:
            self._expiring.add(trade.token)
            self._spawn(self._expire_later(trade))

    async def _expire_later(self, trade: Trade) -> None:
        assert trade.expire_at is not None
        await asyncio.sleep(max(0.0, (trade.expire_at - _now()).total_seconds()))
        async with self._lock:
            notice = self.book.expire(trade, now=_now())
        if notice is not None:
            log.info("sandbox Alipay: %s closed unpaid at its expiry", trade.out_trade_no)
            self._notify(notice)

    def _precreate(
        self, params: dict[str, str], biz: dict[str, Any], now: datetime
    ) -> dict[str, str]:
        trade = self.book.create(
            biz,
            product_code=str(biz.get("product_code") or "FACE_TO_FACE_PAYMENT"),
            notify_url=params.get("notify_url", ""),
            return_url="",
            now=now,
        )
        self._watch_expiry(trade)
        return {
            "code": "10000",
            "msg": "Success",
            "out_trade_no": trade.out_trade_no,
            "qr_code": f"{self.url}qr/{trade.token}",
        }

    def _wap_pay(self, params: dict[str, str], biz: dict[str, Any]) -> Response:
        try:
            trade = self.book.create(
                biz,
                product_code=str(biz.get("product_code") or "QUICK_WAP_WAY"),
                notify_url=params.get("notify_url", ""),
                return_url=params.get("return_url", ""),
                now=_now(),
            )
        except ApiError as e:
            return self._error_page(e)
        self._watch_expiry(trade)
        return RedirectResponse(f"{self.url}qr/{trade.token}", status_code=302)

    # ---- the buyer --------------------------------------------------------------------------

    def pay(self, trade: Trade) -> str | None:
        """The buyer confirms: None if paid, else why not (declined, closed, paid already)."""
        if self._has(trade.out_trade_no, "declined"):
            log.info("sandbox Alipay: payment of %s declined (fault)", trade.out_trade_no)
            return "declined"
        expired = self.book.expire(trade, now=_now())
        if expired is not None:  # its expiry passed a moment ago: it closes first
            self._notify(expired)
        try:
            notice = self.book.pay(trade, now=_now())
        except ApiError as e:
            return e.sub_code
        log.info(
            "sandbox Alipay: %s paid %s yuan (%s)",
            trade.out_trade_no,
            fen_to_yuan(trade.total_fen),
            trade.trade_no,
        )
        self._notify(notice)
        return None

    async def pay_api(self, request: Request) -> Response:
        """``POST /sandbox/pay {"out_trade_no", "outcome"?: "success" | "declined"}``: the
        buyer pays, or the payment is declined (the trade stays unpaid); no browser."""
        try:
            body = orjson.loads(await request.body())
            out_trade_no = str(body["out_trade_no"])
            outcome = str(body.get("outcome", "success"))
        except (ValueError, KeyError, TypeError, AttributeError):
            return JSONResponse({"error": 'body must be {"out_trade_no": ...}'}, 400)
        if outcome not in ("success", "declined"):
            return JSONResponse({"error": "outcome is success or declined"}, 400)
        async with self._lock:
            trade = self.book.trades.get(out_trade_no)
            if trade is None:
                return JSONResponse({"error": "ACQ.TRADE_NOT_EXIST"}, 404)
            why = "declined" if outcome == "declined" else self.pay(trade)
        if why is not None:
            return JSONResponse({"error": why, "trade_status": trade.status}, 409)
        return JSONResponse({"trade_no": trade.trade_no, "trade_status": trade.status})

    async def faults_api(self, request: Request) -> Response:
        """``POST /sandbox/faults {"out_trade_no"?, "faults": [...], "timeouts_next"?}``;
        without out_trade_no, for every trade. The WeChat sandbox's words are taken too:
        ``"notify": "never" | "duplicate" | "out_of_order" | "late" | "normal"``."""
        try:
            body = orjson.loads(await request.body() or b"{}")
            key = str(body.get("out_trade_no") or "*")
            faults = {str(f) for f in body.get("faults", [])}
            notify = str(body.get("notify", "normal"))
            if notify != "normal":
                faults.add(_WECHAT_WORDS.get(notify, notify))
            self.set_faults(key, faults)
            if "timeouts_next" in body:
                self.timeouts_next = int(body["timeouts_next"])
        except (ValueError, AttributeError, TypeError) as e:
            return JSONResponse({"error": str(e), "known": list(FAULTS)}, 400)
        return JSONResponse({"out_trade_no": key, "faults": sorted(faults)})

    async def trades_api(self, request: Request) -> Response:
        """``GET /sandbox/trades``: the trades, newest first."""
        rows = [
            {
                "out_trade_no": t.out_trade_no,
                "trade_no": t.trade_no,
                "trade_status": t.status,
                "total_amount": fen_to_yuan(t.total_fen),
                "refunded": fen_to_yuan(t.refunded_fen, allow_zero=True),
                "qr_code": f"{self.url}qr/{t.token}",
            }
            for t in sorted(self.book.trades.values(), key=lambda t: t.created_at, reverse=True)
        ]
        return JSONResponse(rows)

    async def notifications_api(self, request: Request) -> Response:
        """``GET /sandbox/notifications?out_trade_no=``: notifications and their tries."""
        out = request.query_params.get("out_trade_no")
        return JSONResponse(
            [d.view() for d in self.deliveries if out is None or d.out_trade_no == out]
        )

    # ---- the pay page ---------------------------------------------------------------------

    async def pay_page(self, request: Request) -> Response:
        """``GET /qr/<token>``: what the buyer sees after scanning (or after wap pay)."""
        trade = self.book.by_token(request.path_params["token"])
        lang = "en" if request.query_params.get("lang") == "en" else "zh"
        if trade is None:
            return _page(lang, _T[lang]["missing"], "", status=404)
        return _page(lang, _T[lang]["title"], _trade_html(trade, lang, None))

    async def pay_action(self, request: Request) -> Response:
        """``POST /qr/<token>`` with ``action=confirm|decline``."""
        form = dict(parse_qsl((await request.body()).decode(errors="replace")))
        lang = "en" if form.get("lang") == "en" else "zh"
        trade = self.book.by_token(request.path_params["token"])
        if trade is None:
            return _page(lang, _T[lang]["missing"], "", status=404)
        if form.get("action") == "confirm":
            async with self._lock:
                why = self.pay(trade)
            outcome = "paid" if why is None else why
        else:
            outcome = "cancelled"
        return _page(lang, _T[lang]["title"], _trade_html(trade, lang, outcome))

    def _error_page(self, error: ApiError) -> Response:
        body = f"<p class=err>{html.escape(error.sub_code)}</p><p>{html.escape(error.sub_msg)}</p>"
        return _page("zh", "支付宝 · 错误", body, status=400)

    # ---- notifications ------------------------------------------------------------------

    def _notify(self, notice: Notice) -> None:
        """Send (or, by the trade's faults, hold or drop) a notification."""
        out = notice.out_trade_no
        if not notice.notify_url:
            return
        if self._has(out, "never_notify"):
            self.deliveries.append(self._delivery(notice, suppressed=True))
            log.info("sandbox Alipay: notification for %s dropped (never_notify)", out)
            return
        if notice.kind == "pay" and self._has(out, "late_after_close"):
            self._late[out] = notice
            self._spawn(self._release_after(out, "late"))
            return
        if self._has(out, "out_of_order"):
            held = self._held.setdefault(out, [])
            held.append(notice)
            if len(held) == 1:
                self._spawn(self._release_after(out, "held"))
            else:
                self._flush_held(out)
            return
        self._spawn(self._deliver(notice))

    def _flush_held(self, out_trade_no: str) -> None:
        held = self._held.pop(out_trade_no, [])
        if held:
            self._spawn(self._deliver_in_turn(list(reversed(held))))

    def _release_late(self, out_trade_no: str) -> None:
        notice = self._late.pop(out_trade_no, None)
        if notice is not None:
            self._spawn(self._deliver(notice, delay_s=0.05))

    async def _release_after(self, out_trade_no: str, which: str) -> None:
        await asyncio.sleep(self.config.hold_s)
        if which == "late":
            self._release_late(out_trade_no)
        else:
            self._flush_held(out_trade_no)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _delivery(self, notice: Notice, *, suppressed: bool = False) -> Delivery:
        signed = sign_notification(notice.params, self.config.alipay_private_key)
        return Delivery(
            notify_id=notice.params["notify_id"],
            out_trade_no=notice.out_trade_no,
            trade_status=notice.params["trade_status"],
            kind=notice.kind,
            params=signed,
            suppressed=suppressed,
        )

    async def _deliver_in_turn(self, notices: list[Notice]) -> None:
        """Deliver each one's first try before the next is sent (the order is the point)."""
        for notice in notices:
            delivery = self._delivery(notice)
            self.deliveries.append(delivery)
            if not await self._try(notice.notify_url, delivery):
                self._spawn(self._redeliver(notice.notify_url, delivery))

    async def _deliver(self, notice: Notice, *, delay_s: float = 0.0) -> None:
        if delay_s:
            await asyncio.sleep(delay_s)
        delivery = self._delivery(notice)
        self.deliveries.append(delivery)
        if not await self._try(notice.notify_url, delivery):
            await self._redeliver(notice.notify_url, delivery)

    async def _redeliver(self, url: str, delivery: Delivery) -> None:
        for wait_s in self.config.retry_schedule_s:
            await asyncio.sleep(wait_s)
            if await self._try(url, delivery):
                return
        delivery.gave_up = True
        log.warning(
            "sandbox Alipay: notification %s for %s never acknowledged",
            delivery.notify_id,
            delivery.out_trade_no,
        )

    async def _try(self, url: str, delivery: Delivery) -> bool:
        """One try (two at once with the ``duplicate`` fault); acknowledged by ``success``."""
        body = urlencode(delivery.params).encode()
        times = 2 if self._has(delivery.out_trade_no, "duplicate") else 1
        results = await asyncio.gather(*(self._post(url, body) for _ in range(times)))
        ok = False
        for status, text in results:
            delivery.attempts.append(Attempt(time.monotonic(), status, text))
            ok = ok or (status == 200 and text == "success")
        delivery.acked = delivery.acked or ok
        return ok

    async def _post(self, url: str, body: bytes) -> tuple[int | None, str]:
        try:
            r = await self._http.post(
                url,
                content=body,
                headers={"content-type": "application/x-www-form-urlencoded; charset=utf-8"},
            )
        except (httpx.HTTPError, OSError) as e:
            return None, type(e).__name__
        return r.status_code, r.text


# ---- the page -------------------------------------------------------------------------------

_T = {
    "zh": {
        "title": "支付宝 · 付款",
        "missing": "二维码已失效",
        "merchant": "收款方",
        "amount": "金额",
        "order": "商户订单号",
        "status": "状态",
        "confirm": "确认付款",
        "decline": "取消",
        "paid": "支付成功",
        "cancelled": "已取消付款（交易仍待支付）",
        "declined": "付款被拒绝：余额不足（交易仍待支付）",
        "ACQ.TRADE_HAS_CLOSE": "交易已关闭，无法付款",
        "ACQ.TRADE_HAS_SUCCESS": "交易已付款",
        "back": "返回商户",
        "other": "English",
        "note": "沙箱网关：不会扣除真实资金。",
    },
    "en": {
        "title": "Alipay · Pay",
        "missing": "This QR code is no longer valid",
        "merchant": "Payee",
        "amount": "Amount",
        "order": "Merchant order no.",
        "status": "Status",
        "confirm": "Confirm payment",
        "decline": "Cancel",
        "paid": "Paid",
        "cancelled": "Payment cancelled (the trade still awaits payment)",
        "declined": "Payment declined: insufficient balance (the trade still awaits payment)",
        "ACQ.TRADE_HAS_CLOSE": "The trade is closed and cannot be paid",
        "ACQ.TRADE_HAS_SUCCESS": "The trade is paid already",
        "back": "Back to the merchant",
        "other": "中文",
        "note": "Sandbox gateway: no real money moves.",
    },
}

_CSS = (
    "body{font-family:system-ui,'PingFang SC','Noto Sans CJK SC','WenQuanYi Micro Hei',sans-serif;"
    "max-width:26rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "h1{color:#1677ff;font-size:1.4rem}.amount{font-size:2rem;font-weight:600}"
    "dl{display:grid;grid-template-columns:auto 1fr;gap:.3rem 1rem}dt{color:#666}"
    "button{font-size:1.1rem;padding:.6rem 1.2rem;margin:.3rem .3rem 0 0;border-radius:.4rem;"
    "border:1px solid #1677ff}button.pay{background:#1677ff;color:#fff}"
    ".ok{color:#0a7d28;font-weight:600}.err{color:#c00;font-weight:600}.note{color:#888}"
)


def _page(lang: str, title: str, body: str, *, status: int = 200) -> HTMLResponse:
    other = "en" if lang == "zh" else "zh"
    text = (
        f'<!doctype html><html lang="{"zh-CN" if lang == "zh" else "en"}"><head>'
        f'<meta charset="utf-8"><meta name="viewport" content="width=device-width">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{body}"
        f'<p class=note>{_T[lang]["note"]} <a href="?lang={other}" id=lang>{_T[lang]["other"]}</a></p>'
        "</body></html>"
    )
    return HTMLResponse(text, status_code=status)


def _trade_html(trade: Trade, lang: str, outcome: str | None) -> str:
    t = _T[lang]
    parts = [
        f"<p class=amount id=amount>¥{fen_to_yuan(trade.total_fen)}</p>",
        f"<p id=subject>{html.escape(trade.subject)}</p>",
        "<dl>",
        f"<dt>{t['merchant']}</dt><dd>到家服务 Doorstep</dd>",
        f"<dt>{t['order']}</dt><dd>{html.escape(trade.out_trade_no)}</dd>",
        f"<dt>{t['status']}</dt><dd id=status>{trade.status}</dd>",
        "</dl>",
    ]
    if outcome is not None:
        cls = "ok" if outcome == "paid" else "err"
        parts.append(f"<p class={cls} id=outcome>{html.escape(t.get(outcome, outcome))}</p>")
    if trade.status == "WAIT_BUYER_PAY":
        parts.append(
            f'<form method=post><input type=hidden name=lang value="{lang}">'
            f"<button class=pay name=action value=confirm id=confirm>{t['confirm']}</button>"
            f"<button name=action value=decline id=decline>{t['decline']}</button></form>"
        )
    elif trade.return_url and outcome == "paid":
        query = urlencode(
            {
                "out_trade_no": trade.out_trade_no,
                "trade_no": trade.trade_no,
                "total_amount": fen_to_yuan(trade.total_fen),
            }
        )
        sep = "&" if "?" in trade.return_url else "?"
        parts.append(
            f'<p><a href="{html.escape(trade.return_url + sep + query)}">{t["back"]}</a></p>'
        )
    return "".join(parts)


# ---- the server -----------------------------------------------------------------------------


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signals to the process's own server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class AlipaySandboxServer:
    """The sandbox on a real uvicorn server, in this process."""

    def __init__(self, sandbox: AlipaySandbox, port: int) -> None:
        self.sandbox = sandbox
        self.port = port
        sandbox.url = f"http://127.0.0.1:{port}/"
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

    @property
    def url(self) -> str:
        """The sandbox's root address."""
        return self.sandbox.url

    async def start(self) -> None:
        """Serve, and return once it listens."""
        self._task = asyncio.create_task(self._server.serve(), name="alipay-sandbox")
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.02)
        log.info("Alipay sandbox gateway at %s", self.sandbox.gateway_url)

    async def stop(self) -> None:
        """Stop serving and delivering notifications."""
        await self.sandbox.close()
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
