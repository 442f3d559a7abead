"""Alipay's amounts, pure: yuan strings with two decimals ⇄ integer fen, exactly.

Alipay writes every amount as yuan with exactly two decimals (``"12.34"``, ``"0.01"``,
``"100000000.00"``) in its requests, answers and notifications. We keep money as
integer fen, so the conversion is done on the digits, never through a float: a float
cannot hold 0.1 and a notification's ``"19.99"`` must become 1999 fen, not 1998.
Anything else (``"12.3"``, ``"12"``, ``"1e3"``, ``"-1.00"``, ``" 1.00"``, ``"０.０１"``)
is refused, with the field and the rule.
"""

from __future__ import annotations

import re

from doorstep.errors import InvalidInput

# Alipay's range for total_amount and refund_amount: [0.01, 100000000].
MAX_FEN = 100_000_000 * 100
_YUAN = re.compile(r"(0|[1-9][0-9]{0,8})\.([0-9]{2})", re.ASCII)


def yuan_to_fen(value: object, *, field: str = "total_amount") -> int:
    """``"12.34"`` → 1234. Refuses anything but a yuan string with two decimals in range."""
    if not isinstance(value, str):
        raise InvalidInput(
            f'must be a string of yuan with two decimals (e.g. "12.34"), got {type(value).__name__}',
            field=field,
        )
    match = _YUAN.fullmatch(value)
    if match is None:
        raise InvalidInput(
            f'must be yuan with exactly two decimals (e.g. "12.34"), got {value!r}', field=field
        )
    fen = int(match[1]) * 100 + int(match[2])
    if not 1 <= fen <= MAX_FEN:
        raise InvalidInput(f"must be between 0.01 and 100000000.00, got {value!r}", field=field)
    return fen


def fen_to_yuan(fen: int, *, field: str = "amount_fen", allow_zero: bool = False) -> str:
    """1234 → ``"12.34"``. Refuses non-integers (floats, bools) and amounts out of range."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise InvalidInput(
            f"must be an integer number of fen, got {type(fen).__name__}", field=field
        )
    low = 0 if allow_zero else 1
    if not low <= fen <= MAX_FEN:
        raise InvalidInput(f"must be between {low} and {MAX_FEN} fen, got {fen}", field=field)
    return f"{fen // 100}.{fen % 100:02d}"
