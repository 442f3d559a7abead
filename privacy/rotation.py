"""Re-encrypting personal data under the current key (``doorstep keys rotate``), and
encrypting the plaintext a database migrated from before 0030 still holds.

Each column is walked in key order, a batch a transaction: a value sealed under another
key is opened and sealed again under the current one (its blind index recomputed), a
value already under the current key is left. Where the walk got to is kept in
``pii_rotation`` (the key it re-encrypts to and the last row key done), so a stopped run
resumes; a new current key starts the walk over. Rows are updated only if unchanged
since read, so the application may write while it runs; it reads throughout, since old
keys still open their tokens.

Plaintext is accepted only in a column ``pii_plaintext`` names (set by migration 0030
for a database that had rows then): anywhere else a value that is no token stops the
run (fail closed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import asyncpg

from privacy.crypto import DataKeys, UnreadableData, key_id

log = logging.getLogger("doorstep.privacy")


@dataclass(frozen=True, slots=True)
class Column:
    """One encrypted column: its table, its row key, and its blind index if it has one."""

    name: str  # table.column, also the ciphertext's associated data
    key: tuple[str, ...] = ("id",)
    index: tuple[str, str] | None = None  # (index column, kind)

    @property
    def table(self) -> str:
        return self.name.split(".")[0]

    @property
    def column(self) -> str:
        return self.name.split(".")[1]


COLUMNS: tuple[Column, ...] = (
    Column("users.phone", index=("phone_bidx", "phone")),
    Column("addresses.detail"),
    Column("addresses.contact_phone"),
    Column("orders.address_detail"),
    Column("orders.contact_phone"),
    Column("applications.id_number", index=("id_number_bidx", "id_number")),
    Column("emergency_contacts.phone", key=("user_id", "position")),
    Column("sms_messages.phone", index=("phone_bidx", "phone")),
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one column's walk did."""

    column: str
    resealed: int  # values re-encrypted (or encrypted: plaintext before)
    resumed: bool  # it went on from where a stopped run got to
    done: bool  # every row walked (False: stopped after ``stop_after`` batches)
    batches: int = 0


async def _walk(
    pool: asyncpg.Pool[Any],
    keys: DataKeys,
    col: Column,
    *,
    batch: int,
    plaintext: bool,
    stop_after: int | None,
) -> Outcome:
    state = await pool.fetchrow(
        "SELECT key_id, last_key, done FROM pii_rotation WHERE col = $1", col.name
    )
    if state is not None and state["key_id"] == keys.current and state["done"]:
        return Outcome(col.name, 0, False, True)
    resumed = state is not None and state["key_id"] == keys.current and bool(state["last_key"])
    last: list[int] = list(state["last_key"]) if resumed and state is not None else []
    if not resumed:
        await pool.execute(
            "INSERT INTO pii_rotation (col, key_id, last_key) VALUES ($1, $2, '{}') "
            "ON CONFLICT (col) DO UPDATE SET key_id = $2, last_key = '{}', done = false, "
            "rows_done = 0, updated_at = now()",
            col.name,
            keys.current,
        )
    kcols = ", ".join(col.key)
    after = f"({kcols}) > ({', '.join(f'${i + 1}::bigint' for i in range(len(col.key)))})"
    n = len(col.key)
    where_key = " AND ".join(f"{k} = ${i + 1}" for i, k in enumerate(col.key))
    sets = f"{col.column} = ${n + 2}" + (f", {col.index[0]} = ${n + 3}" if col.index else "")
    update = f"UPDATE {col.table} SET {sets} WHERE {where_key} AND {col.column} = ${n + 1}"
    resealed = batches = 0
    while True:
        batches += 1
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"SELECT {kcols}, {col.column} AS v FROM {col.table} "
                f"{'WHERE ' + after if last else ''} ORDER BY {kcols} LIMIT {int(batch)}",
                *last,
            )
            changes = []
            for r in rows:
                old = r["v"]
                if not old or key_id(old) == keys.current:
                    continue
                if key_id(old) is None:
                    if not plaintext:
                        raise UnreadableData(
                            f"{col.name} holds a value that is not encrypted, in a row "
                            f"({', '.join(str(r[k]) for k in col.key)}) written after "
                            "migration 0030"
                        )
                    plain = old
                else:
                    plain = keys.open(col.name, old)
                args: list[object] = [*(r[k] for k in col.key), old, keys.seal(col.name, plain)]
                if col.index:
                    args.append(keys.index(col.index[1], plain))
                changes.append(tuple(args))
            if changes:
                await conn.executemany(update, changes)
            resealed += len(changes)
            if rows:
                last = [int(rows[-1][k]) for k in col.key]
            done = len(rows) < batch
            await conn.execute(
                "UPDATE pii_rotation SET last_key = $2, done = $3, "
                "rows_done = rows_done + $4, updated_at = now() WHERE col = $1",
                col.name,
                last,
                done,
                len(changes),
            )
        if done or (stop_after is not None and batches >= stop_after):
            return Outcome(col.name, resealed, resumed, done, batches)


async def rotate(
    pool: asyncpg.Pool[Any],
    keys: DataKeys,
    *,
    batch: int = 500,
    columns: tuple[Column, ...] = COLUMNS,
    stop_after: int | None = None,
) -> list[Outcome]:
    """Re-encrypt every value of ``columns`` not under the current key (resumable);
    ``stop_after``: at most that many batches in all (a long rotation spread over
    several runs), then stop; the next run resumes."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    marked = {r["col"] for r in await pool.fetch("SELECT col FROM pii_plaintext")}
    out = []
    left = stop_after
    for col in columns:
        if left is not None and left <= 0:
            break
        outcome = await _walk(
            pool, keys, col, batch=batch, plaintext=col.name in marked, stop_after=left
        )
        out.append(outcome)
        if left is not None:
            left -= outcome.batches
        if not outcome.done:
            break
        if col.name in marked:
            await pool.execute("DELETE FROM pii_plaintext WHERE col = $1", col.name)
    return out


async def encrypt_plaintext(
    pool: asyncpg.Pool[Any], keys: DataKeys, *, batch: int = 1000
) -> list[Outcome]:
    """Encrypt what a database migrated from before 0030 holds in plaintext (every
    ``doorstep`` command runs it after migrating; nothing to do on a fresh database)."""
    marked = {r["col"] for r in await pool.fetch("SELECT col FROM pii_plaintext")}
    if not marked:
        return []
    done = await rotate(
        pool, keys, batch=batch, columns=tuple(c for c in COLUMNS if c.name in marked)
    )
    for o in done:
        log.info("encrypted %d plaintext values of %s", o.resealed, o.column)
    return done
