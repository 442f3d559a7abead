"""PostgreSQL access for workers, certificates, availability and teams."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import asyncpg

from doorstep.db import Conn, Tx
from privacy.crypto import reveal
from workforce.errors import DuplicateCertificate, DuplicateTeam
from workforce.gating import Qualification, blocked_by
from workforce.models import Certificate, DayException, Team, Window, Worker

_WORKER = (
    "w.user_id, u.name, u.phone, w.city_id, w.skills, w.home_lat, w.home_lng, "
    "w.rating_sum, w.rating_count, w.team_id"
)


def _worker(
    r: asyncpg.Record,
    certificates: tuple[Certificate, ...] = (),
    availability: tuple[Window, ...] = (),
    exceptions: tuple[DayException, ...] = (),
) -> Worker:
    count = r["rating_count"]
    return Worker(
        user_id=r["user_id"],
        name=r["name"],
        phone=reveal("users.phone", r["phone"]),
        city_id=r["city_id"],
        skills=tuple(r["skills"]),
        home_lat=r["home_lat"],
        home_lng=r["home_lng"],
        rating=round(r["rating_sum"] / count, 3) if count else None,
        rating_count=count,
        team_id=r["team_id"],
        certificates=certificates,
        availability=availability,
        exceptions=exceptions,
    )


async def upsert_worker(
    db: Conn,
    *,
    user_id: int,
    city_id: str,
    skills: tuple[str, ...],
    home_lat: float,
    home_lng: float,
    team_id: int | None,
    rating_sum: int = 0,
    rating_count: int = 0,
) -> None:
    """Create or replace a worker profile for an existing user."""
    await db.execute(
        "INSERT INTO workers (user_id, city_id, skills, home_lat, home_lng, team_id, rating_sum, "
        "rating_count) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (user_id) DO UPDATE SET "
        "city_id = EXCLUDED.city_id, skills = EXCLUDED.skills, home_lat = EXCLUDED.home_lat, "
        "home_lng = EXCLUDED.home_lng, team_id = EXCLUDED.team_id, updated_at = now()",
        user_id,
        city_id,
        list(skills),
        home_lat,
        home_lng,
        team_id,
        rating_sum,
        rating_count,
    )


async def worker(db: Conn, user_id: int, *, detail: bool = True) -> Worker | None:
    """A worker with (``detail``) certificates, weekly availability and exceptions."""
    row = await db.fetchrow(
        f"SELECT {_WORKER} FROM workers w JOIN users u ON u.id = w.user_id WHERE w.user_id = $1",
        user_id,
    )
    if row is None:
        return None
    if not detail:
        return _worker(row)
    return _worker(
        row,
        await certificates(db, user_id),
        await availability(db, user_id),
        await exceptions(db, user_id),
    )


async def workers(
    db: Conn,
    *,
    city_id: str | None,
    team_ids: list[int] | None,
    skill: str | None,
    after_id: int,
    limit: int,
    city_ids: list[str] | None = None,
) -> list[Worker]:
    """Workers by id (keyset pages), each with certificates, availability and exceptions
    as in :func:`worker` (one query for each, not one per worker); ``team_ids``
    restricts to those teams, ``city_ids`` to those cities."""
    rows = await db.fetch(
        f"SELECT {_WORKER} FROM workers w JOIN users u ON u.id = w.user_id "
        "WHERE w.user_id > $1 AND ($2::text IS NULL OR w.city_id = $2) "
        "AND ($3::bigint[] IS NULL OR w.team_id = ANY($3)) AND ($4::text IS NULL OR $4 = ANY(w.skills)) "
        "AND ($6::text[] IS NULL OR w.city_id = ANY($6)) "
        "ORDER BY w.user_id LIMIT $5",
        after_id,
        city_id,
        team_ids,
        skill,
        limit,
        city_ids,
    )
    ids = [r["user_id"] for r in rows]
    certs: dict[int, list[Certificate]] = {i: [] for i in ids}
    windows: dict[int, list[Window]] = {i: [] for i in ids}
    days: dict[int, list[DayException]] = {i: [] for i in ids}
    if ids:
        for r in await db.fetch(
            "SELECT worker_id, id, kind, number, issued_on, expires_on, status, reason "
            "FROM worker_certificates WHERE worker_id = ANY($1) ORDER BY worker_id, id",
            ids,
        ):
            fields = dict(r)
            certs[fields.pop("worker_id")].append(Certificate(**fields))
        for r in await db.fetch(
            "SELECT worker_id, weekday, start_min, end_min FROM worker_availability "
            "WHERE worker_id = ANY($1) ORDER BY worker_id, weekday, start_min",
            ids,
        ):
            fields = dict(r)
            windows[fields.pop("worker_id")].append(Window(**fields))
        for r in await db.fetch(
            "SELECT worker_id, on_date, available, start_min, end_min, reason "
            "FROM worker_availability_exceptions WHERE worker_id = ANY($1) "
            "ORDER BY worker_id, on_date",
            ids,
        ):
            fields = dict(r)
            days[fields.pop("worker_id")].append(DayException(**fields))
    return [
        _worker(
            r,
            tuple(certs[r["user_id"]]),
            tuple(windows[r["user_id"]]),
            tuple(days[r["user_id"]]),
        )
        for r in rows
    ]


async def update_worker(db: Conn, user_id: int, fields: dict[str, Any]) -> bool:
    """Set some of city_id, skills, home_lat, home_lng, team_id; False if no such worker."""
    allowed = {"city_id", "skills", "home_lat", "home_lng", "team_id"}
    assert set(fields) <= allowed
    if not fields:
        return await db.fetchval("SELECT 1 FROM workers WHERE user_id = $1", user_id) is not None
    names = list(fields)
    sets = ", ".join(f"{n} = ${i + 2}" for i, n in enumerate(names))
    status = await db.execute(
        f"UPDATE workers SET {sets}, updated_at = now() WHERE user_id = $1",
        user_id,
        *[list(v) if isinstance(v, tuple) else v for v in fields.values()],
    )
    return status.endswith(" 1")


async def certificates(db: Conn, worker_id: int) -> tuple[Certificate, ...]:
    """A worker's certificates."""
    rows = await db.fetch(
        "SELECT id, kind, number, issued_on, expires_on, status, reason FROM worker_certificates "
        "WHERE worker_id = $1 ORDER BY id",
        worker_id,
    )
    return tuple(Certificate(**dict(r)) for r in rows)


