"""Pure rules for slowing down password guessing (no I/O; the caller passes ``now``).

Issue 14 showed the old rule, ten wrong passwords lock the phone for 15 minutes, to be a
denial of service against the phone's owner: anyone could keep any account locked. Now
nothing locks; guesses are slowed down, more strictly the narrower the scope:

- **phone + network** (an IPv4 address or an IPv6 /64): ``pair_free`` failures, then
  a wait that doubles with each further failure (2 s, 4 s, 8 s …) up to
  ``pair_max_delay_s``. This is what a guesser on one network meets.
- **phone, all networks**: ``phone_free`` failures, then doubling waits up to
  ``phone_max_delay_s`` (shorter: it is what the owner meets when someone else guesses
  from many networks). A network the phone's owner logged in from within
  ``trusted_for_s`` is not held back by this wait, nor by the per-network limits below:
  the owner's usual way in stays open while their account is under attack.
- **network**: at most ``ip_failures`` failed logins and ``ip_phones`` distinct phones
  with failures per ``window_s`` (the "30 phones tried from one address" of the issue).

Failures older than ``window_s`` are forgotten. Every wait is a 429 with Retry-After.
The SMS-code login (to come with the SMS provider) is the owner's way in that no guesser
can slow down: it will check its own limits, not these (see ``accounts.service.login``).
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from typing import Literal

Scope = Literal["pair", "phone", "network_failures", "network_phones"]


@dataclass(frozen=True, slots=True)
class LoginLimits:
    """How fast passwords may be tried (defaults: see the module docstring)."""

    pair_free: int = 5
    pair_max_delay_s: int = 15 * 60
    phone_free: int = 10
    phone_max_delay_s: int = 5 * 60
    ip_failures: int = 100
    ip_phones: int = 20
    window_s: int = 3600
    trusted_for_s: int = 30 * 24 * 3600
    register_per_window: int = 10  # registrations tried from one network per window_s


@dataclass(frozen=True, slots=True)
class Failures:
    """Failed logins in one scope within the window: how many, the first and the last."""

    count: int = 0
    first_at: float | None = None
    last_at: float | None = None


@dataclass(frozen=True, slots=True)
class Standing:
    """What the store knows about a login attempt's phone and network."""

    pair: Failures
    phone: Failures
    network: Failures
    network_phones: int  # distinct phones with failures from this network
    phone_known_to_network: bool  # this network already failed on this phone
    trusted: bool  # the owner logged in from this network recently


@dataclass(frozen=True, slots=True)
class Wait:
    """Refuse the attempt: wait ``retry_after_s``; ``scope`` says which limit."""

    retry_after_s: int
    scope: Scope


def doubling_delay_s(failures: int, free: int, cap_s: int) -> int:
    """0 for the first ``free`` failures, then 2, 4, 8 … seconds, at most ``cap_s``."""
    if failures < free:
        return 0
    exponent = failures - free + 1
    return cap_s if exponent >= 31 else min(cap_s, 2**exponent)


def _until(last_at: float | None, delay_s: int, now: float) -> int:
    if last_at is None or delay_s <= 0:
        return 0
    return max(0, math.ceil(last_at + delay_s - now))


def wait(standing: Standing, limits: LoginLimits, *, now: float) -> Wait | None:
    """The wait before this attempt may be checked, or None if it may be checked now."""
    waits: list[Wait] = []
    pair = _until(
        standing.pair.last_at,
        doubling_delay_s(standing.pair.count, limits.pair_free, limits.pair_max_delay_s),
        now,
    )
    if pair:
        waits.append(Wait(pair, "pair"))
    if not standing.trusted:
        phone = _until(
            standing.phone.last_at,
            doubling_delay_s(standing.phone.count, limits.phone_free, limits.phone_max_delay_s),
            now,
        )
        if phone:
            waits.append(Wait(phone, "phone"))
        first = standing.network.first_at
        window_left = max(1, math.ceil(first + limits.window_s - now)) if first else 1
        if standing.network.count >= limits.ip_failures:
            waits.append(Wait(window_left, "network_failures"))
        if standing.network_phones >= limits.ip_phones and not standing.phone_known_to_network:
            waits.append(Wait(window_left, "network_phones"))
    return max(waits, key=lambda w: w.retry_after_s) if waits else None


def network_of(ip: str) -> str:
    """The unit limits count by: an IPv4 address, or the /64 of an IPv6 one (one
    subscriber's share); an IPv4 address mapped into IPv6 counts as IPv4."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:64] or "unknown"
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)
