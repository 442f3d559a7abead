"""The identity-verification and background-check providers: the interfaces onboarding
needs, and a client for a Tencent-Cloud-shaped API (JSON POST, ``X-TC-Action``,
TC3-HMAC-SHA256 signatures, ``{"Response": {...}}`` answers).

Identity (人脸核身, action ``ImageRecognition``, service ``faceid``): name, ID number and a
face photo → ``Result`` ``"Success"`` with a similarity ``Sim`` (0–100), or a failure
code and ``Description``. Background (action ``CheckCriminalRecord``, service
``bgcheck``): there is no public standard for 无犯罪记录 checks; ours uses the same signed
protocol and answers ``Result`` ``"Clear"`` or ``"Record"``. A provider that does not
answer in ``timeout_s`` (or answers 5xx) raises :class:`ProviderUnavailable`: the check
is recorded as unavailable and may be run again.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import orjson

from onboarding import signing

IDENTITY_VERSION = "2018-03-01"
SIM_THRESHOLD = 70.0  # similarity below this is "not the same person"


class ProviderUnavailable(Exception):
    """The provider did not answer usably (time-out, network, 5xx, refused signature)."""


@dataclass(frozen=True, slots=True)
class IdentityResult:
    """A verification's outcome: ``matched`` and what the provider said."""

    matched: bool
    similarity: float
    code: str
    description: str
    request_id: str


@dataclass(frozen=True, slots=True)
class BackgroundResult:
    """A background check's outcome: ``clear`` and what the provider said."""

    clear: bool
    code: str
    description: str
    request_id: str


class IdentityVerifier(Protocol):
    """Checks that a name, an ID number and a face photo belong together."""

    async def verify(self, *, name: str, id_number: str, face_jpeg: bytes) -> IdentityResult: ...


class BackgroundChecker(Protocol):
    """Checks an ID number for a criminal record."""

    async def check(self, *, name: str, id_number: str) -> BackgroundResult: ...


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """Where the provider is, and the account that signs."""

    url: str
    secret_id: str
    secret_key: str
    region: str = "ap-guangzhou"
    timeout_s: float = 5.0


class TencentLikeClient:
    """Both interfaces over one signed JSON API."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self._http = httpx.AsyncClient(timeout=config.timeout_s)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def call(self, service: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """POST one action; the ``Response`` object, or :class:`ProviderUnavailable`."""
        body = orjson.dumps(params)
        host = urlsplit(self.config.url).netloc
        now = int(time.time())
        headers = {
            "Content-Type": signing.CONTENT_TYPE,
            "Host": host,
            "X-TC-Action": action,
            "X-TC-Version": IDENTITY_VERSION,
            "X-TC-Timestamp": str(now),
            "X-TC-Region": self.config.region,
            "X-TC-Service": service,
            "Authorization": signing.authorization(
                secret_id=self.config.secret_id,
                secret_key=self.config.secret_key,
                service=service,
                host=host,
                body=body,
                timestamp=now,
            ),
        }
        try:
            r = await self._http.post(self.config.url, content=body, headers=headers)
        except httpx.HTTPError as e:
            raise ProviderUnavailable(f"{type(e).__name__}: {e}") from None
        if r.status_code >= 500:
            raise ProviderUnavailable(f"HTTP {r.status_code}")
        try:
            response: dict[str, Any] = orjson.loads(r.content)["Response"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise ProviderUnavailable("an answer without a Response object") from None
        error = response.get("Error")
        if error:
            raise ProviderUnavailable(f"{error.get('Code')}: {error.get('Message')}")
        return response

    async def verify(self, *, name: str, id_number: str, face_jpeg: bytes) -> IdentityResult:
        """``ImageRecognition``: name + number + photo."""
        r = await self.call(
            "faceid",
            "ImageRecognition",
            {
                "IdCard": id_number,
                "Name": name,
                "ImageBase64": base64.b64encode(face_jpeg).decode(),
            },
        )
        sim = float(r.get("Sim", 0.0))
        code = str(r.get("Result", ""))
        return IdentityResult(
            matched=code == "Success" and sim >= SIM_THRESHOLD,
            similarity=sim,
            code=code,
            description=str(r.get("Description", "")),
            request_id=str(r.get("RequestId", "")),
        )

    async def check(self, *, name: str, id_number: str) -> BackgroundResult:
        """``CheckCriminalRecord``: name + number."""
        r = await self.call("bgcheck", "CheckCriminalRecord", {"IdCard": id_number, "Name": name})
        code = str(r.get("Result", ""))
        return BackgroundResult(
            clear=code == "Clear",
            code=code,
            description=str(r.get("Description", "")),
            request_id=str(r.get("RequestId", "")),
        )
