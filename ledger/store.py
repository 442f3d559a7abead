"""The ledger in PostgreSQL: post entries in the caller's transaction, read balances,
check the invariants.

``post`` takes the caller's connection, inside the transaction that makes the change
the money follows (a payment captured, a refund confirmed, an order settled): the entry
exists if and only if that change commits. Rows are immutable (a trigger refuses
UPDATE and DELETE); a correction is :func:`reverse`. A deferred constraint trigger
checks at commit that every entry balances, whatever wrote it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from doorstep.db import Conn, Tx
from ledger.rules import (
    Entry,
    EntryConflict,
    InvalidEntry,
    LedgerError,
    Line,
    Violation,
    check_balances,
    parse_account,
    reversal,
    same_lines,
    validate,
)


@dataclass(frozen=True, slots=True)
class Posted:
    """A posted entry's id, and whether this call wrote it (False: it was there)."""

    entry_id: int
    created: bool


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """An entry as stored."""

    id: int
    key: str
    kind: str
    order_id: int | None
    memo: str
    reverses: int | None
    posted_at: datetime
    lines: tuple[Line, ...]
    data: dict[str, Any]


class NotInTransaction(LedgerError):
    """``post`` was called outside a transaction: the entry would not share its cause's fate."""

    code = "ledger_needs_transaction"


async def post(conn: Tx, entry: Entry, *, reverses: int | None = None) -> Posted:
    """Write ``entry`` in the caller's transaction (idempotent by ``entry.key``).

    The same key posted again with the same lines returns the first entry
    (``created=False``); with other lines it raises EntryConflict, and the caller's
    transaction should roll back.
    """
    if not conn.is_in_transaction():
        raise NotInTransaction(
            "post ledger entries inside the transaction of the change they follow",
            field="conn",
        )
    validate(entry)
    # The entry and its lines in one statement (one round trip): the lines are inserted
    # only if the entry was (a key posted before inserts nothing and returns no id).
    entry_id = await conn.fetchval(
        "WITH e AS (INSERT INTO ledger_entries (key, kind, order_id, currency, memo, data, "
        "reverses) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key) DO NOTHING RETURNING id), "
        "l AS (INSERT INTO ledger_lines (entry_id, account, debit_fen, credit_fen) "
        "SELECT e.id, t.a, t.d, t.c FROM e, unnest($8::text[], $9::bigint[], $10::bigint[]) "
        "WITH ORDINALITY AS t(a, d, c, n) ORDER BY t.n) "
        "SELECT id FROM e",
        entry.key,
        entry.kind,
        entry.order_id,
        entry.currency,
        entry.memo,
        entry.data,
        reverses,
        [x.account for x in entry.lines],
        [x.debit_fen for x in entry.lines],
        [x.credit_fen for x in entry.lines],
    )
    return await posted(conn, entry, entry_id)


def posting(conn: Tx, entry: Entry, *, first: int, after: str) -> tuple[str, list[Any]]:
    """``entry`` posted by another statement of the caller's transaction (a round trip
    fewer): the CTEs ``e`` (the entry) and ``l`` (its lines) for that statement's ``WITH``,
    after its CTE ``after``, and their parameters, numbered from ``$first``. The entry is
    written only if ``after`` returns a row; the statement returns ``(SELECT id FROM e)``,
    to give :func:`posted` (which checks, as :func:`post` does, a key posted before)."""
    if not conn.is_in_transaction():
        raise NotInTransaction(
            "post ledger entries inside the transaction of the change they follow",
            field="conn",
        )
    validate(entry)
    n = [f"${first + i}" for i in range(10)]
    sql = (
        "e AS (INSERT INTO ledger_entries (key, kind, order_id, currency, memo, data, reverses) "
        f"SELECT {n[0]}::text, {n[1]}::text, {n[2]}::bigint, {n[3]}::text, {n[4]}::text, "
        f"{n[5]}::jsonb, {n[6]}::bigint WHERE EXISTS (SELECT 1 FROM {after}) "
        "ON CONFLICT (key) DO NOTHING RETURNING id), "
        "l AS (INSERT INTO ledger_lines (entry_id, account, debit_fen, credit_fen) "
        f"SELECT e.id, t.a, t.d, t.c FROM e, unnest({n[7]}::text[], {n[8]}::bigint[], "
        f"{n[9]}::bigint[]) WITH ORDINALITY AS t(a, d, c, n) ORDER BY t.n)"
    )
    args: list[Any] = [
        entry.key,
        entry.kind,
        entry.order_id,
        entry.currency,
        entry.memo,
        entry.data,
        None,
        [x.account for x in entry.lines],
        [x.debit_fen for x in entry.lines],
        [x.credit_fen for x in entry.lines],
    ]
    return sql, args


