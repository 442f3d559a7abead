"""The rules of SOS alerts. Pure: parameters, the live link's token, the messages.

An SOS is never refused for coming too often: a repeat while the person's SOS is open
counts on that alert (``repeats``), so a flood is one alert, not many and not none.
The alert must be acknowledged by a dispatcher or an admin; until it is, it escalates
every ``escalate_every_s`` (first after ``ack_within_s``), at most ``max_escalations``
times. The person's emergency contacts get an SMS with a live link
(``/sos/<alert>?t=<token>``) valid for ``link_ttl_s`` or until the alert is resolved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jwt

from accounts.rules import normalize_phone
from safety.errors import InvalidSafetyInput, InvalidSosLink

_ALG = "HS256"
MAX_CONTACTS = 3


@dataclass(frozen=True, slots=True)
class SafetyParams:
    """SOS handling (section ``[safety]``)."""

    ack_within_s: float = 60.0
    escalate_every_s: float = 120.0
    max_escalations: int = 5
    link_ttl_s: int = 6 * 3600
    trail_batches: int = 30  # live-stream entries of the trail sent with an alert

    def __post_init__(self) -> None:
        if not self.ack_within_s > 0 or not self.escalate_every_s > 0:
            raise ValueError("ack_within_s and escalate_every_s must be > 0")
        if self.max_escalations < 0 or self.link_ttl_s < 60 or self.trail_batches < 0:
            raise ValueError("max_escalations >= 0, link_ttl_s >= 60, trail_batches >= 0")


def issue_link(alert_id: int, *, now: int, ttl_s: int, key: str) -> str:
    """A token that lets its holder watch one SOS alert's live position."""
    return jwt.encode(
        {"iss": "doorstep", "typ": "sos", "alr": alert_id, "iat": now, "exp": now + ttl_s},
        key,
        algorithm=_ALG,
    )


def verify_link(token: str, *, alert_id: int, now: int, key: str) -> None:
    """Accept a live-link token for ``alert_id`` or raise :class:`InvalidSosLink`."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[_ALG],
            issuer="doorstep",
            options={"verify_exp": False, "require": ["exp", "alr", "typ"]},
        )
    except jwt.PyJWTError as e:
        raise InvalidSosLink(f"link rejected: {e}", field="t") from None
    if claims.get("typ") != "sos" or claims.get("alr") != alert_id:
        raise InvalidSosLink("this link is for another alert", field="t")
    exp = claims["exp"]
    if not isinstance(exp, int) or exp <= now:
        raise InvalidSosLink("this link has expired", field="t")


def check_position(lat: float | None, lng: float | None) -> None:
    """An SOS's position: both coordinates or neither, each within range."""
    if (lat is None) != (lng is None):
        missing = "lng" if lng is None else "lat"
        raise InvalidSafetyInput("send lat and lng together, or neither", field=missing)
    if lat is not None and not (math.isfinite(lat) and -90 <= lat <= 90):
        raise InvalidSafetyInput("must be a latitude in degrees, -90 to 90", field="lat")
    if lng is not None and not (math.isfinite(lng) and -180 <= lng <= 180):
        raise InvalidSafetyInput("must be a longitude in degrees, -180 to 180", field="lng")


def check_contacts(contacts: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(name, phone) pairs, at most three, names 1–40 characters, mainland mobiles, no
    phone twice; returns them with phones normalised."""
    if len(contacts) > MAX_CONTACTS:
        raise InvalidSafetyInput(f"at most {MAX_CONTACTS} emergency contacts", field="contacts")
    out: list[tuple[str, str]] = []
    for i, (name, phone) in enumerate(contacts):
        name = name.strip()
        if not 1 <= len(name) <= 40:
            raise InvalidSafetyInput("1 to 40 characters", field=f"contacts[{i}].name")
        number = normalize_phone(phone, field=f"contacts[{i}].phone")
        if any(number == p for _, p in out):
            raise InvalidSafetyInput("this phone is listed twice", field=f"contacts[{i}].phone")
        out.append((name, number))
    return out


def escalation_due(raised_at_s: float, escalations: int, params: SafetyParams) -> float:
    """When the next escalation of an unacknowledged alert is due (epoch seconds)."""
    return raised_at_s + params.ack_within_s + escalations * params.escalate_every_s
