"""The shapes the catalog hands out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class City:
    """A city we operate in; ``service_area`` is GeoJSON in WGS-84.

    ``bbox`` is the service area's (min_lat, min_lng, max_lat, max_lng).
    """

    id: str
    name_zh: str
    name_en: str
    timezone: str
    currency: str
    service_area: dict[str, Any]
    bbox: tuple[float, float, float, float]
    active: bool


@dataclass(frozen=True, slots=True)
class Skill:
    """Something a worker can do and a service can require."""

    code: str
    name_zh: str
    name_en: str


@dataclass(frozen=True, slots=True)
class CertificateKind:
    """A kind of certificate (家政服务证, 电工证…) and how long one stays valid."""

    code: str
    name_zh: str
    name_en: str
    validity_years: int


@dataclass(frozen=True, slots=True)
class Category:
    """A group of services."""

    code: str
    name_zh: str
    name_en: str
    sort: int


@dataclass(frozen=True, slots=True)
class ChecklistItem:
    """One step of a service standard."""

    zh: str
    en: str


@dataclass(frozen=True, slots=True)
class Service:
    """A bookable service: price in minor units (fen), duration, what the worker needs, and
    how many workers do it together (``crew_size``)."""

    code: str
    category: str
    name_zh: str
    name_en: str
    description_zh: str
    description_en: str
    price_minor: int
    currency: str
    duration_min: int
    required_skills: tuple[str, ...]
    required_certificates: tuple[str, ...]
    checklist: tuple[ChecklistItem, ...]
    instant: bool
    scheduled: bool
    active: bool
    crew_size: int = 1  # workers the job needs together (a crew: 2 or more, docs/dispatch.md)
