"""Payouts: what the withdrawals need of a payout channel (a Protocol), and the client of
WeChat Pay's transfer to a balance (商家转账到零钱, API v3) that speaks it.

A payout is named by *our* numbers (``out_batch_no``, ``out_detail_no``, one transfer per
batch), so a request repeated after a timeout is the same transfer at the provider.
:meth:`PayoutChannel.transfer` answers what the provider said; an answer that never came
raises :class:`PayoutUnknown` — the transfer may or may not have been taken, and only a
:meth:`PayoutChannel.query` tells.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal, Protocol

import httpx
import orjson
from cryptography.hazmat.primitives.asymmetric import rsa

from payments import wechat_wire as wire

PayoutStatus = Literal["processing", "succeeded", "failed", "not_found"]


class PayoutUnknown(Exception):
    """No usable answer (timeout, connection refused, 5xx, a bad signature): query later."""


class PayoutRefused(Exception):
    """The provider refused the transfer outright (nothing was taken): its code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class PayoutRequest:
    """One transfer to a person's balance."""

    out_batch_no: str
    out_detail_no: str
    amount_fen: int
    openid: str
    remark: str


@dataclass(frozen=True, slots=True)
class PayoutState:
    """A transfer as the provider holds it."""

    status: PayoutStatus
    provider_state: str  # ACCEPTED, PROCESSING, SUCCESS, FAIL, NOT_FOUND
    fail_reason: str = ""


class PayoutChannel(Protocol):
    """A payout channel, live or sandbox."""

    async def transfer(self, request: PayoutRequest) -> PayoutState:
        """Hand the transfer over (idempotent by its numbers)."""
        ...

    async def query(self, out_batch_no: str, out_detail_no: str) -> PayoutState:
        """The transfer's state."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


@dataclass(frozen=True)
class WeChatTransferConfig:
    """Where the API is and who we are to it."""

    base_url: str
    mchid: str
    appid: str
    serial_no: str  # our merchant certificate's serial
    private_key: rsa.RSAPrivateKey
    platform_public: rsa.RSAPublicKey  # public-key mode: verifies the answers ...
    platform_serial: str  # ... whose Wechatpay-Serial must be this key's id
    timeout_s: float = 5.0


_DETAIL = {"SUCCESS": "succeeded", "FAIL": "failed"}
# Answers that do not refuse the transfer: the same request later may be taken.
_TRY_AGAIN = frozenset({"FREQUENCY_LIMITED", "SYSTEM_ERROR"})


class WeChatTransfers:
    """The v3 transfer API client (requests signed, answers verified)."""

    def __init__(self, config: WeChatTransferConfig) -> None:
        self.config = config
        self._http = httpx.AsyncClient(base_url=config.base_url, timeout=config.timeout_s)

    async def close(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def _call(
        self, method: str, url: str, body: bytes = b""
    ) -> tuple[int, dict[str, object]]:
        c = self.config
        auth = wire.authorization(
            c.private_key,
            mchid=c.mchid,
            serial_no=c.serial_no,
            method=method,
            path=url,
            body=body,
            timestamp=int(time.time()),
            nonce=wire.new_nonce(),
        )
        headers = {"Authorization": auth, "Accept": "application/json"}
        if body:
            headers["Content-Type"] = "application/json"
        try:
            r = await self._http.request(method, url, content=body, headers=headers)
        except (httpx.HTTPError, OSError) as e:
            raise PayoutUnknown(f"no answer from the payout channel: {type(e).__name__}") from e
        why = wire.check_signed(
            dict(r.headers),
            r.content,
            public_key=c.platform_public,
            public_key_id=c.platform_serial,
            now_s=int(time.time()),
        )
        if why is not None:
            raise PayoutUnknown(f"the answer is not WeChat Pay's: {why}")
        if r.status_code >= 500:
            raise PayoutUnknown(f"the payout channel answered {r.status_code}")
        try:
            data = orjson.loads(r.content) if r.content else {}
        except orjson.JSONDecodeError:
            raise PayoutUnknown("the answer is not JSON") from None
        if not isinstance(data, dict):
            raise PayoutUnknown("the answer is not a JSON object")
        return r.status_code, data

    async def transfer(self, request: PayoutRequest) -> PayoutState:
        """``POST /v3/transfer/batches`` with one detail."""
        body = orjson.dumps(
            {
                "appid": self.config.appid,
                "out_batch_no": request.out_batch_no,
                "batch_name": "提现",
                "batch_remark": request.remark[:32],
                "total_amount": request.amount_fen,
                "total_num": 1,
                "transfer_detail_list": [
                    {
                        "out_detail_no": request.out_detail_no,
                        "transfer_amount": request.amount_fen,
                        "transfer_remark": request.remark[:32],
                        "openid": request.openid,
                    }
                ],
            }
        )
        status, data = await self._call("POST", "/v3/transfer/batches", body)
        if status == 429 or data.get("code") in _TRY_AGAIN:  # not taken: the same call later
            raise PayoutUnknown(f"the payout channel asks to try again: {data.get('code')}")
        if status >= 400:
            raise PayoutRefused(str(data.get("code", status)), str(data.get("message", "")))
        return PayoutState("processing", str(data.get("batch_status", "ACCEPTED")))

    async def query(self, out_batch_no: str, out_detail_no: str) -> PayoutState:
        """``GET …/out-batch-no/{no}/details/out-detail-no/{detail_no}``."""
        url = f"/v3/transfer/batches/out-batch-no/{out_batch_no}/details/out-detail-no/{out_detail_no}"
        status, data = await self._call("GET", url)
        if status == 404:
            return PayoutState("not_found", "NOT_FOUND")
        if status >= 400:
            raise PayoutUnknown(f"query refused: {data.get('code')}: {data.get('message')}")
        state = str(data.get("detail_status", ""))
        return PayoutState(
            _DETAIL.get(state, "processing"),  # type: ignore[arg-type]
            state,
            str(data.get("fail_reason", "")),
        )
