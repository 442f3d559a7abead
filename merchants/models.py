"""The shapes the merchants package hands out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Merchant:
    """A merchant: its owner's account id is its id (teams.merchant_id)."""

    id: int
    name: str
    city_id: str
    licence_number: str
    licence_file_id: int | None
    status: str  # pending, approved, rejected
    reason: str
    reviewed_by: int | None
    reviewed_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MerchantService:
    """A service a merchant offers, at its price (fen)."""

    merchant_id: int
    service_code: str
    price_minor: int
    catalog_price_minor: int
    active: bool
