"""Pure rules for account input: phone numbers, passwords, roles, names."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Literal, get_args

from accounts.errors import InvalidAccountInput
from doorstep.text import check_visible_text

Role = Literal["customer", "worker", "merchant", "dispatcher", "admin", "finance", "reviewer"]
ROLES: frozenset[str] = frozenset(get_args(Role))

_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")  # ASCII digits only: one number, one form
# The canonical forms normalize_phone accepts, for the OpenAPI document (it also takes
# spaces and dashes between the digits; a regular expression for those is too slow for
# test-data generators to draw from).
PHONE_PATTERN = r"^(?:\+86|0086)?1[3-9][0-9]{9}$"
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


@cache
def common_passwords() -> frozenset[str]:
    """The bundled list of common passwords, lower case (accounts/data/SOURCES.md)."""
    text = resources.files("accounts").joinpath("data/common-passwords.txt").read_text("utf-8")
    return frozenset(line for line in text.splitlines() if line)


def check_password(password: str, field: str = "password", *, phone: str | None = None) -> None:
    """A password someone else cannot guess in a few tries; the message names the rule.

    Length 8–128; not whitespace only; not one character repeated; not digits only; not
    on the bundled list of common passwords (case-insensitive); not the account's phone
    number (``phone``, normalized) nor containing it.
    """
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidAccountInput(
            f"must be {MIN_PASSWORD}–{MAX_PASSWORD} characters long", field=field
        )
    if not password.strip():
        raise InvalidAccountInput("must not be whitespace only", field=field)
    if len(set(password)) == 1:
        raise InvalidAccountInput("must not be one character repeated", field=field)
    if password.isdigit():
        raise InvalidAccountInput("must not be digits only", field=field)
    if phone is not None and phone in re.sub(r"[\s+-]", "", password):
        raise InvalidAccountInput("must not contain the phone number", field=field)
    if password.lower() in common_passwords() or password.strip().lower() in common_passwords():
        raise InvalidAccountInput(
            "is on the list of common passwords; choose a less common one", field=field
        )


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


def check_name(name: str, field: str = "name", *, required: bool = True) -> str:
    """A name people see: trimmed, at most 64 characters, at least one visible character
    (unless not ``required`` and empty), no control, format or bidirectional character."""
    return check_visible_text(
        name, field, max_length=64, required=required, error=InvalidAccountInput
    )
