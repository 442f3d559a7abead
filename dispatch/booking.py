"""Booking rules that need no I/O: windows, kinds, start codes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson

from dispatch.errors import InvalidOrder
from doorstep import dates


@dataclass(frozen=True, slots=True)
class BookingParams:
    """Limits on scheduled windows (section ``[booking]``)."""

    min_lead_min: int = 30
    horizon_days: int = 30
    min_window_min: int = 30
    max_window_min: int = 12 * 60

    def __post_init__(self) -> None:
        if (
            self.min_lead_min < 0
            or self.horizon_days < 1
            or not 0 < self.min_window_min <= self.max_window_min
        ):
            raise ValueError(
                "booking params: need min_lead_min >= 0, horizon_days >= 1, "
                "0 < min_window_min <= max_window_min"
            )


def check_window(start: datetime, end: datetime, *, now: datetime, params: BookingParams) -> None:
    """A scheduled window starts after the lead time, within the horizon, and is sensibly long."""
    for value, name in ((start, "window_start"), (end, "window_end")):
        if value.tzinfo is None:
            raise InvalidOrder("must include a UTC offset", field=name)
        dates.check_instant(value, name)
    if start < now + timedelta(minutes=params.min_lead_min):
        what = "in the past" if start < now else f"less than {params.min_lead_min} minutes away"
        raise InvalidOrder(
            f"is {what}; book at least {params.min_lead_min} minutes ahead", field="window_start"
        )
    if start > now + timedelta(days=params.horizon_days):
        raise InvalidOrder(
            f"is beyond the booking horizon of {params.horizon_days} days", field="window_start"
        )
    length = (end - start).total_seconds() / 60
    if length < params.min_window_min:
        raise InvalidOrder(
            f"must be at least {params.min_window_min} minutes after window_start",
            field="window_end",
        )
    if length > params.max_window_min:
        raise InvalidOrder(
            f"a window may be at most {params.max_window_min} minutes long", field="window_end"
        )


def new_start_code() -> str:
    """A 6-digit code the customer gives the worker on arrival (核销码)."""
    return f"{secrets.randbelow(10**6):06d}"


KEYED_FINGERPRINT = "k1:"  # prefix of a fingerprint keyed by the blind-index key


def canonical_request(request: dict[str, object]) -> bytes:
    """The canonical JSON of a request (keys sorted, times in UTC): two requests with one
    Idempotency-Key must have the same canonical form to be the same request."""

    def canonical(value: object) -> object:
        if isinstance(value, datetime):
            return value.timestamp()  # 10:00+08:00 and 02:00Z are the same instant
        return value

    body = {k: canonical(v) for k, v in sorted(request.items())}
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def keyed_fingerprint(index: bytes) -> str:
    """The stored fingerprint of a request whose canonical form's keyed hash (HMAC-SHA-256
    with the blind-index key) is ``index``. Keyed, because the request holds personal data
    (a phone, an address): an unkeyed hash of it could be guessed back from the database."""
    return KEYED_FINGERPRINT + index.hex()


def same_request(stored: str, canonical: bytes, keyed: str) -> bool:
    """Whether a stored fingerprint is this request's: ``keyed`` for those stored since
    they are keyed, the plain SHA-256 of ``canonical`` for orders booked before."""
    if stored.startswith(KEYED_FINGERPRINT):
        return hmac.compare_digest(stored, keyed)
    return hmac.compare_digest(stored, hashlib.sha256(canonical).hexdigest())