async def add_certificate(
    db: Conn,
    worker_id: int,
    *,
    kind: str,
    number: str,
    issued_on: date,
    expires_on: date,
    status: str = "pending",
) -> Certificate:
    """Register a certificate (pending until staff verify it)."""
    try:
        row = await db.fetchrow(
            "INSERT INTO worker_certificates (worker_id, kind, number, issued_on, expires_on, status) "
            "VALUES ($1,$2,$3,$4,$5,$6) RETURNING id, kind, number, issued_on, expires_on, status",
            worker_id,
            kind,
            number,
            issued_on,
            expires_on,
            status,
        )
    except asyncpg.UniqueViolationError:
        raise DuplicateCertificate(
            f"a {kind} certificate numbered {number!r} is registered already", field="number"
        ) from None
    assert row is not None
    return Certificate(**dict(row))


async def upsert_certificate(
    db: Conn,
    worker_id: int,
    *,
    kind: str,
    number: str,
    issued_on: date,
    expires_on: date,
    status: str,
) -> None:
    """Insert or refresh a certificate by (kind, number) — for seeding."""
    await db.execute(
        "INSERT INTO worker_certificates (worker_id, kind, number, issued_on, expires_on, status) "
        "VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (kind, number) DO UPDATE SET worker_id = "
        "EXCLUDED.worker_id, issued_on = EXCLUDED.issued_on, expires_on = EXCLUDED.expires_on, "
        "status = EXCLUDED.status",
        worker_id,
        kind,
        number,
        issued_on,
        expires_on,
        status,
    )


