"""PostgreSQL access for day plans: versions, routes and stops."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dispatch.errors import DispatchError
from doorstep.db import Conn, Tx
from doorstep.errors import Conflict


class StalePlan(Conflict, DispatchError):
    """Someone stored a newer version of this day plan first."""

    code = "stale_plan"


@dataclass(frozen=True, slots=True)
class PlannedStop:
    """One stop of a stored route."""

    order_id: int
    arrival_at: datetime
    start_at: datetime
    departure_at: datetime
    slack_s: int


@dataclass(frozen=True, slots=True)
class PlannedRoute:
    """One worker's route in a stored plan."""

    worker_id: int
    travel_s: int
    distance_m: int
    breaks: list[dict[str, Any]]
    stops: list[PlannedStop]


@dataclass(frozen=True, slots=True)
class StoredPlan:
    """One version of a city's day plan."""

    id: int
    city_id: str
    plan_date: date
    version: int
    kind: str
    reason: str
    actor_id: int | None
    objective: int
    solve_ms: int
    dropped: list[dict[str, Any]]
    created_at: datetime
    routes: list[PlannedRoute]

    def route_of(self, worker_id: int) -> PlannedRoute | None:
        """The worker's route, if they have stops."""
        return next((r for r in self.routes if r.worker_id == worker_id), None)

    def worker_of(self, order_id: int) -> int | None:
        """The worker the plan gives this order to."""
        for r in self.routes:
            if any(s.order_id == order_id for s in r.stops):
                return r.worker_id
        return None


_HEAD = (
    "id, city_id, plan_date, version, kind, reason, actor_id, objective, solve_ms, dropped, "
    "created_at"
)


async def _routes(db: Conn, plan_id: int, worker_id: int | None = None) -> list[PlannedRoute]:
    routes = await db.fetch(
        "SELECT worker_id, travel_s, distance_m, breaks FROM day_plan_routes WHERE plan_id = $1 "
        "AND ($2::bigint IS NULL OR worker_id = $2) ORDER BY worker_id",
        plan_id,
        worker_id,
    )
    stops = await db.fetch(
        "SELECT worker_id, order_id, arrival_at, start_at, departure_at, slack_s FROM "
        "day_plan_stops WHERE plan_id = $1 AND ($2::bigint IS NULL OR worker_id = $2) "
        "ORDER BY worker_id, seq",
        plan_id,
        worker_id,
    )
    by_worker: dict[int, list[PlannedStop]] = {}
    for s in stops:
        by_worker.setdefault(s["worker_id"], []).append(
            PlannedStop(
                s["order_id"], s["arrival_at"], s["start_at"], s["departure_at"], s["slack_s"]
            )
        )
    return [
        PlannedRoute(
            r["worker_id"],
            r["travel_s"],
            r["distance_m"],
            list(r["breaks"]),
            by_worker.get(r["worker_id"], []),
        )
        for r in routes
    ]


async def latest(
    db: Conn, city_id: str, day: date, *, worker_id: int | None = None
) -> StoredPlan | None:
    """The newest version of the city's plan for ``day`` (only ``worker_id``'s route if given)."""
    row = await db.fetchrow(
        f"SELECT {_HEAD} FROM day_plans WHERE city_id = $1 AND plan_date = $2 "
        "ORDER BY version DESC LIMIT 1",
        city_id,
        day,
    )
    if row is None:
        return None
    return StoredPlan(**dict(row), routes=await _routes(db, row["id"], worker_id))


async def has_plan(db: Conn, city_id: str, day: date) -> bool:
    """Whether any version of the city's plan for ``day`` is stored."""
    return bool(
        await db.fetchval(
            "SELECT EXISTS (SELECT 1 FROM day_plans WHERE city_id = $1 AND plan_date = $2)",
            city_id,
            day,
        )
    )