async def posted(conn: Tx, entry: Entry, entry_id: int | None) -> Posted:
    """The entry as posted: ``entry_id`` if the statement wrote it; if its key was posted
    before (None), that entry, provided it has the same lines (else EntryConflict)."""
    if entry_id is None:
        existing = await get(conn, entry.key)
        if existing is None:  # pragma: no cover - the conflicting row must be visible now
            raise EntryConflict(f"entry {entry.key!r} is being posted elsewhere", field="key")
        if not same_lines(existing.lines, entry.lines) or existing.kind != entry.kind:
            raise EntryConflict(
                f"entry {entry.key!r} was posted before with other lines", field="key"
            )
        return Posted(existing.id, False)
    return Posted(int(entry_id), True)


async def post_many(conn: Tx, entries: Sequence[Entry]) -> list[Posted]:
    """Post several entries in the caller's transaction, in order."""
    return [await post(conn, e) for e in entries]


async def get(db: Conn, key: str) -> StoredEntry | None:
    """The entry posted under ``key``, with its lines."""
    rows = await _entries(db, "e.key = $1", key)
    return rows[0] if rows else None


async def by_id(db: Conn, entry_id: int) -> StoredEntry | None:
    """One entry by id."""
    rows = await _entries(db, "e.id = $1", entry_id)
    return rows[0] if rows else None


async def for_order(db: Conn, order_id: int) -> list[StoredEntry]:
    """An order's entries, oldest first."""
    return await _entries(db, "e.order_id = $1", order_id)


async def _entries(db: Conn, where: str, arg: object) -> list[StoredEntry]:
    rows = await db.fetch(
        "SELECT e.id, e.key, e.kind, e.order_id, e.memo, e.reverses, e.posted_at, e.data, "
        "array_agg(l.account ORDER BY l.id) AS accounts, "
        "array_agg(l.debit_fen ORDER BY l.id) AS debits, "
        "array_agg(l.credit_fen ORDER BY l.id) AS credits "
        f"FROM ledger_entries e JOIN ledger_lines l ON l.entry_id = e.id WHERE {where} "
        "GROUP BY e.id ORDER BY e.id",
        arg,
    )
    return [
        StoredEntry(
            id=r["id"],
            key=r["key"],
            kind=r["kind"],
            order_id=r["order_id"],
            memo=r["memo"],
            reverses=r["reverses"],
            posted_at=r["posted_at"],
            data=r["data"],
            lines=tuple(
                Line(a, int(d), int(c))
                for a, d, c in zip(r["accounts"], r["debits"], r["credits"], strict=True)
            ),
        )
        for r in rows
    ]


async def reverse(conn: Tx, key: str, *, reversal_key: str, memo: str) -> Posted:
    """Undo the entry posted under ``key`` with its mirror image (once: a second
    reversal of the same entry is an EntryConflict unless it is this same one)."""
    original = await get(conn, key)
    if original is None:
        raise InvalidEntry(f"no entry {key!r} to reverse", field="key")
    entry = reversal(
        Entry(
            key=original.key,
            kind=original.kind,
            lines=original.lines,
            order_id=original.order_id,
        ),
        key=reversal_key,
        memo=memo,
    )
    done = await conn.fetchval("SELECT key FROM ledger_entries WHERE reverses = $1", original.id)
    if done is not None and done != reversal_key:
        raise EntryConflict(f"entry {key!r} was reversed already by {done!r}", field="key")
    return await post(conn, entry, reverses=original.id)


