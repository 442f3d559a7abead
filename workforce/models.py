"""The shapes the workforce package hands out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True)
class Window:
    """A weekly availability window: weekday 0 = Monday, minutes from local midnight."""

    weekday: int
    start_min: int
    end_min: int


@dataclass(frozen=True, slots=True)
class DayException:
    """A date that differs from the weekly pattern (a day off, or other hours)."""

    on_date: date
    available: bool
    start_min: int | None
    end_min: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class Certificate:
    """A worker's certificate; only ``verified`` and unexpired ones qualify for jobs.

    ``status``: pending (awaiting review), verified, rejected, or reverify (staff asked
    for a new check: it does not count until verified again); ``reason`` says why.
    """

    id: int
    kind: str
    number: str
    issued_on: date
    expires_on: date
    status: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Worker:
    """A worker's profile. ``rating`` is the plain average (None before the first rating)."""

    user_id: int
    name: str
    phone: str
    city_id: str
    skills: tuple[str, ...]
    home_lat: float
    home_lng: float
    rating: float | None
    rating_count: int
    team_id: int | None
    certificates: tuple[Certificate, ...] = ()
    availability: tuple[Window, ...] = ()
    exceptions: tuple[DayException, ...] = ()


@dataclass(frozen=True, slots=True)
class Team:
    """A merchant's team (a 家政公司's staff)."""

    id: int
    name: str
    city_id: str
    merchant_id: int
    members: int
