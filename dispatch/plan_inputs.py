"""Reading a city's day from the stores into :class:`dispatch.dayplan.DayInputs`.

PostgreSQL: the city's active workers (the skills they may be dispatched for —
``workforce.gating``: exam passed, the skill's certificates valid that day, not
suspended — home, certificates valid that day,
availability that date), the scheduled orders whose window starts that local date
(and, for today, every job a worker of the city holds), exclusions, the series'
preferred workers, merchants' orders and teams, and the newest stored plan. Redis
(for a day under way: today, or yesterday after midnight): live positions. A job a
worker holds is *started* on a day under way — so a re-plan of yesterday after midnight
keeps an overnight job in progress first on its worker's route, and one in service keeps
the time it started (:func:`started_day`).

A worker's window that runs to 24:00 goes on into the next date's window from 00:00 (an
overnight shift, ``dayplan.overnight``) as far as the day's jobs may run past midnight;
the neighbouring days' stored plans say when such a worker is free after the previous
day's overnight job, and where they must be for the next day's first stop
(:func:`neighbours`).

A crew order (docs/dispatch.md#crews) is read as one job per member: its crew's when it
is held (each member's time is taken), else the members the stored plan reserved for it
at booking, each held to the crew's common start (the latest of their planned starts).
A crew order neither held nor in the stored plan is left to the engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from catalog import store as catalog_store
from catalog.errors import CatalogNotFound
from dispatch import plan_store
from dispatch.dayplan import DayInputs, DayJob, Edge, WorkerDay, overnight, required_skills
from dispatch.plan_store import StoredPlan
from doorstep.db import Conn
from doorstep.stores import Stores
from merchants import rules as merchant_rules
from tracking import positions
from workforce import store as workforce_store
from workforce.models import DayException, Window
from workforce.schedule import windows_on

OPEN = ("awaiting_payment", "confirmed", "dispatching", "offered")  # a slot waits for its payment
HELD = ("assigned", "en_route", "arrived", "in_service")


async def zone_of(db: Conn, city_id: str) -> ZoneInfo:
    """The city's time zone (an unknown city is a 404-style error naming ``city_id``)."""
    city = await catalog_store.city(db, city_id)
    if city is None:
        raise CatalogNotFound(f"no city {city_id!r}", field="city_id")
    return ZoneInfo(city.timezone)


def midnight(day: date, zone: ZoneInfo) -> datetime:
    """Local midnight of ``day``: the plan's epoch."""
    return datetime(day.year, day.month, day.day, tzinfo=zone)


