"""Tuning knobs as frozen ``*Params`` dataclasses, loadable from a TOML table.

One TOML file (``DOORSTEP_PARAMS``, default: the defaults in code) holds a table per
params class, e.g. ``[fixes]`` for ``FixParams``; the server, the simulator and the
benchmarks read the same file. Unknown keys and wrong types are errors naming the key.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

from doorstep.errors import InvalidInput

P = TypeVar("P")


class ParamsError(InvalidInput):
    """A params table has an unknown key or a value of the wrong type or range."""

    code = "invalid_params"


def from_mapping(cls: type[P], table: Mapping[str, Any], *, section: str) -> P:
    """Build ``cls`` (a dataclass) from ``table``, defaults for missing keys.

    ints are accepted where floats are expected; nothing else is coerced. The class's
    own ``__post_init__`` checks ranges.
    """
    assert dataclasses.is_dataclass(cls)
    hints = get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in fields:
            raise ParamsError(
                f"unknown key; known: {', '.join(sorted(fields))}", field=f"{section}.{key}"
            )
        expected = hints[key]
        ok = isinstance(value, expected) if isinstance(expected, type) else True
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if expected is int and isinstance(value, bool):
            ok = False
        if not ok:
            raise ParamsError(
                f"must be {getattr(expected, '__name__', expected)}, got {type(value).__name__}",
                field=f"{section}.{key}",
            )
        values[key] = value
    try:
        return cls(**values)
    except ValueError as e:
        raise ParamsError(str(e), field=section) from None


def load_toml(path: Path) -> dict[str, Any]:
    """The whole params file as a dict of tables."""
    with open(path, "rb") as f:
        return tomllib.load(f)
