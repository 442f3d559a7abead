"""Number bindings in PostgreSQL: what the provider was asked to bind, and when it ended."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from doorstep.db import Conn, Tx


@dataclass(frozen=True, slots=True)
class NumberBinding:
    """A live (or ended) binding of an order's customer and worker to a temporary number."""

    id: int
    order_id: int
    worker_id: int
    out_id: str
    subs_id: str
    secret_no: str
    expires_at: datetime
    bound_at: datetime
    released_at: datetime | None


_COLUMNS = "id, order_id, worker_id, out_id, subs_id, secret_no, expires_at, bound_at, released_at"


async def live(db: Conn, order_id: int) -> NumberBinding | None:
    """The order's live binding, if any."""
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM number_bindings WHERE order_id = $1 AND released_at IS NULL",
        order_id,
    )
    return NumberBinding(**dict(row)) if row is not None else None


async def live_of(db: Conn, order_ids: list[int]) -> dict[int, NumberBinding]:
    """The live bindings of some orders, by order (one statement)."""
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM number_bindings "
        "WHERE order_id = ANY($1::bigint[]) AND released_at IS NULL ORDER BY id",
        order_ids,
    )
    out: dict[int, NumberBinding] = {}
    for row in rows:
        out.setdefault(row["order_id"], NumberBinding(**dict(row)))
    return out


async def record(
    tx: Tx,
    *,
    order_id: int,
    worker_id: int,
    out_id: str,
    subs_id: str,
    secret_no: str,
    expires_at: datetime,
) -> None:
    """Keep a binding the provider made."""
    await tx.execute(
        "INSERT INTO number_bindings (order_id, worker_id, out_id, subs_id, secret_no, "
        "expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        order_id,
        worker_id,
        out_id,
        subs_id,
        secret_no,
        expires_at,
    )


async def released(tx: Tx, binding_id: int, at: datetime) -> None:
    """The binding ended (the provider was told)."""
    await tx.execute(
        "UPDATE number_bindings SET released_at = $2 WHERE id = $1 AND released_at IS NULL",
        binding_id,
        at,
    )
