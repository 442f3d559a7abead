"""Pure rules for merchants: the business licence number, prices within the catalog's
range, which orders a merchant may take. No I/O."""

from __future__ import annotations

from datetime import datetime

from merchants.errors import InvalidMerchantInput

# GB 32100-2015: the 18-character unified social credit code (统一社会信用代码) printed on
# a business licence; its last character is a check character over the first 17.
_CODE_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

#: A merchant's price for a service, as a share of the platform's catalog price.
MIN_PRICE_PERCENT = 70
MAX_PRICE_PERCENT = 150

#: Order statuses in which an order may be routed to a merchant or overflowed back.
ROUTABLE = frozenset({"confirmed", "dispatching"})


def check_digit(first17: str) -> str:
    """The check character of a unified social credit code's first 17 characters."""
    total = sum(_CODE_CHARS.index(c) * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return _CODE_CHARS[(31 - total % 31) % 31]


def check_licence_number(raw: str, field: str = "licence_number") -> str:
    """An 18-character unified social credit code with a valid check character."""
    code = raw.strip().upper()
    if len(code) != 18:
        raise InvalidMerchantInput(
            "must be the 18-character unified social credit code (统一社会信用代码)", field=field
        )
    bad = [c for c in code if c not in _CODE_CHARS]
    if bad:
        raise InvalidMerchantInput(
            f"{bad[0]!r} is not allowed: digits and upper-case letters except I, O, S, V, Z",
            field=field,
        )
    if check_digit(code[:17]) != code[17]:
        raise InvalidMerchantInput(
            "the check character (the 18th) does not match: a typo?", field=field
        )
    return code


def price_range(catalog_price_minor: int) -> tuple[int, int]:
    """The prices (fen, inclusive) a merchant may charge for a catalog price."""
    low = (catalog_price_minor * MIN_PRICE_PERCENT + 99) // 100
    high = catalog_price_minor * MAX_PRICE_PERCENT // 100
    return low, high


def check_price(price_minor: int, catalog_price_minor: int, field: str = "price_minor") -> int:
    """A merchant price within the catalog's range."""
    low, high = price_range(catalog_price_minor)
    if not low <= price_minor <= high:
        raise InvalidMerchantInput(
            f"must be within {low}–{high} fen ({MIN_PRICE_PERCENT}%–{MAX_PRICE_PERCENT}% of "
            f"the catalog price {catalog_price_minor})",
            field=field,
        )
    return price_minor


def overflow_due(routed_at: datetime, now: datetime, after_s: int) -> bool:
    """True once an order routed to a merchant at ``routed_at`` has waited ``after_s``
    seconds without one of the merchant's staff able to take it: the engine then hands it
    to the platform's workers (overflow)."""
    return (now - routed_at).total_seconds() >= after_s
