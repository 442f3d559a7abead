"""The double-entry ledger: pure rules, posting in the caller's transaction, immutability,
reversals, balances from lines, and the invariants check."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from doorstep.db import Tx, with_database
from doorstep.stores import Stores
from ledger import rules, store
from ledger.rules import Entry, EntryConflict, InvalidEntry, credit, debit


def _key() -> str:
    return f"test:{secrets.token_hex(6)}"


def _no_such_order() -> int:
    """An order id far above any a test creates: postings here must not land on another
    test's real order in the same database."""
    return 900_000 + secrets.randbelow(99_999)


def _pay(order_id: int, fen: int, key: str | None = None) -> Entry:
    return Entry(
        key=key or _key(),
        kind="payment.captured",
        order_id=order_id,
        lines=(debit(rules.gateway("wechat"), fen), credit(rules.order_funds(order_id), fen)),
    )


def test_an_unbalanced_entry_is_refused_naming_the_rule() -> None:
    """Debits that differ from credits are refused, with both sums in the message."""
    e = Entry(
        key="k", kind="payment.captured", lines=(debit("bank", 100), credit("order_funds:1", 99))
    )
    with pytest.raises(InvalidEntry, match=r"debits \(100 fen\) must equal credits \(99 fen\)"):
        rules.validate(e)


@pytest.mark.parametrize(
    ("line", "field"),
    [
        (rules.Line("bank", 1.5, 0), "lines[0].debit_fen"),  # type: ignore[arg-type]
        (rules.Line("bank", True, 0), "lines[0].debit_fen"),
        (rules.Line("bank", -5, 0), "lines[0].debit_fen"),
        (rules.Line("bank", 5, 5), "lines[0]"),
        (rules.Line("bank", 0, 0), "lines[0]"),
        (rules.Line("nowhere", 5, 0), "account"),
        (rules.Line("order_funds", 5, 0), "account"),
        (rules.Line("gateway:paypal", 5, 0), "account"),
        (rules.Line("bank:1", 5, 0), "account"),
    ],
)
def test_bad_lines_are_refused_naming_the_field(line: rules.Line, field: str) -> None:
    """Floats, bools, negatives, two-sided or empty lines, unknown accounts are refused."""
    e = Entry(key="k", kind="payment.captured", lines=(line, credit("order_funds:1", 5)))
    with pytest.raises(InvalidEntry) as err:
        rules.validate(e)
    assert err.value.field == field


def test_other_currencies_and_single_lines_are_refused() -> None:
    """An entry is in CNY and has two lines or more."""
    with pytest.raises(InvalidEntry, match="currency must be CNY"):
        rules.validate(
            Entry(
                key="k",
                kind="x.y",
                currency="USD",
                lines=(debit("bank", 1), credit("order_funds:1", 1)),
            )
        )
    with pytest.raises(InvalidEntry, match=r"2\.\.64 lines"):
        rules.validate(Entry(key="k", kind="x.y", lines=(debit("bank", 1),)))


def test_a_reversal_mirrors_every_line() -> None:
    """A reversal swaps debits and credits, so the two entries sum to nothing."""
    e = _pay(3, 500, "a")
    r = rules.reversal(e, key="a:rev", memo="wrong order")
    assert rules.balances(e.lines + r.lines) == {"gateway:wechat": 0, "order_funds:3": 0}


def test_balance_rules_flag_overdrawn_orders_and_an_unbalanced_whole() -> None:
    """An order refunded beyond what was paid and a ledger that does not sum to 0 are violations."""
    found = rules.check_balances({"order_funds:9": 10, "gateway:wechat": -5})
    assert {v.rule for v in found} == {
        "ledger_balanced",
        "order_funds_not_negative",
        "gateway_not_negative",
    }
    assert rules.normal_balance("order_funds:9", -300) == 300


async def test_post_needs_the_callers_transaction(stores: Stores) -> None:
    """Posting outside a transaction is refused: the entry would not share its cause's fate."""
    async with stores.pool.acquire() as conn:
        with pytest.raises(store.NotInTransaction):
            await store.post(conn, _pay(_no_such_order(), 100))


async def test_an_entry_rolls_back_with_its_cause(stores: Stores) -> None:
    """An entry posted in a transaction that rolls back is not there."""
    e = _pay(_no_such_order(), 100)

    class Boom(Exception):
        pass

    async def post_then_fail() -> None:
        async with stores.pool.acquire() as conn, conn.transaction():
            await store.post(conn, e)
            raise Boom

    with pytest.raises(Boom):
        await post_then_fail()
    assert await store.get(stores.pool, e.key) is None


async def test_posting_is_idempotent_by_key_and_refuses_other_lines(stores: Stores) -> None:
    """The same key twice writes once; the same key with another amount is a conflict."""
    order_id = _no_such_order()
    e = _pay(order_id, 700)
    async with stores.pool.acquire() as conn, conn.transaction():
        first = await store.post(conn, e)
    async with stores.pool.acquire() as conn, conn.transaction():
        again = await store.post(conn, e)
    assert first.created
    assert not again.created
    assert first.entry_id == again.entry_id
    with pytest.raises(EntryConflict):
        async with stores.pool.acquire() as conn, conn.transaction():
            await store.post(conn, _pay(order_id, 701, e.key))
    stored = await store.get(stores.pool, e.key)
    assert stored is not None
    assert rules.same_lines(stored.lines, e.lines)


