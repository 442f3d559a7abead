"""TC3-HMAC-SHA256 request signatures, as Tencent Cloud's API 3.0 (and its 人脸核身 /
FaceID identity-verification service) defines them. Pure: no I/O, time as an argument.

    CanonicalRequest = "POST\\n/\\n\\n" + canonical headers + "\\n" + signed headers + "\\n"
                       + sha256_hex(body)
    StringToSign     = "TC3-HMAC-SHA256\\n" + timestamp + "\\n" + scope + "\\n"
                       + sha256_hex(CanonicalRequest)
    scope            = date + "/" + service + "/tc3_request"
    key              = HMAC(HMAC(HMAC("TC3" + secret_key, date), service), "tc3_request")
    Authorization    = "TC3-HMAC-SHA256 Credential=<id>/<scope>, SignedHeaders=content-type;host,
                        Signature=" + hex(HMAC(key, StringToSign))
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

ALGORITHM = "TC3-HMAC-SHA256"
CONTENT_TYPE = "application/json; charset=utf-8"
SIGNED_HEADERS = "content-type;host"
SKEW_S = 300  # a request more than 5 minutes off the server's clock is refused


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def scope_date(timestamp: int) -> str:
    """The UTC date of the signature's scope."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def signature(*, secret_key: str, service: str, host: str, body: bytes, timestamp: int) -> str:
    """The hex signature of a POST of ``body`` to ``host`` at ``timestamp``."""
    canonical = "\n".join(
        [
            "POST",
            "/",
            "",
            f"content-type:{CONTENT_TYPE}\nhost:{host}\n",
            SIGNED_HEADERS,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    day = scope_date(timestamp)
    scope = f"{day}/{service}/tc3_request"
    to_sign = "\n".join(
        [ALGORITHM, str(timestamp), scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(_hmac(_hmac(("TC3" + secret_key).encode(), day), service), "tc3_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def authorization(
    *, secret_id: str, secret_key: str, service: str, host: str, body: bytes, timestamp: int
) -> str:
    """The ``Authorization`` header's value."""
    sig = signature(
        secret_key=secret_key, service=service, host=host, body=body, timestamp=timestamp
    )
    scope = f"{scope_date(timestamp)}/{service}/tc3_request"
    return (
        f"{ALGORITHM} Credential={secret_id}/{scope}, SignedHeaders={SIGNED_HEADERS}, "
        f"Signature={sig}"
    )


def parse_authorization(value: str) -> dict[str, str]:
    """``{"algorithm", "secret_id", "scope", "signed_headers", "signature"}`` (empty if
    malformed)."""
    algorithm, _, rest = value.partition(" ")
    parts = dict(p.strip().partition("=")[::2] for p in rest.split(","))
    credential = parts.get("Credential", "")
    secret_id, _, scope = credential.partition("/")
    if algorithm != ALGORITHM or not secret_id or "Signature" not in parts:
        return {}
    return {
        "algorithm": algorithm,
        "secret_id": secret_id,
        "scope": scope,
        "signed_headers": parts.get("SignedHeaders", ""),
        "signature": parts["Signature"],
    }