async def load(
    stores: Stores,
    db: Conn,
    city_id: str,
    day: date,
    *,
    now: datetime,
    zone: ZoneInfo,
    live_max_age_s: float,
    leave_out: int | None = None,
    merchant_overflow_s: int = 300,
    until: datetime | None = None,
) -> tuple[DayInputs, StoredPlan | None]:
    """The city's day as of ``now`` (``leave_out``: an order being booked right now, which
    may run ``until`` then), and the newest stored plan it was read with. A merchant's
    order is for its staff; it is ``overflow_due`` once routed ``merchant_overflow_s`` ago
    (``[engine]``)."""
    start = midnight(day, zone)
    epoch = int(start.timestamp())
    day_s = int(midnight(day + timedelta(days=1), zone).timestamp()) - epoch
    next_day = day + timedelta(days=1)
    today = now.astimezone(zone).date() == day
    # today, or yesterday after midnight: a job of the day that a worker holds is started
    under_way_day = started_day(day, now, zone)
    # The plan first: a booking that lands after this read bumps the version, so a plan
    # computed from these inputs is refused as stale when stored.
    previous = await plan_store.latest(db, city_id, day)
    version = previous.version if previous else 0
    routes = (
        {r.worker_id: tuple(s.order_id for s in r.stops) for r in previous.routes}
        if previous
        else {}
    )
    reserved: dict[int, dict[int, int]] = {}  # crew order → member → planned start (epoch s)
    for r in previous.routes if previous else []:
        for stop in r.stops:
            reserved.setdefault(stop.order_id, {})[r.worker_id] = int(stop.start_at.timestamp())
    workers = await db.fetch(
        "SELECT w.user_id, w.skills, w.home_lat, w.home_lng, w.exams_required, t.merchant_id, "
        "coalesce((SELECT array_agg(q.skill) FROM skill_qualifications q "
        "WHERE q.user_id = w.user_id), '{}') AS passed FROM workers w JOIN users u "
        "ON u.id = w.user_id LEFT JOIN teams t ON t.id = w.team_id "
        "WHERE w.city_id = $1 AND u.status = 'active' ORDER BY w.user_id",
        city_id,
    )
    ids = [r["user_id"] for r in workers]
    # workforce.gating: a skill counts once its exam is passed and its certificates are
    # valid that day; a suspended or dismissed worker has none.
    skill_rules = await workforce_store.skill_certificate_rules(db)
    blocked = await workforce_store.discipline_blocks(db, ids, now)
    certs = await db.fetch(
        "SELECT worker_id, kind FROM worker_certificates WHERE worker_id = ANY($1) "
        "AND status = 'verified' AND issued_on <= $2 AND expires_on >= $2",
        ids,
        day,
    )
    weekly = await db.fetch(
        "SELECT worker_id, weekday, start_min, end_min FROM worker_availability "
        "WHERE worker_id = ANY($1) AND weekday = ANY($2::smallint[])",
        ids,
        [day.weekday(), next_day.weekday()],
    )
    exceptions = await db.fetch(
        "SELECT worker_id, on_date, available, start_min, end_min, reason FROM "
        "worker_availability_exceptions WHERE worker_id = ANY($1) AND on_date = ANY($2)",
        ids,
        [day, next_day],
    )
    cert_map: dict[int, set[str]] = {}
    for r in certs:
        cert_map.setdefault(r["worker_id"], set()).add(f"cert:{r['kind']}")
    weekly_map: dict[int, list[Window]] = {}
    for r in weekly:
        weekly_map.setdefault(r["worker_id"], []).append(
            Window(r["weekday"], r["start_min"], r["end_min"])
        )
    exc_map: dict[int, list[DayException]] = {}
    for r in exceptions:
        exc_map.setdefault(r["worker_id"], []).append(
            DayException(r["on_date"], r["available"], r["start_min"], r["end_min"], r["reason"])
        )
    live = await _live_positions(stores, city_id, ids, now, live_max_age_s) if under_way_day else {}
    orders = await db.fetch(
        "SELECT o.id, o.kind, o.status, o.lat, o.lng, o.duration_min, o.window_start, "
        "o.window_end, o.worker_id, o.pinned, s.required_skills, s.required_certificates, "
        "b.preferred_worker_id, o.merchant_id, coalesce(o.merchant_routed_at, o.created_at) "
        "AS routed_at, (SELECT max(e.at) FROM order_events e WHERE e.order_id = o.id "
        "AND e.action = 'start') AS started_at, o.crew_size, (SELECT array_agg(c.worker_id "
        "ORDER BY c.seat) FROM order_crew c WHERE c.order_id = o.id AND c.released_at IS NULL) "
        "AS crew "
        "FROM orders o JOIN services s ON s.code = o.service_code "
        "LEFT JOIN booking_series b ON b.id = o.series_id "
        "WHERE o.city_id = $1 AND o.id <> $5 AND ("
        "(o.kind = 'scheduled' AND o.window_start >= $2 AND o.window_start < $3 "
        "AND o.status = ANY($4::text[]) AND (o.crew_size = 1 OR o.worker_id IS NOT NULL "
        "OR o.id = ANY($8::bigint[]))) OR ($6 AND o.status = ANY($7::text[]))) ORDER BY o.id",
        city_id,
        start,
        midnight(day + timedelta(days=1), zone),
        [*OPEN, *HELD],
        leave_out or 0,
        today,
        list(HELD),
        list(reserved),
    )
    excluded: dict[int, set[int]] = {}
    for r in await db.fetch(
        "SELECT order_id, worker_id FROM order_exclusions WHERE order_id = ANY($1) "
        "AND (until IS NULL OR until > $2)",  # a decline's cooldown ends (dispatch/offers.py)
        [o["id"] for o in orders],
        now,
    ):
        excluded.setdefault(r["order_id"], set()).add(r["worker_id"])
    now_s = int(now.timestamp()) - epoch
    jobs = []
    under_way: set[int] = set()  # workers whose job under way is already placed first
    for o in orders:
        held = o["status"] in HELD and o["worker_id"] is not None
        if o["crew_size"] > 1:
            jobs += _crew_jobs(o, held, under_way_day, now_s, epoch, under_way, reserved)
            continue
        started = held and under_way_day and o["worker_id"] not in under_way
        if started:
            under_way.add(o["worker_id"])
        service_s = o["duration_min"] * 60
        if o["window_start"] is not None:
            window = (
                int(o["window_start"].timestamp()) - epoch,
                int(o["window_end"].timestamp()) - epoch,
            )
        else:
            window = (now_s, now_s)
        if started and o["status"] != "assigned":
            window = (now_s, now_s)  # on the way or there: no waiting for the window
        if started and o["status"] == "in_service" and o["started_at"] is not None:
            at = int(o["started_at"].timestamp()) - epoch  # it started then: ends then + duration
            window = (at, at)
        fixed = o["worker_id"] if held or (o["pinned"] and o["worker_id"]) else None
        jobs.append(
            DayJob(
                order_id=o["id"],
                lat=o["lat"],
                lng=o["lng"],
                service_s=service_s,
                window=window,
                skills=required_skills(o["required_skills"], o["required_certificates"]),
                worker_id=fixed,
                started=started,
                excluded=frozenset(excluded.get(o["id"], ())),
                prefer_worker_id=o["preferred_worker_id"],
                merchant_id=o["merchant_id"],
                overflow_due=o["merchant_id"] is not None
                and merchant_rules.overflow_due(o["routed_at"], now, merchant_overflow_s),
            )
        )
    at_job = {j.worker_id: (j.lat, j.lng) for j in jobs if j.started and j.worker_id}
    # how far past midnight the day's jobs (and the booking being considered) may run
    until_s = max(
        [day_s, *(j.window[1] + j.service_s for j in jobs if not j.started)]
        + ([int(until.timestamp()) - epoch] if until is not None else [])
    )
    windows_of: dict[int, tuple[tuple[int, int], ...]] = {}
    for r in workers:
        w = r["user_id"]
        weekly_w, exc_w = weekly_map.get(w, []), exc_map.get(w, [])
        windows_of[w] = overnight(
            [(a * 60, b * 60) for a, b in windows_on(day, weekly_w, exc_w)],
            [(a * 60, b * 60) for a, b in windows_on(next_day, weekly_w, exc_w)],
            day_s,
            until_s,
        )
    edges = await neighbours(db, city_id, day, zone, overnight_ends(windows_of, day_s))
    days = []
    for r in workers:
        w = r["user_id"]
        windows = windows_of[w]
        free, after = edges.get(w, (None, None))
        valid_certs = cert_map.get(w, set())
        skills = {
            s
            for s in r["skills"]
            if (not r["exams_required"] or s in r["passed"])
            and all(f"cert:{k}" in valid_certs for k in skill_rules.get(s, ()))
        }
        days.append(
            WorkerDay(
                worker_id=w,
                skills=frozenset() if w in blocked else frozenset(skills) | frozenset(valid_certs),
                windows=windows,
                start=live.get(w)
                or at_job.get(w)
                or (free[1] if free else (r["home_lat"], r["home_lng"])),
                merchant_id=r["merchant_id"],
                free_from_s=free[0] if free else None,
                next_stop=after,
            )
        )
    inputs = DayInputs(
        city_id, day, epoch, now_s, tuple(days), tuple(jobs), routes, version, day_s, edges
    )
    return inputs, previous


