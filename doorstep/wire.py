"""Strict JSON decoding with msgspec, shared by the HTTP bodies and the socket frames.

Input types are ``msgspec.Struct`` classes with ``forbid_unknown_fields=True``; a
wrong type, a missing field or an unknown one becomes an error naming the field.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

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


_INT_AS_FLOAT = "Expected `int`, got `float`"
_INT_RANGE = 2**63


def _integral_floats_as_ints(value: Any) -> Any:
    """``3.0`` as ``3``, everywhere in a decoded JSON value."""
    if isinstance(value, float) and value.is_integer() and abs(value) < _INT_RANGE:
        return int(value)
    if isinstance(value, list):
        return [_integral_floats_as_ints(v) for v in value]
    if isinstance(value, dict):
        return {k: _integral_floats_as_ints(v) for k, v in value.items()}
    return value


def decode(body: bytes, typ: type[T]) -> T:
    """Decode JSON ``body`` into ``typ`` or raise an error naming the field.

    JSON has one number type: ``3.0`` is the integer 3 to JSON Schema (and to the
    OpenAPI document), so an integer field takes it; ``3.5`` is still refused.
    """
    check_no_nul(body)
    try:
        return msgspec.json.decode(body, type=typ, strict=True)
    except msgspec.ValidationError as e:
        if not str(e).startswith(_INT_AS_FLOAT):
            raise validation_error(e) from None
        first = e
    except msgspec.DecodeError as e:
        raise MalformedJson(f"body is not valid JSON: {e}") from None
    try:  # an integral float where an int goes: again with such floats as ints
        value = _integral_floats_as_ints(msgspec.json.decode(body))
        return msgspec.convert(value, typ, strict=True)
    except msgspec.ValidationError as e:
        raise validation_error(e if not str(e).startswith(_INT_AS_FLOAT) else first) from None
