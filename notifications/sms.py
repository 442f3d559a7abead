"""The SMS provider interface, and its client for an Aliyun-SMS-shaped gateway.

A provider takes a phone, a template code, the template's parameters and our message id
(``out_id``: a retried request with the same id is not sent twice) and answers the
gateway's id for the message. Delivery is reported later, by a receipt the gateway
posts to ``/v1/sms/receipts``. The sandbox gateway (:mod:`notifications.sandbox`)
speaks the same protocol; production points ``DOORSTEP_SMS_URL`` at a real one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import httpx
import orjson

from notifications.signing import request_signature

# Gateway answers that are worth trying again later (the message was not taken).
RETRYABLE = frozenset({"isv.BUSINESS_LIMIT_CONTROL", "Throttling.User", "ServiceUnavailable"})


class SmsFailed(Exception):
    """The gateway did not take the message; ``retryable`` says whether to try again."""

    def __init__(self, code: str, message: str, *, retryable: bool) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.retryable = retryable


class SmsProvider(Protocol):
    """What notifications need of an SMS gateway."""

    async def send(
        self, *, phone: str, template_code: str, params: dict[str, str], out_id: str
    ) -> str:
        """Hand the message over; the gateway's id for it (``BizId``), or :class:`SmsFailed`."""
        ...


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """Where the gateway is and the credentials it knows us by."""

    url: str
    key_id: str
    secret: str
    sign_name: str


class AliyunLikeSms:
    """A client of an Alibaba-Cloud-SMS-shaped gateway (``Action=SendSms``)."""

    def __init__(self, config: GatewayConfig, *, timeout_s: float = 10.0) -> None:
        self.config = config
        self._http = httpx.AsyncClient(timeout=timeout_s)

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()

    def signed(
        self, phone: str, template_code: str, params: dict[str, str], out_id: str
    ) -> dict[str, str]:
        """The request's form fields, signed."""
        fields = {
            "AccessKeyId": self.config.key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "OutId": out_id,
            "PhoneNumbers": phone,
            "RegionId": "cn-hangzhou",
            "SignName": self.config.sign_name,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "TemplateCode": template_code,
            "TemplateParam": orjson.dumps(params).decode(),
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": "2017-05-25",
        }
        fields["Signature"] = request_signature(fields, self.config.secret)
        return fields

    async def send(
        self, *, phone: str, template_code: str, params: dict[str, str], out_id: str
    ) -> str:
        """POST SendSms; the BizId, or :class:`SmsFailed`."""
        try:
            r = await self._http.post(
                self.config.url, data=self.signed(phone, template_code, params, out_id)
            )
            answer = r.json()
        except (httpx.HTTPError, ValueError) as e:
            raise SmsFailed("Unreachable", str(e) or type(e).__name__, retryable=True) from None
        code = str(answer.get("Code", "")) if isinstance(answer, dict) else ""
        if code == "OK":
            return str(answer["BizId"])
        message = str(answer.get("Message", "")) if isinstance(answer, dict) else r.text[:200]
        raise SmsFailed(
            code or f"HTTP {r.status_code}",
            message,
            retryable=code in RETRYABLE or r.status_code >= 500,
        )