def started_day(day: date, now: datetime, zone: ZoneInfo) -> bool:
    """Whether ``day``'s plan is under way at ``now``: today, or yesterday (whose
    overnight jobs go on after midnight). There a job a worker holds is *started*, and
    workers heard from lately are planned from where they are."""
    return now.astimezone(zone).date() in (day, day + timedelta(days=1))


def overnight_ends(windows: Mapping[int, Sequence[tuple[int, int]]], day_s: int) -> dict[int, int]:
    """Worker → the end of their shift, for those whose shift runs past midnight."""
    return {w: ws[-1][1] for w, ws in windows.items() if ws and ws[-1][1] > day_s}


async def neighbours(
    db: Conn, city_id: str, day: date, zone: ZoneInfo, ends: Mapping[int, int]
) -> dict[int, tuple[Edge | None, Edge | None]]:
    """What the neighbouring days' stored plans promise of each worker, per worker:
    (when and where the previous day's plan frees them after midnight — the end of their
    last job there that ends after it; the next day's first stop they must reach before
    their shift here ends at ``ends[worker]``, and when). Seconds since ``day``'s local
    midnight. Only open or held orders count. Two queries; a worker with neither is left
    out, so two reads agree exactly when nothing that binds this day changed."""
    epoch = midnight(day, zone)
    base = int(epoch.timestamp())
    latest = (
        "WITH latest AS (SELECT id FROM day_plans WHERE city_id = $1 AND plan_date = $2 "
        "ORDER BY version DESC LIMIT 1) SELECT s.worker_id, s.arrival_at, s.departure_at, "
        "o.lat, o.lng FROM latest l JOIN day_plan_stops s ON s.plan_id = l.id "
        "JOIN orders o ON o.id = s.order_id WHERE o.status = ANY($3::text[]) "
    )
    live = [*OPEN, *HELD]
    free: dict[int, Edge] = {}
    for r in await db.fetch(
        latest + "AND s.departure_at > $4 ORDER BY s.departure_at, s.worker_id",
        city_id,
        day - timedelta(days=1),
        live,
        epoch,
    ):
        free[r["worker_id"]] = (int(r["departure_at"].timestamp()) - base, (r["lat"], r["lng"]))
    after: dict[int, Edge] = {}
    if ends:
        for r in await db.fetch(
            latest + "AND s.worker_id = ANY($4) AND s.arrival_at < $5 "
            "ORDER BY s.arrival_at DESC, s.worker_id",
            city_id,
            day + timedelta(days=1),
            live,
            list(ends),
            epoch + timedelta(seconds=max(ends.values())),
        ):
            at = int(r["arrival_at"].timestamp()) - base
            if at < ends[r["worker_id"]]:
                after[r["worker_id"]] = (at, (r["lat"], r["lng"]))
    return {w: (free.get(w), after.get(w)) for w in sorted(free.keys() | after.keys())}