async def balance(db: Conn, account: str) -> int:
    """An account's balance in fen: its debits minus its credits (see
    ``ledger.rules.normal_balance`` for the reading people expect)."""
    parse_account(account)
    value = await db.fetchval(
        "SELECT coalesce(sum(debit_fen - credit_fen), 0) FROM ledger_lines WHERE account = $1",
        account,
    )
    return int(value)


async def balances(db: Conn, accounts: Sequence[str] | None = None) -> dict[str, int]:
    """Balances (debits − credits) of the given accounts (all accounts with lines if None)."""
    if accounts is None:
        rows = await db.fetch(
            "SELECT account, sum(debit_fen - credit_fen) AS b FROM ledger_lines GROUP BY account"
        )
    else:
        rows = await db.fetch(
            "SELECT account, sum(debit_fen - credit_fen) AS b FROM ledger_lines "
            "WHERE account = ANY($1) GROUP BY account",
            list(accounts),
        )
    out = {a: 0 for a in accounts or ()}
    out.update({r["account"]: int(r["b"]) for r in rows})
    return out


async def balances_like(db: Conn, kind: str) -> dict[str, int]:
    """Balances of every account of one kind (``worker_payable`` → each worker's)."""
    rows = await db.fetch(
        "SELECT account, sum(debit_fen - credit_fen) AS b FROM ledger_lines "
        "WHERE account = $1 OR account LIKE $2 GROUP BY account",
        kind,
        f"{kind}:%",
    )
    return {r["account"]: int(r["b"]) for r in rows}


async def check(db: Conn) -> list[Violation]:
    """Every invariant, recomputed from the lines (``doorstep ledger check``, the tests):

    each entry balances and has two lines or more; each account is in the chart; a
    reversal mirrors its original; and the balance rules of ``ledger.rules.check_balances``.
    """
    out: list[Violation] = []
    for r in await db.fetch(
        "SELECT e.key, count(l.id) AS n, coalesce(sum(l.debit_fen), 0) AS d, "
        "coalesce(sum(l.credit_fen), 0) AS c FROM ledger_entries e "
        "LEFT JOIN ledger_lines l ON l.entry_id = e.id GROUP BY e.id "
        "HAVING count(l.id) < 2 OR coalesce(sum(l.debit_fen), 0) <> coalesce(sum(l.credit_fen), 0)"
    ):
        out.append(
            Violation(
                "entry_balanced",
                f"entry {r['key']}: {r['n']} lines, debits {r['d']}, credits {r['c']}",
            )
        )
    for r in await db.fetch(
        "SELECT e.key, o.key AS original FROM ledger_entries e JOIN ledger_entries o "
        "ON o.id = e.reverses WHERE EXISTS ("
        "  (SELECT account, debit_fen, credit_fen FROM ledger_lines WHERE entry_id = e.id "
        "   EXCEPT ALL SELECT account, credit_fen, debit_fen FROM ledger_lines WHERE entry_id = o.id) "
        "  UNION ALL "
        "  (SELECT account, credit_fen, debit_fen FROM ledger_lines WHERE entry_id = o.id "
        "   EXCEPT ALL SELECT account, debit_fen, credit_fen FROM ledger_lines WHERE entry_id = e.id))"
    ):
        out.append(Violation("reversal_mirrors", f"{r['key']} does not mirror {r['original']}"))
    all_balances = await balances(db)
    known: dict[str, int] = {}
    for account, bal in all_balances.items():
        try:
            parse_account(account)
        except InvalidEntry as e:
            out.append(Violation("account_in_chart", f"{account}: {e.message}"))
        else:
            known[account] = bal
    out.extend(check_balances(known))
    return out
