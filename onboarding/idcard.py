"""Resident identity numbers (居民身份证号码) by GB 11643-1999, without I/O.

Eighteen characters: a six-digit address code (GB/T 2260), the birth date
``YYYYMMDD``, a three-digit sequence (odd for men, even for women) and a check
character computed by ISO 7064 MOD 11-2 over the first seventeen (``X`` stands for 10).
The address code's first four digits must name a province and prefecture known to the
bundled table (``onboarding/data/regions.tsv``, see ``data/SOURCES.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources

from onboarding.errors import InvalidIdNumber

FIELD = "id_number"
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"  # the check character for a weighted sum ≡ 0..10 (mod 11)
EARLIEST_BIRTH = date(1900, 1, 1)


@dataclass(frozen=True, slots=True)
class IdNumber:
    """A checked identity number and what it says."""

    number: str
    region: str  # the four-digit prefix, e.g. "4403"
    region_name: str
    birth_date: date
    sex: str  # "male" or "female"


@cache
def regions() -> dict[str, str]:
    """Four-digit prefixes → name: ``xx00`` a province, others a prefecture."""
    text = resources.files("onboarding").joinpath("data/regions.tsv").read_text("utf-8")
    out: dict[str, str] = {}
    for line in text.splitlines():
        code, _, name = line.partition("\t")
        out[code] = name
    return out


def check_character(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of seventeen digits."""
    total = sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def parse_id_number(raw: str, *, today: date, field: str = FIELD) -> IdNumber:
    """The number checked against every rule of the standard; the message names the rule."""
    number = raw.strip().upper()
    if len(number) != 18:
        raise InvalidIdNumber(f"must be 18 characters (GB 11643), got {len(number)}", field=field)
    if not (number[:17].isascii() and number[:17].isdigit()):
        raise InvalidIdNumber("the first 17 characters must be digits (GB 11643)", field=field)
    if not (number[17].isdigit() or number[17] == "X"):
        raise InvalidIdNumber("the last character must be a digit or X (GB 11643)", field=field)
    expected = check_character(number[:17])
    if number[17] != expected:
        raise InvalidIdNumber(
            f"wrong check character {number[17]!r}: ISO 7064 MOD 11-2 gives {expected!r}",
            field=field,
        )
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise InvalidIdNumber(
            f"characters 7–14 must be a real birth date YYYYMMDD, got {number[6:14]}", field=field
        ) from None
    if born > today:
        raise InvalidIdNumber(f"birth date {born} is in the future", field=field)
    if born < EARLIEST_BIRTH:
        raise InvalidIdNumber(f"birth date {born} is before {EARLIEST_BIRTH}", field=field)
    table = regions()
    if number[:2] + "00" not in table:
        raise InvalidIdNumber(
            f"address code {number[:6]}: no province {number[:2]} in GB/T 2260", field=field
        )
    if number[:4] not in table:
        raise InvalidIdNumber(
            f"address code {number[:6]}: no prefecture {number[:4]} in GB/T 2260", field=field
        )
    return IdNumber(
        number=number,
        region=number[:4],
        region_name=_region_name(table, number[:4]),
        birth_date=born,
        sex="male" if int(number[16]) % 2 else "female",
    )


def _region_name(table: dict[str, str], prefix: str) -> str:
    province = table[prefix[:2] + "00"]
    own = table[prefix]
    return province if prefix.endswith("00") or own in ("市辖区", "县", "") else province + own


def make_id_number(region6: str, born: date, sequence: int) -> str:
    """A well-formed number for a region, birth date and sequence (tests, the demo's data)."""
    first17 = f"{region6}{born:%Y%m%d}{sequence:03d}"
    return first17 + check_character(first17)


def mask_id_number(number: str) -> str:
    """``440304199001011234`` → ``4403**********1234``: how a reviewer's list shows it."""
    return number[:4] + "*" * (len(number) - 8) + number[-4:] if len(number) > 8 else "****"
