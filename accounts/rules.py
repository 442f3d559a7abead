"""Pure rules for account input: phone numbers, passwords, roles."""

from __future__ import annotations

import re
from typing import Literal, get_args

from accounts.errors import InvalidAccountInput

Role = Literal["customer", "worker", "merchant", "dispatcher", "admin"]
ROLES: frozenset[str] = frozenset(get_args(Role))

_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")  # ASCII digits only: one number, one form
MIN_PASSWORD = 8
MAX_PASSWORD = 128


def normalize_phone(raw: str, field: str = "phone") -> str:
    """A mainland-China mobile number as 11 digits; ``+86``/``0086``, spaces and dashes allowed."""
    digits = re.sub(r"[\s-]", "", raw)
    for prefix in ("+86", "0086"):
        if digits.startswith(prefix):
            digits = digits[len(prefix) :]
    if not _MOBILE.match(digits):
        raise InvalidAccountInput(
            "must be a mainland China mobile number: 11 digits starting 13–19", field=field
        )
    return digits


def mask_phone(phone: str) -> str:
    """``13812345678`` → ``138****5678``: how a phone is shown outside an active job."""
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "****"


def check_password(password: str, field: str = "password") -> None:
    """Length 8–128 and not only digits."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidAccountInput(
            f"must be {MIN_PASSWORD}–{MAX_PASSWORD} characters long", field=field
        )
    if password.isdigit():
        raise InvalidAccountInput("must not be digits only", field=field)


def check_roles(roles: list[str], field: str = "roles") -> tuple[str, ...]:
    """Known roles, at least one, without duplicates, in a stable order."""
    if not roles:
        raise InvalidAccountInput("must name at least one role", field=field)
    unknown = sorted(set(roles) - ROLES)
    if unknown:
        raise InvalidAccountInput(
            f"unknown role {unknown[0]!r}; one of {', '.join(sorted(ROLES))}", field=field
        )
    return tuple(sorted(set(roles)))


def check_name(name: str, field: str = "name") -> str:
    """A display name: 1–64 characters after trimming."""
    name = name.strip()
    if not 1 <= len(name) <= 64:
        raise InvalidAccountInput("must be 1–64 characters", field=field)
    return name