async def set_certificate_status(
    db: Conn,
    worker_id: int,
    cert_id: int,
    status: str,
    *,
    reason: str = "",
    actor_id: int | None = None,
) -> Certificate | None:
    """Set a certificate's state with its reason, and keep the step (certificate_steps)."""
    row = await db.fetchrow(
        "WITH c AS (UPDATE worker_certificates SET status = $3, reason = $4, reviewed_by = $5, "
        "reviewed_at = now() WHERE id = $2 AND worker_id = $1 "
        "RETURNING id, kind, number, issued_on, expires_on, status, reason), "
        "s AS (INSERT INTO certificate_steps (certificate_id, at, actor_id, status, reason) "
        "SELECT id, now(), $5, status, reason FROM c) SELECT * FROM c",
        worker_id,
        cert_id,
        status,
        reason,
        actor_id,
    )
    return Certificate(**dict(row)) if row else None


async def qualifications(db: Conn, worker_ids: list[int]) -> dict[int, Qualification]:
    """What gating needs of each worker: skills, whether exams are required, the skills
    whose exam is passed, verified certificates' last valid day per kind."""
    rows = await db.fetch(
        "SELECT w.user_id, w.skills, w.exams_required, "
        "coalesce((SELECT array_agg(q.skill) FROM skill_qualifications q "
        "WHERE q.user_id = w.user_id), '{}') AS passed "
        "FROM workers w WHERE w.user_id = ANY($1)",
        worker_ids,
    )
    certs = await db.fetch(
        "SELECT worker_id, kind, max(expires_on) AS expires_on FROM worker_certificates "
        "WHERE worker_id = ANY($1) AND status = 'verified' GROUP BY worker_id, kind",
        worker_ids,
    )
    by_worker: dict[int, dict[str, date]] = {}
    for r in certs:
        by_worker.setdefault(r["worker_id"], {})[r["kind"]] = r["expires_on"]
    blocked = await discipline_blocks(db, worker_ids, datetime.now(UTC))
    return {
        r["user_id"]: Qualification(
            worker_id=r["user_id"],
            skills=frozenset(r["skills"]),
            exams_required=r["exams_required"],
            passed=frozenset(r["passed"]),
            certificates=by_worker.get(r["user_id"], {}),
            blocked=blocked.get(r["user_id"]),
        )
        for r in rows
    }


async def discipline_blocks(db: Conn, worker_ids: list[int], now: datetime) -> dict[int, str]:
    """Workers kept from work by a suspension or a dismissal now, with the reason."""
    rows = await db.fetch(
        "SELECT worker_id, kind, status, starts_at, ends_at FROM discipline_actions "
        "WHERE worker_id = ANY($1) AND kind IN ('suspension', 'dismissal') "
        "AND status <> 'overturned'",
        worker_ids,
    )
    per: dict[int, list[tuple[str, str, datetime, datetime | None]]] = {}
    for r in rows:
        per.setdefault(r["worker_id"], []).append(
            (r["kind"], r["status"], r["starts_at"], r["ends_at"])
        )
    out = {}
    for w, actions in per.items():
        reason = blocked_by(actions, now)
        if reason is not None:
            out[w] = reason
    return out


async def dispatch_priority(db: Conn, worker_ids: list[int], now: datetime) -> set[int]:
    """Workers holding a dispatch priority reward now (``discipline_actions`` of kind
    ``priority``, started, not ended, not overturned)."""
    rows = await db.fetch(
        "SELECT DISTINCT worker_id FROM discipline_actions WHERE worker_id = ANY($1) "
        "AND kind = 'priority' AND status <> 'overturned' AND starts_at <= $2 "
        "AND (ends_at IS NULL OR ends_at > $2)",
        worker_ids,
        now,
    )
    return {int(r["worker_id"]) for r in rows}


async def skill_certificate_rules(db: Conn) -> dict[str, frozenset[str]]:
    """Skill → the certificate kinds it needs (``skill_certificates``)."""
    out: dict[str, set[str]] = {}
    for r in await db.fetch("SELECT skill, certificate_kind FROM skill_certificates"):
        out.setdefault(r["skill"], set()).add(r["certificate_kind"])
    return {k: frozenset(v) for k, v in out.items()}


