"""Pure rules of the SMS login code: its form, its hash, whether it may be used now."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from accounts.errors import BadSmsCode, SmsCodeUsed, TooManyAttempts


@dataclass(frozen=True, slots=True)
class CodeLimits:
    """How long a code lives, how often one is sent, how many wrong tries it takes."""

    digits: int = 6
    ttl_s: int = 300
    max_failures: int = 5
    per_phone_min: int = 1  # codes sent to one phone per minute
    per_phone_hour: int = 5  # … per hour
    per_network_hour: int = 20  # phones a network may ask codes for, per hour


def make_code(n: int, limits: CodeLimits) -> str:
    """The code for a random number ``n`` (the caller draws it)."""
    return f"{n % 10**limits.digits:0{limits.digits}d}"


def code_hash(key: str, phone: str, code: str) -> str:
    """What is stored instead of the code: keyed by the server's secret and the phone."""
    return hmac.new(key.encode(), f"sms-login:{phone}:{code}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredCode:
    """The latest code sent to a phone."""

    id: int
    code_hash: str
    expires_at: datetime
    used_at: datetime | None
    failures: int


def check(stored: StoredCode | None, given_hash: str, *, now: datetime, limits: CodeLimits) -> None:
    """Refuse a code that cannot log in now (the message says why); a wrong one is the
    caller's to count."""
    if stored is None:
        raise BadSmsCode("no code was sent to this phone; ask for one", field="code")
    if stored.used_at is not None:
        raise SmsCodeUsed("this code was used already; ask for a new one", field="code")
    if stored.expires_at <= now:
        raise BadSmsCode(
            f"this code expired (codes live {limits.ttl_s} s); ask for a new one", field="code"
        )
    if stored.failures >= limits.max_failures:
        raise TooManyAttempts(
            f"{limits.max_failures} wrong tries for this code; ask for a new one",
            field="code",
            retry_after_s=60,
        )
    if not hmac.compare_digest(stored.code_hash, given_hash):
        raise BadSmsCode("the code is wrong", field="code")
