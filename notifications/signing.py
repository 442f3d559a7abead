"""Signatures of the SMS gateway's protocol, pure (no I/O; time comes in as ``now``).

Requests to the gateway are signed as Alibaba Cloud's RPC APIs (SendSms) are: the
parameters sorted and percent-encoded, ``POST&%2F&<encoded query>`` signed with
HMAC-SHA1 under ``secret + "&"``, base64. Delivery receipts the gateway posts back are
signed with HMAC-SHA256 over ``<timestamp>.<body>`` under the same secret, and refused
when their timestamp is more than :data:`RECEIPT_SKEW_S` away from now.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote

RECEIPT_SKEW_S = 300
REQUEST_SKEW_S = 900


def percent_encode(value: str) -> str:
    """RFC 3986 encoding as Alibaba Cloud signs it (space is %20, ``~`` stays)."""
    return quote(value, safe="~")


def request_signature(params: Mapping[str, str], secret: str, *, method: str = "POST") -> str:
    """The ``Signature`` of a request's parameters (``Signature`` itself left out)."""
    canonical = "&".join(
        f"{percent_encode(k)}={percent_encode(v)}"
        for k, v in sorted(params.items())
        if k != "Signature"
    )
    to_sign = f"{method}&{percent_encode('/')}&{percent_encode(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def rpc_request_error(
    form: Mapping[str, str], *, key_id: str, secret: str, now: datetime
) -> tuple[str, str, int] | None:
    """What a gateway of Alibaba Cloud's RPC shape finds wrong with a request's key id,
    signature and timestamp: ``(Code, Message, HTTP status)``, or None. (The nonce's
    freshness is the gateway's own state: checked after this.)"""
    if form.get("AccessKeyId") != key_id:
        return "InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404
    if not hmac.compare_digest(form.get("Signature", ""), request_signature(form, secret)):
        return (
            "SignatureDoesNotMatch",
            "Specified signature is not matched with our calculation.",
            400,
        )
    try:
        ts = datetime.strptime(form.get("Timestamp", ""), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "InvalidTimeStamp.Format", "Timestamp is yyyy-MM-ddTHH:mm:ssZ", 400
    if abs((now - ts).total_seconds()) > REQUEST_SKEW_S:
        return "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.", 400
    return None


class Nonces:
    """The request nonces a gateway has seen within :data:`REQUEST_SKEW_S` (each is taken
    once); the caller passes the time."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}

    def fresh(self, nonce: str, now: float) -> bool:
        """True, and remembered, if ``nonce`` is non-empty and not seen recently."""
        for old, at in list(self._seen.items()):
            if now - at > REQUEST_SKEW_S:
                del self._seen[old]
        if not nonce or nonce in self._seen:
            return False
        self._seen[nonce] = now
        return True


def receipt_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Sms-Signature`` of a receipt posted at ``timestamp``."""
    return hmac.new(
        secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256
    ).hexdigest()


def receipt_ok(secret: str, timestamp: str, signature: str, body: bytes, *, now: int) -> str | None:
    """None if the receipt is genuine and fresh; else what is wrong with it."""
    if not timestamp.isdigit():
        return "X-Sms-Timestamp must be unix seconds"
    if abs(now - int(timestamp)) > RECEIPT_SKEW_S:
        return f"X-Sms-Timestamp is more than {RECEIPT_SKEW_S} s from now"
    if not hmac.compare_digest(receipt_signature(secret, int(timestamp), body), signature):
        return "X-Sms-Signature does not match the body"
    return None