def _crew_jobs(
    o: Any,
    held: bool,
    under_way_day: bool,
    now_s: int,
    epoch: int,
    under_way: set[int],
    reserved: dict[int, dict[int, int]],
) -> list[DayJob]:
    """A crew order's jobs, one per member, each fixed to them (see the module doc)."""
    skills = required_skills(o["required_skills"], o["required_certificates"])
    assert o["window_start"] is not None or held
    window = (
        (int(o["window_start"].timestamp()) - epoch, int(o["window_end"].timestamp()) - epoch)
        if o["window_start"] is not None
        else (now_s, now_s)
    )
    out = []
    if held:
        for member in o["crew"] or [o["worker_id"]]:
            started = under_way_day and member not in under_way
            if started:
                under_way.add(member)
            at = window
            if started and o["status"] != "assigned":
                at = (now_s, now_s)  # on the way or there: no waiting for the window
            if started and o["status"] == "in_service" and o["started_at"] is not None:
                s = int(o["started_at"].timestamp()) - epoch
                at = (s, s)
            out.append(
                DayJob(
                    o["id"],
                    o["lat"],
                    o["lng"],
                    o["duration_min"] * 60,
                    at,
                    skills,
                    worker_id=member,
                    started=started,
                    member=member,
                )
            )
        return out
    members = reserved.get(o["id"], {})
    if not members:
        return []
    start = max(members.values()) - epoch  # the crew starts together, when the last is there
    start = min(max(start, window[0]), window[1])
    return [
        DayJob(
            o["id"],
            o["lat"],
            o["lng"],
            o["duration_min"] * 60,
            (start, start),
            skills,
            worker_id=member,
            member=member,
        )
        for member in sorted(members)
    ]


async def _live_positions(
    stores: Stores, city_id: str, ids: list[int], now: datetime, max_age_s: float
) -> dict[int, tuple[float, float]]:
    """Workers' last positions, for those heard from within ``max_age_s``."""
    if not ids:
        return {}
    keys = stores.keys
    seen = await stores.redis.zmscore(keys.presence(city_id), [str(i) for i in ids])
    fresh = [
        w
        for w, s in zip(ids, seen, strict=True)
        if s is not None and now.timestamp() * 1000 - s <= max_age_s * 1000
    ]
    live = await positions.read_many(stores.redis, keys, city_id, fresh)
    return {
        w: (state.position.lat, state.position.lng)
        for w, state in live.items()
        if state.position is not None
    }
