"""Strict JSON decoding with msgspec, shared by the HTTP bodies and the socket frames.

Input types are ``msgspec.Struct`` classes with ``forbid_unknown_fields=True``; a
wrong type, a missing field or an unknown one becomes an error naming the field.
"""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec

from doorstep.errors import DoorstepError, InvalidInput

T = TypeVar("T")


class MalformedJson(DoorstepError):
    """The data is not JSON at all."""

    kind = "malformed"
    code = "invalid_json"


class UnknownField(InvalidInput):
    """The body has a field the endpoint does not take."""

    code = "unknown_field"


class MissingField(InvalidInput):
    """The body lacks a required field."""

    code = "missing_field"


class Input(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body: unknown fields are rejected."""


_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_NAMED = re.compile(r"(unknown|required) field `(?P<name>[^`]+)`")


def _field_path(path: str, name: str | None) -> str | None:
    dotted = path.lstrip(".") if path else ""
    if name:
        dotted = f"{dotted}.{name}" if dotted else name
    return dotted or None


def validation_error(exc: msgspec.ValidationError) -> InvalidInput:
    """msgspec's message, reshaped into our error with the field path separated out."""
    m = _AT.match(str(exc))
    assert m is not None
    msg, path = m.group("msg"), m.group("path") or ""
    named = _NAMED.search(msg)
    field = _field_path(path, named.group("name") if named else None)
    if named and named.group(1) == "unknown":
        return UnknownField("this field is not accepted here", field=field)
    if named:
        return MissingField("this field is required", field=field)
    return InvalidInput(msg[0].lower() + msg[1:] if msg else "invalid value", field=field)


# "\u0000" preceded by an even number of backslashes (an odd number escapes the "\").
_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


class NulCharacter(InvalidInput):
    """Text with a NUL character (PostgreSQL cannot store it)."""

    code = "nul_character"


def check_no_nul(data: bytes | str) -> None:
    """Refuse JSON carrying an escaped NUL character (``\\u0000``) anywhere."""
    raw = data.encode() if isinstance(data, str) else data
    if b"\\u0000" in raw and _NUL.search(raw):
        raise NulCharacter("text must not contain NUL (\\u0000) characters")


def decode(body: bytes, typ: type[T]) -> T:
    """Decode JSON ``body`` into ``typ`` or raise an error naming the field."""
    check_no_nul(body)
    try:
        return msgspec.json.decode(body, type=typ, strict=True)
    except msgspec.ValidationError as e:
        raise validation_error(e) from None
    except msgspec.DecodeError as e:
        raise MalformedJson(f"body is not valid JSON: {e}") from None
