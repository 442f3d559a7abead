"""Crews: the workers holding one order together, in PostgreSQL (``order_crew``).

A crew order (``orders.crew_size`` > 1, copied from the service at booking) is offered
to a whole crew at once (offers of mode ``crew``, ``dispatch/offers.py``) and assigned
only when every member has accepted (:func:`dispatch.service.act` with ``crew``). Then
``orders.worker_id`` is the lead (seat 0) and ``order_crew`` lists every member; the
order reads its crew back as ``Order.crew``. A member's own arrival is kept here
(``arrived_at``); the order starts only when the whole crew has arrived
(:func:`missing`). Unassigning, declining or rescheduling releases the crew
(``released_at``); the rows stay as history. A dispatcher may assign a crew by hand or
put another worker in one member's seat (:func:`swap`, ``dispatch.overrides``). See
docs/dispatch.md#crews.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from doorstep.db import Conn, Tx


@dataclass(frozen=True, slots=True)
class CrewMember:
    """One worker of an order's crew as the parties see them (name: surname + 师傅)."""

    worker_id: int
    seat: int  # 0: the lead
    name: str
    joined_at: datetime
    arrived_at: datetime | None


def missing(crew: Sequence[int], arrived: Sequence[int]) -> list[int]:
    """The members of ``crew`` not arrived yet, in crew order (pure)."""
    here = set(arrived)
    return [w for w in crew if w not in here]


async def join(db: Tx, order_id: int, workers: Sequence[int], at: datetime) -> None:
    """Make ``workers`` the order's crew, the first the lead (a member released earlier
    comes back with a new seat and no arrival)."""
    await db.executemany(
        "INSERT INTO order_crew (order_id, worker_id, seat, joined_at) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (order_id, worker_id) DO UPDATE SET seat = EXCLUDED.seat, "
        "joined_at = EXCLUDED.joined_at, arrived_at = NULL, released_at = NULL",
        [(order_id, w, seat, at) for seat, w in enumerate(workers)],
    )


async def release(db: Tx, order_id: int, at: datetime) -> int:
    """The crew no longer holds the order; returns how many members were released."""
    rows = await db.fetch(
        "UPDATE order_crew SET released_at = $2 WHERE order_id = $1 AND released_at IS NULL "
        "RETURNING worker_id",
        order_id,
        at,
    )
    return len(rows)


async def swap(db: Tx, order_id: int, out: int, joining: int, at: datetime) -> int | None:
    """Put ``joining`` in ``out``'s seat of the order's crew (``out`` released, keeping their
    row as history); returns the seat, or None if ``out`` is not in the crew."""
    seat = await db.fetchval(
        "UPDATE order_crew SET released_at = $3 WHERE order_id = $1 AND worker_id = $2 "
        "AND released_at IS NULL RETURNING seat",
        order_id,
        out,
        at,
    )
    if seat is None:
        return None
    await db.execute(
        "INSERT INTO order_crew (order_id, worker_id, seat, joined_at) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (order_id, worker_id) DO UPDATE SET seat = EXCLUDED.seat, "
        "joined_at = EXCLUDED.joined_at, arrived_at = NULL, released_at = NULL",
        order_id,
        joining,
        seat,
        at,
    )
    return int(seat)


async def arrived(db: Tx, order_id: int, worker_id: int, at: datetime) -> bool:
    """Record a member's own arrival (the first one counts); False if they are not in the
    order's crew or had arrived already."""
    done = await db.fetchval(
        "UPDATE order_crew SET arrived_at = $3 WHERE order_id = $1 AND worker_id = $2 "
        "AND released_at IS NULL AND arrived_at IS NULL RETURNING worker_id",
        order_id,
        worker_id,
        at,
    )
    return done is not None


async def arrivals(db: Conn, order_id: int) -> list[int]:
    """The members of the order's crew who have arrived."""
    rows = await db.fetch(
        "SELECT worker_id FROM order_crew WHERE order_id = $1 AND released_at IS NULL "
        "AND arrived_at IS NOT NULL",
        order_id,
    )
    return [r["worker_id"] for r in rows]


async def members(db: Conn, order_id: int) -> list[CrewMember]:
    """The order's crew, lead first, with names as customers see them."""
    rows = await db.fetch(
        "SELECT c.worker_id, c.seat, u.name, c.joined_at, c.arrived_at FROM order_crew c "
        "JOIN users u ON u.id = c.worker_id WHERE c.order_id = $1 AND c.released_at IS NULL "
        "ORDER BY c.seat",
        order_id,
    )
    return [
        CrewMember(
            r["worker_id"],
            r["seat"],
            (r["name"] or "")[:1] + "师傅",
            r["joined_at"],
            r["arrived_at"],
        )
        for r in rows
    ]
