"""WeChat Pay API v3 on the wire: signatures, the Authorization header, AEAD_AES_256_GCM.

Pure functions (no I/O) shared by our client (``payments.wechat``) and the sandbox
gateway (``payments.wechat_sandbox``), following WeChat Pay's documentation and the
``wechatpayv3`` SDK (``wechatpayv3/utils.py``):

- a request is signed by the merchant's private key, RSA-SHA256 (PKCS#1 v1.5) over
  ``METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n``, sent as
  ``Authorization: WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",signature="…",
  timestamp="…",serial_no="…"`` (serial_no: the merchant certificate's serial);
- answers and notifications are signed by the platform's private key over
  ``TIMESTAMP\\nNONCE\\nBODY\\n`` in ``Wechatpay-Signature`` with ``Wechatpay-Timestamp``,
  ``Wechatpay-Nonce``, ``Wechatpay-Serial`` (in public-key mode the public key's id,
  ``PUB_KEY_ID_…``) and ``Wechatpay-Signature-Type: WECHATPAY2-SHA256-RSA2048``;
- a notification's ``resource`` is encrypted with AES-256-GCM under the merchant's
  APIv3 key (32 ASCII bytes), a 12-character nonce and ``associated_data``; the
  ciphertext is base64 of ciphertext ‖ 16-byte tag.

The body is verified exactly as received (bytes), never re-serialised (FIELD-NOTES:
wechatpayv3 #25).
"""

from __future__ import annotations

import base64
import functools
import re
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SCHEME = "WECHATPAY2-SHA256-RSA2048"
SKEW_S = 300  # WeChat refuses requests (and we notifications) more than 5 min off
CHINA = timezone(timedelta(hours=8))
_NONCE_CHARS = string.ascii_letters + string.digits
_AUTH_PARAM = re.compile(r'(\w+)="([^"]*)"')


def new_nonce(n: int = 32) -> str:
    """A random nonce of letters and digits (AES-GCM nonces are 12 of them)."""
    return "".join(secrets.choice(_NONCE_CHARS) for _ in range(n))


