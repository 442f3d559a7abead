"""Reconciliation: the provider's daily bill against our ledger. Pure, no I/O.

Both sides become *items* keyed by what they are and our number for them: a payment by
``out_trade_no`` (the amount the payer paid), a refund by ``out_refund_no`` (the amount
refunded). Every key on either side is compared once:

- ``missing_in_ledger``: the provider moved money we never booked;
- ``missing_in_bill``: we booked money the provider never moved;
- ``amount_mismatch``: both know it, with different amounts;
- ``duplicate_in_bill``: the bill lists the same key twice (amounts summed for the rest).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from settlement.tradebill import BillRow

ItemKind = Literal["payment", "refund"]
Problem = Literal["missing_in_ledger", "missing_in_bill", "amount_mismatch", "duplicate_in_bill"]
PROBLEMS: tuple[str, ...] = (
    "missing_in_ledger",
    "missing_in_bill",
    "amount_mismatch",
    "duplicate_in_bill",
)


@dataclass(frozen=True, slots=True)
class Item:
    """A payment or refund as one side knows it."""

    kind: ItemKind
    ref: str  # out_trade_no or out_refund_no
    amount_fen: int


@dataclass(frozen=True, slots=True)
class Difference:
    """One disagreement between the bill and the ledger."""

    kind: ItemKind
    ref: str
    problem: Problem
    bill_fen: int | None
    ledger_fen: int | None


def bill_items(rows: Iterable[BillRow]) -> list[Item]:
    """The payments and refunds a bill lists (settled payments, successful refunds)."""
    items = []
    for r in rows:
        if r.trade_state == "SUCCESS":
            items.append(Item("payment", r.out_trade_no, r.settlement_fen))
        elif r.trade_state == "REFUND" and r.refund_status == "SUCCESS":
            items.append(Item("refund", r.out_refund_no, r.refund_fen))
    return items


def compare(bill: Iterable[Item], ledger: Iterable[Item]) -> list[Difference]:
    """Every difference between the two sides, in a stable order (kind, ref)."""
    seen: dict[tuple[ItemKind, str], int] = {}
    out: list[Difference] = []
    by_bill: dict[tuple[ItemKind, str], int] = {}
    for item in bill:
        key = (item.kind, item.ref)
        seen[key] = seen.get(key, 0) + 1
        by_bill[key] = by_bill.get(key, 0) + item.amount_fen
    by_ledger: dict[tuple[ItemKind, str], int] = {}
    for item in ledger:
        key = (item.kind, item.ref)
        by_ledger[key] = by_ledger.get(key, 0) + item.amount_fen
    for key in sorted(set(by_bill) | set(by_ledger)):
        kind, ref = key
        b, g = by_bill.get(key), by_ledger.get(key)
        if seen.get(key, 0) > 1:
            out.append(Difference(kind, ref, "duplicate_in_bill", b, g))
        if b is None:
            out.append(Difference(kind, ref, "missing_in_bill", None, g))
        elif g is None:
            out.append(Difference(kind, ref, "missing_in_ledger", b, None))
        elif b != g:
            out.append(Difference(kind, ref, "amount_mismatch", b, g))
    return out
