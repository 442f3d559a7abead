"""The number-masking provider interface, and its client for an Aliyun-shaped gateway.

Alibaba Cloud's Phone Number Protection (号码隐私保护, ``Dyplsapi``, version 2017-05-25)
is an RPC API like SMS: form fields signed with HMAC-SHA1
(:func:`notifications.signing.request_signature`). ``BindAxb`` binds A and B to a
number X from a pool until ``Expiration`` and answers ``SecretBindDTO`` (``SubsId``,
``SecretNo``); ``UnbindSubscription`` ends it. The sandbox
(:mod:`privacy.axb_sandbox`) speaks the same; production points ``DOORSTEP_AXB_URL``
at the real endpoint (``https://dyplsapi.aliyuncs.com/``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

import httpx

from notifications.signing import request_signature

VERSION = "2017-05-25"
BEIJING = ZoneInfo("Asia/Shanghai")  # the API's ``Expiration`` is Beijing time
# Answers worth trying again later.
RETRYABLE = frozenset({"Throttling.User", "ServiceUnavailable", "isv.NO_AVAILABLE_NUMBER"})


class MaskingFailed(Exception):
    """The provider refused or could not be reached; ``retryable`` says whether to retry."""

    def __init__(self, code: str, message: str, *, retryable: bool) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class Binding:
    """A binding the provider made: its id and the temporary number."""

    subs_id: str
    secret_no: str


class NumberMasking(Protocol):
    """What privacy needs of a number-masking provider."""

    async def bind(self, *, a: str, b: str, expires: datetime, out_id: str) -> Binding:
        """Bind A and B to a temporary number until ``expires``; the same ``out_id``
        binds once (a retry answers the same binding)."""
        ...

    async def unbind(self, binding: Binding) -> None:
        """End the binding; one already gone is not an error."""
        ...


@dataclass(frozen=True, slots=True)
class AxbConfig:
    """Where the provider is, the credentials it knows us by, and our number pool."""

    url: str
    key_id: str
    secret: str
    pool_key: str


class AliyunLikeAxb:
    """A client of an Aliyun-Dyplsapi-shaped provider."""

    def __init__(self, config: AxbConfig, *, timeout_s: float = 10.0) -> None:
        self.config = config
        self._http = httpx.AsyncClient(timeout=timeout_s)

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()

    def signed(self, action: str, fields: dict[str, str]) -> dict[str, str]:
        """The request's form fields for ``action``, signed."""
        form = {
            "AccessKeyId": self.config.key_id,
            "Action": action,
            "Format": "JSON",
            "PoolKey": self.config.pool_key,
            "RegionId": "cn-hangzhou",
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": VERSION,
            **fields,
        }
        form["Signature"] = request_signature(form, self.config.secret)
        return form

    async def _call(self, action: str, fields: dict[str, str]) -> dict[str, object]:
        try:
            r = await self._http.post(self.config.url, data=self.signed(action, fields))
            answer = r.json()
        except (httpx.HTTPError, ValueError) as e:
            raise MaskingFailed("Unreachable", str(e) or type(e).__name__, retryable=True) from None
        if not isinstance(answer, dict):
            raise MaskingFailed(f"HTTP {r.status_code}", r.text[:200], retryable=True)
        code = str(answer.get("Code", ""))
        if code != "OK":
            raise MaskingFailed(
                code or f"HTTP {r.status_code}",
                str(answer.get("Message", "")),
                retryable=code in RETRYABLE or r.status_code >= 500,
            )
        return answer

    async def bind(self, *, a: str, b: str, expires: datetime, out_id: str) -> Binding:
        """``BindAxb``; the binding, or :class:`MaskingFailed`."""
        answer = await self._call(
            "BindAxb",
            {
                "PhoneNoA": a,
                "PhoneNoB": b,
                "Expiration": expires.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
                "OutId": out_id,
                "IsRecordingEnabled": "false",
            },
        )
        dto = answer.get("SecretBindDTO")
        if not isinstance(dto, dict) or "SubsId" not in dto or "SecretNo" not in dto:
            raise MaskingFailed("BadAnswer", "no SecretBindDTO in the answer", retryable=True)
        return Binding(str(dto["SubsId"]), str(dto["SecretNo"]))

    async def unbind(self, binding: Binding) -> None:
        """``UnbindSubscription``; a binding the provider no longer has counts as ended."""
        try:
            await self._call(
                "UnbindSubscription", {"SubsId": binding.subs_id, "SecretNo": binding.secret_no}
            )
        except MaskingFailed as e:
            if e.code != "isv.NO_BINDING":
                raise