def new_key_pair() -> rsa.RSAPrivateKey:
    """A fresh RSA-2048 key (the sandbox's merchant and platform keys)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    """PKCS#8 PEM of a private key (what WeChat's apiclient_key.pem holds)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem(key: rsa.RSAPublicKey) -> str:
    """SubjectPublicKeyInfo PEM of a public key (WeChat's pub_key.pem)."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_private(pem: str) -> rsa.RSAPrivateKey:
    """A private RSA key from PEM."""
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def load_public(pem: str) -> rsa.RSAPublicKey:
    """A public RSA key from PEM."""
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    """RSA-SHA256 (PKCS#1 v1.5), base64."""
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def verify(key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64) signs ``message``."""
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def request_message(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """What a merchant's request signature covers (``path`` with its query string)."""
    return f"{method}\n{path}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"


def response_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """What an answer's or a notification's signature covers."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def authorization(
    key: rsa.RSAPrivateKey,
    *,
    mchid: str,
    serial_no: str,
    method: str,
    path: str,
    body: bytes,
    timestamp: int,
    nonce: str,
) -> str:
    """The ``Authorization`` header of a merchant's request."""
    signature = sign(key, request_message(method, path, str(timestamp), nonce, body))
    return (
        f'{SCHEME} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )


@dataclass(frozen=True, slots=True)
class Authorization:
    """A parsed ``Authorization`` header."""

    mchid: str
    nonce_str: str
    signature: str
    timestamp: str
    serial_no: str


def parse_authorization(header: str) -> Authorization | None:
    """The header's fields, or None if it is not the v3 scheme with all five."""
    scheme, _, rest = header.partition(" ")
    if scheme != SCHEME:
        return None
    fields = dict(_AUTH_PARAM.findall(rest))
    try:
        return Authorization(
            fields["mchid"],
            fields["nonce_str"],
            fields["signature"],
            fields["timestamp"],
            fields["serial_no"],
        )
    except KeyError:
        return None


def signed_headers(
    key: rsa.RSAPrivateKey, serial: str, body: bytes, *, timestamp: int, nonce: str
) -> dict[str, str]:
    """The ``Wechatpay-*`` headers of an answer or a notification."""
    return {
        "Wechatpay-Timestamp": str(timestamp),
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": sign(key, response_message(str(timestamp), nonce, body)),
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature-Type": SCHEME,
    }


def header(headers: dict[str, str], name: str) -> str:
    """A header by case-insensitive name ('' if absent)."""
    low = name.lower()
    found = headers.get(low)  # a server's request headers come lower-cased: no scan
    if found is not None:
        return found
    for k, v in headers.items():
        if k.lower() == low:
            return v
    return ""


def check_signed(
    headers: dict[str, str],
    body: bytes,
    *,
    public_key: rsa.RSAPublicKey,
    public_key_id: str,
    now_s: int,
) -> str | None:
    """Why the platform's signature on an answer or a notification fails, or None if good."""
    if header(headers, "Wechatpay-Signature-Type") not in ("", SCHEME):
        return "unsupported signature type"
    if header(headers, "Wechatpay-Serial") != public_key_id:
        return "unknown Wechatpay-Serial (not our platform public key id)"
    ts = header(headers, "Wechatpay-Timestamp")
    if not ts.isdigit() or abs(now_s - int(ts)) > SKEW_S:
        return "Wechatpay-Timestamp missing or more than 5 minutes off"
    nonce = header(headers, "Wechatpay-Nonce")
    if not nonce:
        return "Wechatpay-Nonce missing"
    if not verify(
        public_key, response_message(ts, nonce, body), header(headers, "Wechatpay-Signature")
    ):
        return "Wechatpay-Signature does not verify"
    return None


@functools.lru_cache(maxsize=8)
def _aead(apiv3_key: str) -> AESGCM:
    """The cipher of an APIv3 key, made once (a process has one or two keys)."""
    return AESGCM(apiv3_key.encode())


def encrypt_resource(apiv3_key: str, plaintext: bytes, *, associated_data: str, nonce: str) -> str:
    """AEAD_AES_256_GCM ciphertext (base64 of ciphertext ‖ tag)."""
    return base64.b64encode(
        _aead(apiv3_key).encrypt(nonce.encode(), plaintext, associated_data.encode())
    ).decode()


def decrypt_resource(apiv3_key: str, ciphertext: str, *, associated_data: str, nonce: str) -> bytes:
    """The plaintext, or ValueError if the tag does not verify (wrong key, tampered)."""
    try:
        return _aead(apiv3_key).decrypt(
            nonce.encode(), base64.b64decode(ciphertext, validate=True), associated_data.encode()
        )
    except (InvalidTag, ValueError) as e:
        raise ValueError("the resource does not decrypt with our APIv3 key") from e


def jsapi_pay_params(
    key: rsa.RSAPrivateKey, *, appid: str, prepay_id: str, timestamp: int, nonce: str
) -> dict[str, str]:
    """The parameters for ``wx.requestPayment`` (JSAPI / mini program), signed as
    ``appId\\ntimeStamp\\nnonceStr\\npackage\\n``."""
    package = f"prepay_id={prepay_id}"
    pay_sign = sign(key, f"{appid}\n{timestamp}\n{nonce}\n{package}\n".encode())
    return {
        "appId": appid,
        "timeStamp": str(timestamp),
        "nonceStr": nonce,
        "package": package,
        "signType": "RSA",
        "paySign": pay_sign,
    }


def rfc3339(at: datetime) -> str:
    """WeChat's time format: ``2018-06-08T10:34:56+08:00``."""
    return at.astimezone(CHINA).isoformat(timespec="seconds")


def parse_rfc3339(text: str) -> datetime:
    """A WeChat time as an aware UTC datetime (ValueError if malformed)."""
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        raise ValueError("time without an offset")
    return at.astimezone(UTC)