async def lock(conn: Tx, city_id: str, day: date) -> None:
    """Serialise writers of one city's day plan until the transaction ends."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('doorstep-plan'), hashtext($1))",
        f"{city_id}/{day.isoformat()}",
    )


async def lock_around(conn: Tx, city_id: str, day: date) -> None:
    """Serialise writers of a day plan and of its two neighbours (an overnight job binds
    the worker's next day, and the next day's first stop binds this day's overnight
    work: dispatch/plan_inputs.neighbours), until the transaction ends. The days are
    locked in date order, so two writers never wait for each other in a circle."""
    for d in (day - timedelta(days=1), day, day + timedelta(days=1)):
        await lock(conn, city_id, d)


async def store(
    conn: Tx,
    *,
    city_id: str,
    day: date,
    after_version: int,
    kind: str,
    reason: str,
    actor_id: int | None,
    objective: int,
    solve_ms: int,
    dropped: Sequence[dict[str, Any]],
    routes: Sequence[PlannedRoute],
    keep_versions: int,
) -> StoredPlan:
    """Store the next version, if the newest is still ``after_version`` (else StalePlan).
    Call inside a transaction that holds :func:`lock`."""
    current = await conn.fetchval(
        "SELECT max(version) FROM day_plans WHERE city_id = $1 AND plan_date = $2", city_id, day
    )
    if (current or 0) != after_version:
        raise StalePlan(
            f"the {day} plan of {city_id} is at version {current}, not {after_version}",
            field="version",
        )
    row = await conn.fetchrow(
        "INSERT INTO day_plans (city_id, plan_date, version, kind, reason, actor_id, objective, "
        f"solve_ms, dropped) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) RETURNING {_HEAD}",
        city_id,
        day,
        after_version + 1,
        kind,
        reason,
        actor_id,
        objective,
        solve_ms,
        list(dropped),
    )
    assert row is not None
    plan_id = row["id"]
    kept = [r for r in routes if r.stops]
    await conn.executemany(
        "INSERT INTO day_plan_routes (plan_id, worker_id, travel_s, distance_m, breaks) "
        "VALUES ($1,$2,$3,$4,$5)",
        [(plan_id, r.worker_id, r.travel_s, r.distance_m, r.breaks) for r in kept],
    )
    await conn.executemany(
        "INSERT INTO day_plan_stops (plan_id, worker_id, seq, order_id, arrival_at, start_at, "
        "departure_at, slack_s) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
        [
            (
                plan_id,
                r.worker_id,
                i,
                s.order_id,
                s.arrival_at,
                s.start_at,
                s.departure_at,
                s.slack_s,
            )
            for r in kept
            for i, s in enumerate(r.stops)
        ],
    )
    await conn.execute(
        "DELETE FROM day_plans WHERE city_id = $1 AND plan_date = $2 AND version <= $3",
        city_id,
        day,
        after_version + 1 - keep_versions,
    )
    return StoredPlan(**dict(row), routes=kept)


async def due_stops(
    db: Conn, city_id: str, days: Sequence[date], before: datetime
) -> dict[date, tuple[int, dict[int, list[int]]]]:
    """Per day, the newest plan's version and, per worker, the orders of the stops whose
    planned arrival is before ``before``, in route order (what may be released soon).
    One query; days without a plan or without such stops are left out."""
    rows = await db.fetch(
        "WITH latest AS (SELECT DISTINCT ON (plan_date) id, version, plan_date FROM day_plans "
        "WHERE city_id = $1 AND plan_date = ANY($2::date[]) ORDER BY plan_date, version DESC) "
        "SELECT l.plan_date, l.version, s.worker_id, s.order_id FROM latest l "
        "JOIN day_plan_stops s ON s.plan_id = l.id WHERE s.arrival_at <= $3 "
        "ORDER BY l.plan_date, s.worker_id, s.seq",
        city_id,
        list(days),
        before,
    )
    out: dict[date, tuple[int, dict[int, list[int]]]] = {}
    for r in rows:
        _, workers = out.setdefault(r["plan_date"], (r["version"], {}))
        workers.setdefault(r["worker_id"], []).append(r["order_id"])
    return out


async def next_stops(
    db: Conn, city_id: str, days: Sequence[date], worker_ids: Sequence[int]
) -> dict[int, tuple[int, float, float, datetime]]:
    """Per worker, their next planned job not yet released to them, from the newest plan
    of each day: (order id, lat, lng, latest start = planned start + slack). One query."""
    rows = await db.fetch(
        "WITH latest AS (SELECT DISTINCT ON (plan_date) id FROM day_plans "
        "WHERE city_id = $1 AND plan_date = ANY($2::date[]) ORDER BY plan_date, version DESC) "
        "SELECT DISTINCT ON (s.worker_id) s.worker_id, s.order_id, o.lat, o.lng, "
        "s.start_at + make_interval(secs => s.slack_s) AS latest FROM latest l "
        "JOIN day_plan_stops s ON s.plan_id = l.id JOIN orders o ON o.id = s.order_id "
        "WHERE s.worker_id = ANY($3) AND o.status IN ('confirmed', 'dispatching', 'offered') "
        "ORDER BY s.worker_id, s.start_at",
        city_id,
        list(days),
        list(worker_ids),
    )
    return {r["worker_id"]: (r["order_id"], r["lat"], r["lng"], r["latest"]) for r in rows}


def utc(ts: float) -> datetime:
    """Unix seconds as an aware datetime."""
    return datetime.fromtimestamp(ts, UTC)