async def availability(db: Conn, worker_id: int) -> tuple[Window, ...]:
    """A worker's weekly windows."""
    rows = await db.fetch(
        "SELECT weekday, start_min, end_min FROM worker_availability "
        "WHERE worker_id = $1 ORDER BY weekday, start_min",
        worker_id,
    )
    return tuple(Window(**dict(r)) for r in rows)


async def replace_availability(db: Tx, worker_id: int, windows: tuple[Window, ...]) -> None:
    """Replace the weekly windows (call inside a transaction)."""
    await db.execute("DELETE FROM worker_availability WHERE worker_id = $1", worker_id)
    await db.executemany(
        "INSERT INTO worker_availability (worker_id, weekday, start_min, end_min) VALUES ($1,$2,$3,$4)",
        [(worker_id, w.weekday, w.start_min, w.end_min) for w in windows],
    )


async def exceptions(db: Conn, worker_id: int) -> tuple[DayException, ...]:
    """A worker's dated exceptions."""
    rows = await db.fetch(
        "SELECT on_date, available, start_min, end_min, reason FROM "
        "worker_availability_exceptions WHERE worker_id = $1 ORDER BY on_date",
        worker_id,
    )
    return tuple(DayException(**dict(r)) for r in rows)


async def put_exception(db: Conn, worker_id: int, exc: DayException) -> None:
    """Set the exception for one date."""
    await db.execute(
        "INSERT INTO worker_availability_exceptions (worker_id, on_date, available, start_min, end_min, "
        "reason) VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (worker_id, on_date) DO UPDATE SET "
        "available = EXCLUDED.available, start_min = EXCLUDED.start_min, end_min = EXCLUDED.end_min, "
        "reason = EXCLUDED.reason",
        worker_id,
        exc.on_date,
        exc.available,
        exc.start_min,
        exc.end_min,
        exc.reason,
    )


async def delete_exception(db: Conn, worker_id: int, on_date: date) -> bool:
    """Remove the exception for one date."""
    status = await db.execute(
        "DELETE FROM worker_availability_exceptions WHERE worker_id = $1 AND on_date = $2",
        worker_id,
        on_date,
    )
    return status.endswith(" 1")


_TEAM = (
    "t.id, t.name, t.city_id, t.merchant_id, "
    "(SELECT count(*) FROM workers w WHERE w.team_id = t.id)::int AS members"
)


async def insert_team(db: Conn, *, name: str, city_id: str, merchant_id: int, upsert: bool) -> int:
    """Create a team and return its id; with ``upsert`` (seeding) an existing name is reused."""
    conflict = (
        "ON CONFLICT (city_id, name) DO UPDATE SET merchant_id = EXCLUDED.merchant_id"
        if upsert
        else ""
    )
    try:
        team_id = await db.fetchval(
            f"INSERT INTO teams (name, city_id, merchant_id) VALUES ($1,$2,$3) {conflict} RETURNING id",
            name,
            city_id,
            merchant_id,
        )
    except asyncpg.UniqueViolationError:
        raise DuplicateTeam(f"{city_id} has a team named {name!r} already", field="name") from None
    assert isinstance(team_id, int)
    return team_id


async def team(db: Conn, team_id: int) -> Team | None:
    """One team with its member count."""
    row = await db.fetchrow(f"SELECT {_TEAM} FROM teams t WHERE t.id = $1", team_id)
    return Team(**dict(row)) if row else None


async def teams(db: Conn, *, merchant_id: int | None) -> list[Team]:
    """Teams, or only one merchant's."""
    rows = await db.fetch(
        f"SELECT {_TEAM} FROM teams t WHERE ($1::bigint IS NULL OR t.merchant_id = $1) "
        "ORDER BY t.id",
        merchant_id,
    )
    return [Team(**dict(r)) for r in rows]


async def team_ids_of_merchant(db: Conn, merchant_id: int) -> list[int]:
    """The ids of the teams a merchant manages."""
    return [
        r["id"] for r in await db.fetch("SELECT id FROM teams WHERE merchant_id = $1", merchant_id)
    ]