async def _post_within(conn: Tx, e: Entry, *, when: bool) -> int | None:
    """``e`` posted by another statement (``store.posting``), if its CTE ``w`` has a row."""
    sql, args = store.posting(conn, e, first=2, after="w")
    entry_id: int | None = await conn.fetchval(
        f"WITH w AS (SELECT 1 WHERE $1::bool), {sql} SELECT (SELECT id FROM e)", when, *args
    )
    return entry_id


async def test_an_entry_posted_inside_another_statement_follows_its_condition(
    stores: Stores,
) -> None:
    """store.posting writes the entry and its lines only when the host statement's CTE has
    a row, and a key posted before is checked as post checks it (other lines: conflict)."""
    order_id = _no_such_order()
    e = _pay(order_id, 300)
    async with stores.pool.acquire() as conn:
        with pytest.raises(store.NotInTransaction):
            store.posting(conn, e, first=2, after="w")
        async with conn.transaction():
            assert await _post_within(conn, e, when=False) is None
        assert await store.get(stores.pool, e.key) is None
        async with conn.transaction():
            entry_id = await _post_within(conn, e, when=True)
            assert (await store.posted(conn, e, entry_id)).created
        stored = await store.get(stores.pool, e.key)
        assert stored is not None
        assert rules.same_lines(stored.lines, e.lines)
        async with conn.transaction():
            again = await _post_within(conn, e, when=True)
            assert again is None
            assert not (await store.posted(conn, e, again)).created
        other = _pay(order_id, 301, e.key)
        with pytest.raises(EntryConflict):
            async with conn.transaction():
                await store.posted(conn, other, await _post_within(conn, other, when=True))


async def test_rows_are_immutable_and_a_correction_reverses(stores: Stores) -> None:
    """UPDATE and DELETE of ledger rows fail; a reversal brings the balances back, once."""
    order_id = _no_such_order()
    e = _pay(order_id, 250)
    async with stores.pool.acquire() as conn, conn.transaction():
        await store.post(conn, e)
    for sql in (
        "UPDATE ledger_lines SET debit_fen = 1 WHERE entry_id = (SELECT id FROM ledger_entries WHERE key = $1)",
        "DELETE FROM ledger_entries WHERE key = $1",
    ):
        with pytest.raises(asyncpg.RestrictViolationError):
            await stores.pool.execute(sql, e.key)
    assert await store.balance(stores.pool, rules.order_funds(order_id)) == -250
    async with stores.pool.acquire() as conn, conn.transaction():
        await store.reverse(conn, e.key, reversal_key=f"{e.key}:rev", memo="test")
    assert await store.balance(stores.pool, rules.order_funds(order_id)) == 0
    with pytest.raises(EntryConflict):
        async with stores.pool.acquire() as conn, conn.transaction():
            await store.reverse(conn, e.key, reversal_key=f"{e.key}:rev2", memo="again")
    assert [x.kind for x in await store.for_order(stores.pool, order_id)] == [
        "payment.captured",
        "payment.captured.reversal",
    ]


async def test_the_database_refuses_an_unbalanced_entry_at_commit(stores: Stores) -> None:
    """Lines written around post() that do not balance make the commit fail."""

    async def write_one_sided() -> None:
        async with stores.pool.acquire() as conn, conn.transaction():
            entry_id = await conn.fetchval(
                "INSERT INTO ledger_entries (key, kind) VALUES ($1, 'x.y') RETURNING id", _key()
            )
            await conn.execute(
                "INSERT INTO ledger_lines (entry_id, account, debit_fen) VALUES ($1, 'bank', 5)",
                entry_id,
            )

    with pytest.raises(asyncpg.CheckViolationError):
        await write_one_sided()


async def test_the_check_finds_nothing_wrong_in_a_consistent_ledger(stores: Stores) -> None:
    """After valid postings, reversals included, the invariants hold."""
    async with stores.pool.acquire() as conn, conn.transaction():
        await store.post(conn, _pay(_no_such_order(), 1000))
    assert await store.check(stores.pool) == []


async def test_the_ledger_check_command_exits_1_naming_a_violation(
    server_urls: tuple[str, str], tmp_path: Path
) -> None:
    """`doorstep ledger check` exits 0 on a sound ledger and 1 naming the rule broken (a
    line on an account outside the chart, written around ledger.store)."""
    admin_url = with_database(server_urls[1], "postgres")
    name = f"doorstep_ledger_cli_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = with_database(server_urls[1], name)
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")},
        "REDIS_URL": server_urls[0],
        "DATABASE_URL": url,
        "DOORSTEP_DATA_DIR": str(tmp_path / "data"),
        "DOORSTEP_SECRET_KEY": "k" * 40,
    }

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "doorstep", "ledger", "check"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    try:
        ok = await asyncio.to_thread(check)
        assert ok.returncode == 0, ok.stderr
        assert "0 violation(s)" in ok.stdout
        conn = await asyncpg.connect(url)
        async with conn.transaction():
            entry = await conn.fetchval(
                "INSERT INTO ledger_entries (key, kind) VALUES ('bad', 'x.y') RETURNING id"
            )
            await conn.execute(
                "INSERT INTO ledger_lines (entry_id, account, debit_fen, credit_fen) VALUES "
                "($1, 'bank', 5, 0), ($1, 'pocket:1', 0, 5)",
                entry,
            )
        await conn.close()
        bad = await asyncio.to_thread(check)
        assert bad.returncode == 1
        assert "VIOLATION account_in_chart: pocket:1" in bad.stdout
    finally:
        conn = await asyncpg.connect(admin_url)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()
