"""The WeChat Pay API v3 adapter: our :class:`payments.providers.PaymentProvider`.

Why our own client and not the ``wechatpayv3`` SDK in production: the SDK's async
client needs ``aiofiles`` and opens an ``httpx`` client per ``async with``, its
gateway host is a private attribute (``_core._gate_way``), it raises bare
``Exception``s, and it logs whole request headers at DEBUG (the Authorization header
with it). This client is ~250 lines over the same wire rules (``payments.wechat_wire``,
which follows the SDK's ``utils.py``); ``tests/test_wechat_sandbox.py`` runs the SDK
itself against our sandbox (host set on its core), so the sandbox and this client are
checked against a third party's reading of the protocol.

Keys come from settings and are never logged (``__repr__`` leaves them out).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from cryptography.hazmat.primitives.asymmetric import rsa

from payments import wechat_wire as wire
from payments.errors import NotificationRejected, ProviderRefused, ProviderUnavailable
from payments.providers import (
    Ack,
    Notice,
    PaymentNotice,
    Prepay,
    PrepayRequest,
    ProviderName,
    Refund,
    RefundNotice,
    RefundRequest,
    RefundStatus,
    Trade,
    TradeStatus,
)

LIVE_URL = "https://api.mch.weixin.qq.com"
TRADE_STATUS: dict[str, TradeStatus] = {
    "NOTPAY": "pending",
    "USERPAYING": "pending",
    "SUCCESS": "paid",
    "REFUND": "paid",
    "CLOSED": "closed",
    "REVOKED": "closed",
    "PAYERROR": "failed",
}
REFUND_STATUS: dict[str, RefundStatus] = {
    "PROCESSING": "processing",
    "SUCCESS": "succeeded",
    "CLOSED": "closed",
    "ABNORMAL": "abnormal",
}


@dataclass(frozen=True)
class WeChatConfig:
    """A merchant's WeChat Pay account: ids, keys and the gateway's URL."""

    url: str
    mchid: str
    appid: str
    merchant_serial: str
    merchant_key: rsa.RSAPrivateKey
    platform_public_key: rsa.RSAPublicKey
    platform_key_id: str
    apiv3_key: str
    timeout_s: float = 10.0

    def __repr__(self) -> str:
        return f"WeChatConfig(url={self.url!r}, mchid={self.mchid!r}, appid={self.appid!r})"


class WeChatPay:
    """WeChat Pay API v3 (direct merchant, platform public-key mode)."""

    def __init__(self, config: WeChatConfig, *, http: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._http = http or httpx.AsyncClient(
            timeout=config.timeout_s, limits=httpx.Limits(max_connections=50)
        )

    @property
    def name(self) -> ProviderName:
        """``wechat``."""
        return "wechat"

    @property
    def merchant_id(self) -> str:
        """Our mchid."""
        return self.config.mchid

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()

    # --- the wire ------------------------------------------------------------------------

    async def _call(
        self, method: str, path: str, payload: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        body = orjson.dumps(payload) if payload is not None else b""
        auth = wire.authorization(
            self.config.merchant_key,
            mchid=self.config.mchid,
            serial_no=self.config.merchant_serial,
            method=method,
            path=path,
            body=body,
            timestamp=int(time.time()),
            nonce=wire.new_nonce(),
        )
        headers = {
            "Authorization": auth,
            "Accept": "application/json",
            "Content-Type": "application/json",
            "Wechatpay-Serial": self.config.platform_key_id,
            "User-Agent": "doorstep-wechatpay/1",
        }
        try:
            r = await self._http.request(
                method, self.config.url + path, content=body, headers=headers
            )
        except httpx.TimeoutException as e:
            raise ProviderUnavailable(
                f"WeChat Pay did not answer {method} {path} in time", provider_code="TIMEOUT"
            ) from e
        except httpx.HTTPError as e:
            raise ProviderUnavailable(
                f"WeChat Pay unreachable: {type(e).__name__}", provider_code="NETWORK"
            ) from e
        data: Any = orjson.loads(r.content) if r.content else None
        if r.status_code >= 500:
            code = data.get("code", "SYSTEM_ERROR") if isinstance(data, dict) else "SYSTEM_ERROR"
            raise ProviderUnavailable(f"WeChat Pay {r.status_code} {code}", provider_code=code)
        if 200 <= r.status_code < 300:
            why = wire.check_signed(
                dict(r.headers),
                r.content,
                public_key=self.config.platform_public_key,
                public_key_id=self.config.platform_key_id,
                now_s=int(time.time()),
            )
            if why is not None:  # an answer we cannot trust is no answer
                raise ProviderUnavailable(
                    f"WeChat Pay answer not verified: {why}", provider_code="SIGN"
                )
            return r.status_code, data
        code = data.get("code", "") if isinstance(data, dict) else ""
        message = data.get("message", "") if isinstance(data, dict) else r.text
        raise ProviderRefused(f"WeChat Pay refused: {code} {message}", provider_code=code)

    # --- the Protocol --------------------------------------------------------------------

    async def prepay(self, request: PrepayRequest) -> Prepay:
        """JSAPI / H5 / Native prepay."""
        payload: dict[str, Any] = {
            "appid": self.config.appid,
            "mchid": self.config.mchid,
            "description": request.description[:127],
            "out_trade_no": request.out_trade_no,
            "notify_url": request.notify_url,
            "amount": {"total": request.amount_fen, "currency": request.currency},
        }
        if request.expire_at is not None:
            payload["time_expire"] = wire.rfc3339(request.expire_at)
        if request.channel == "jsapi":
            payload["payer"] = {"openid": request.payer_openid or ""}
        elif request.channel == "h5":
            payload["scene_info"] = {
                "payer_client_ip": request.client_ip or "127.0.0.1",
                "h5_info": {"type": "Wap"},
            }
        elif request.channel != "native":
            raise ProviderRefused(
                f"WeChat Pay has no {request.channel!r} channel",
                provider_code="PARAM_ERROR",
                field="channel",
            )
        _, data = await self._call("POST", f"/v3/pay/transactions/{request.channel}", payload)
        out = Prepay(provider="wechat", out_trade_no=request.out_trade_no, channel=request.channel)
        if request.channel == "jsapi":
            prepay_id = str(data["prepay_id"])
            return Prepay(
                provider="wechat",
                out_trade_no=request.out_trade_no,
                channel="jsapi",
                prepay_id=prepay_id,
                pay_url=f"{self.config.url}/pay?prepay_id={prepay_id}"
                if self.config.url != LIVE_URL
                else None,
                pay_params=wire.jsapi_pay_params(
                    self.config.merchant_key,
                    appid=self.config.appid,
                    prepay_id=prepay_id,
                    timestamp=int(time.time()),
                    nonce=wire.new_nonce(),
                ),
            )
        if request.channel == "native":
            code_url = str(data["code_url"])
            sandbox_page = (
                f"{self.config.url}/pay?pr={code_url.rsplit('pr=', 1)[-1]}"
                if self.config.url != LIVE_URL
                else None
            )
            return Prepay(
                provider="wechat",
                out_trade_no=out.out_trade_no,
                channel="native",
                code_url=code_url,
                pay_url=sandbox_page,
            )
        return Prepay(
            provider="wechat",
            out_trade_no=out.out_trade_no,
            channel="h5",
            pay_url=str(data["h5_url"]),
        )

    def _trade(self, data: Mapping[str, Any]) -> Trade:
        amount = data.get("amount") or {}
        state = str(data.get("trade_state", ""))
        success = data.get("success_time")
        return Trade(
            provider="wechat",
            out_trade_no=str(data.get("out_trade_no", "")),
            status=TRADE_STATUS.get(state, "pending"),
            provider_state=state,
            amount_fen=int(amount.get("total", -1)),
            currency=str(amount.get("currency", "")),
            merchant_id=str(data.get("mchid", "")),
            app_id=str(data.get("appid", "")),
            provider_trade_no=data.get("transaction_id") or None,
            payer_paid_fen=amount.get("payer_total"),
            paid_at=wire.parse_rfc3339(success) if success else None,
        )

    async def query(self, out_trade_no: str) -> Trade:
        """``GET /v3/pay/transactions/out-trade-no/{no}?mchid=``."""
        _, data = await self._call(
            "GET",
            f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no)}?mchid={self.config.mchid}",
        )
        return self._trade(data)

    async def close(self, out_trade_no: str) -> None:
        """``POST …/out-trade-no/{no}/close``."""
        await self._call(
            "POST",
            f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no)}/close",
            {"mchid": self.config.mchid},
        )

    def _refund(self, data: Mapping[str, Any]) -> Refund:
        amount = data.get("amount") or {}
        state = str(data.get("status") or data.get("refund_status") or "")
        success = data.get("success_time")
        return Refund(
            provider="wechat",
            out_trade_no=str(data.get("out_trade_no", "")),
            out_refund_no=str(data.get("out_refund_no", "")),
            status=REFUND_STATUS.get(state, "processing"),
            provider_state=state,
            refund_fen=int(amount.get("refund", -1)),
            total_fen=int(amount.get("total", -1)),
            currency=str(amount.get("currency", "CNY")),
            merchant_id=str(data.get("mchid", self.config.mchid)),
            provider_refund_no=data.get("refund_id"),
            succeeded_at=wire.parse_rfc3339(success) if success else None,
        )

    async def refund(self, request: RefundRequest) -> Refund:
        """``POST /v3/refund/domestic/refunds``."""
        _, data = await self._call(
            "POST",
            "/v3/refund/domestic/refunds",
            {
                "out_trade_no": request.out_trade_no,
                "out_refund_no": request.out_refund_no,
                "reason": request.reason[:80],
                "notify_url": request.notify_url,
                "amount": {
                    "refund": request.refund_fen,
                    "total": request.total_fen,
                    "currency": request.currency,
                },
            },
        )
        return self._refund(data)

    async def query_refund(self, out_trade_no: str, out_refund_no: str) -> Refund:
        """``GET /v3/refund/domestic/refunds/{out_refund_no}``."""
        _, data = await self._call("GET", f"/v3/refund/domestic/refunds/{quote(out_refund_no)}")
        return self._refund(data)

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notice:
        """Verify the signature over the raw body, decrypt the resource, check the mchid."""
        why = wire.check_signed(
            dict(headers),
            body,
            public_key=self.config.platform_public_key,
            public_key_id=self.config.platform_key_id,
            now_s=int(time.time()),
        )
        if why is not None:
            raise NotificationRejected(why, field="Wechatpay-Signature")
        try:
            envelope = orjson.loads(body)
            resource = envelope["resource"]
            if resource.get("algorithm") != "AEAD_AES_256_GCM":
                raise NotificationRejected("unsupported algorithm", field="resource.algorithm")
            plain = wire.decrypt_resource(
                self.config.apiv3_key,
                resource["ciphertext"],
                associated_data=resource.get("associated_data", ""),
                nonce=resource["nonce"],
            )
            data = orjson.loads(plain)
            event_type = str(envelope["event_type"])
            notify_id = str(envelope["id"])
        except NotificationRejected:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise NotificationRejected(f"malformed notification: {e}", field="resource") from e
        if str(data.get("mchid", "")) != self.config.mchid:
            raise NotificationRejected("mchid is not ours", field="mchid")
        if event_type.startswith("TRANSACTION."):
            trade = self._trade(data)
            if trade.app_id != self.config.appid:
                raise NotificationRejected("appid is not ours", field="appid")
            return PaymentNotice(notify_id=notify_id, trade=trade)
        if event_type.startswith("REFUND."):
            return RefundNotice(notify_id=notify_id, refund=self._refund(data))
        raise NotificationRejected(f"unknown event_type {event_type!r}", field="event_type")

    def acknowledge(self, ok: bool, message: str = "") -> Ack:
        """204 with no body, or 400/500 with ``{"code": "FAIL", "message": …}``."""
        if ok:
            return Ack(status=204)
        return Ack(
            status=400 if message else 500,
            body=orjson.dumps({"code": "FAIL", "message": message or "失败"}),
            content_type="application/json",
        )


def sandbox_config(keys: Any, url: str) -> WeChatConfig:
    """Our client's configuration for a sandbox's keys (``wechat_sandbox.SandboxKeys``)."""
    return WeChatConfig(
        url=url,
        mchid=keys.mchid,
        appid=keys.appid,
        merchant_serial=keys.merchant_serial,
        merchant_key=keys.merchant_key,
        platform_public_key=keys.platform_key.public_key(),
        platform_key_id=keys.platform_key_id,
        apiv3_key=keys.apiv3_key,
    )


def parse_time(text: str | None) -> datetime | None:
    """A WeChat time, or None."""
    return wire.parse_rfc3339(text) if text else None
