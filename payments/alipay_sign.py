"""Alipay's RSA2 signatures, pure (no I/O): requests, answers and notifications.

Alipay's OpenAPI signs with SHA256withRSA (``sign_type=RSA2``, PKCS#1 v1.5), base64:

- **requests** (ours → the gateway): every parameter but ``sign`` and the empty ones,
  sorted by name, joined as ``k=v&k=v`` with the values as they are (not URL-encoded),
  signed with the app's private key;
- **answers** (the gateway → us): the body is ``{"alipay_trade_xxx_response": {...},
  "sign": "..."}`` and the signature covers the JSON text of the ``..._response``
  object exactly as it stands in the body (so it is cut out of the raw text, never
  re-serialised), made with Alipay's private key;
- **asynchronous notifications** (the gateway → us, a form POST): as requests, but
  ``sign_type`` is left out of the signed text too; made with Alipay's private key.

Keys are PEM or the bare base64 the Alipay console shows (PKCS#8 / PKCS#1 private keys,
X.509 SubjectPublicKeyInfo public keys).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

REQUEST_UNSIGNED = frozenset({"sign"})
NOTIFICATION_UNSIGNED = frozenset({"sign", "sign_type"})


class BadKey(ValueError):
    """A key that is not an RSA key in PEM or bare base64 DER (the text is never shown)."""


def _pem(text: str, label: str) -> bytes:
    text = text.strip()
    if text.startswith("-----BEGIN"):
        return text.encode()
    body = "".join(text.split())
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----\n".encode()


def load_private_key(text: str) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM or bare base64 (PKCS#8, else PKCS#1)."""
    for label in ("PRIVATE KEY", "RSA PRIVATE KEY"):
        try:
            key = serialization.load_pem_private_key(_pem(text, label), password=None)
        except (ValueError, TypeError):
            continue
        if isinstance(key, rsa.RSAPrivateKey):
            return key
    raise BadKey("not an RSA private key (PEM, or bare base64 PKCS#8/PKCS#1)")


def load_public_key(text: str) -> rsa.RSAPublicKey:
    """An RSA public key from PEM or bare base64 (X.509 SubjectPublicKeyInfo)."""
    for label in ("PUBLIC KEY", "RSA PUBLIC KEY"):
        try:
            key = serialization.load_pem_public_key(_pem(text, label))
        except (ValueError, TypeError):
            continue
        if isinstance(key, rsa.RSAPublicKey):
            return key
    raise BadKey("not an RSA public key (PEM, or bare base64 X.509)")


def private_pem(key: rsa.RSAPrivateKey) -> str:
    """The key as PKCS#8 PEM (what python-alipay-sdk and the Alipay tools take)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem(key: rsa.RSAPublicKey) -> str:
    """The key as X.509 SubjectPublicKeyInfo PEM."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def signing_content(
    params: Mapping[str, str], *, unsigned: Iterable[str] = REQUEST_UNSIGNED
) -> str:
    """The text that is signed: sorted ``k=v`` joined by ``&``, empty values left out."""
    skip = frozenset(unsigned)
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k not in skip and v != "")


def sign(content: str, key: rsa.RSAPrivateKey) -> str:
    """SHA256withRSA of ``content`` (UTF-8), base64."""
    signature = key.sign(content.encode(), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode()


def verify(content: str, signature: str, key: rsa.RSAPublicKey) -> bool:
    """Whether ``signature`` (base64) is SHA256withRSA of ``content`` under ``key``."""
    try:
        raw = base64.b64decode(signature.encode(), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return False
    try:
        key.verify(raw, content.encode(), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def sign_params(params: Mapping[str, str], key: rsa.RSAPrivateKey) -> dict[str, str]:
    """A request's parameters with their ``sign`` added (``sign_type`` is signed)."""
    out = {k: v for k, v in params.items() if k != "sign"}
    out["sign"] = sign(signing_content(out), key)
    return out


def sign_notification(params: Mapping[str, str], key: rsa.RSAPrivateKey) -> dict[str, str]:
    """A notification's parameters with ``sign`` added (``sign_type`` is not signed)."""
    out = {k: v for k, v in params.items() if k != "sign"}
    out["sign"] = sign(signing_content(out, unsigned=NOTIFICATION_UNSIGNED), key)
    return out


def request_ok(params: Mapping[str, str], key: rsa.RSAPublicKey) -> bool:
    """Whether a request's ``sign`` is the app's signature of its other parameters."""
    return verify(signing_content(params), params.get("sign", ""), key)


def notification_ok(params: Mapping[str, str], key: rsa.RSAPublicKey) -> bool:
    """Whether a notification's ``sign`` is Alipay's signature of its other parameters."""
    content = signing_content(params, unsigned=NOTIFICATION_UNSIGNED)
    return verify(content, params.get("sign", ""), key)


def response_key(method: str) -> str:
    """``alipay.trade.query`` → ``alipay_trade_query_response``."""
    return method.replace(".", "_") + "_response"


def encode_response(key_name: str, payload: Mapping[str, Any], key: rsa.RSAPrivateKey) -> bytes:
    """The gateway's answer: ``{"<key_name>": payload, "sign": …}``, signed over payload's text."""
    inner = orjson.dumps(dict(payload))
    signature = sign(inner.decode(), key)
    return b'{"' + key_name.encode() + b'":' + inner + b',"sign":"' + signature.encode() + b'"}'


class BadResponse(ValueError):
    """An answer that is not the gateway's, or whose signature does not check out."""


def signed_text(raw: str, key_name: str) -> str:
    """The exact text of ``key_name``'s object in the raw answer (what was signed)."""
    marker = f'"{key_name}"'
    at = raw.find(marker)
    if at < 0:
        raise BadResponse(f"the answer has no {key_name}")
    start = raw.find("{", at + len(marker))
    if start < 0:
        raise BadResponse(f"{key_name} is not an object")
    try:
        _, end = json.JSONDecoder().raw_decode(raw, start)
    except json.JSONDecodeError as e:
        raise BadResponse(f"{key_name} is not JSON: {e}") from None
    return raw[start:end]


def parse_response(raw: bytes, method: str, key: rsa.RSAPublicKey) -> dict[str, Any]:
    """The verified ``..._response`` object of an answer to ``method``.

    An answer about the gateway itself (``error_response``, unsigned) is returned as
    it is when it carries no ``sign``: it changed nothing and has nothing to trust.
    """
    text = raw.decode()
    try:
        whole = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadResponse("the answer is not JSON") from None
    if not isinstance(whole, dict):
        raise BadResponse("the answer is not a JSON object")
    name = response_key(method)
    if name not in whole:
        if "error_response" in whole and "sign" not in whole:
            error = whole["error_response"]
            if isinstance(error, dict):
                return error
        raise BadResponse(f"the answer has no {name}")
    content = signed_text(text, name)
    signature = whole.get("sign")
    if not isinstance(signature, str) or not verify(content, signature, key):
        raise BadResponse(f"the signature of {name} does not check out")
    body = orjson.loads(content)
    if not isinstance(body, dict):
        raise BadResponse(f"{name} is not an object")
    return body
