"""From the stores to the matcher's plain data: jobs from orders, candidates from workers.

One place builds :class:`matching.model.Candidate` from PostgreSQL (skills, verified
certificates, availability, rating, today's jobs and earnings, team, past customers) and
Redis (position, fix age), and their next planned scheduled job from the day plans (an
instant job must not make them late for it), so that the engine and a dispatcher's manual assignment are
judged by the same rules (``matching.feasibility.why_not``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from catalog import store as catalog_store
from dispatch import offers, plan_store
from dispatch.models import Order
from dispatch.worker_rows import WorkerRows, read_profiles
from doorstep.stores import Stores
from matching.feasibility import why_not
from matching.model import Candidate, Chain, Commitment, Job
from matching.params import MatchParams
from tracking import positions
from workforce import store as workforce_store
from workforce.gating import certificates_needed, why_unqualified

INSTANT_SLA_S = 2 * 3600


def job_from_order(
    order: Order,
    *,
    required_skills: Iterable[str],
    required_certificates: Iterable[str],
    excluded: frozenset[int],
    now: datetime,
    params: MatchParams,
) -> Job:
    """The matcher's view of an order."""
    if order.window_start is not None and order.window_end is not None:
        earliest, latest = int(order.window_start.timestamp()), int(order.window_end.timestamp())
    else:
        earliest = int(now.timestamp())
        latest = earliest + params.instant_sla_s
    return Job(
        order_id=order.id,
        lat=order.lat,
        lng=order.lng,
        created_s=int(order.created_at.timestamp()),
        required_skills=frozenset(required_skills),
        required_certificates=frozenset(required_certificates),
        earliest_start_s=earliest,
        latest_start_s=latest,
        duration_s=order.duration_min * 60,
        customer_id=order.customer_id,
        preferred_team_id=None,
        pinned_worker_id=None,
        excluded_worker_ids=excluded,
        price_minor=order.price_minor,
    )


async def load_candidates(
    stores: Stores,
    city_id: str,
    positions: Mapping[int, tuple[float, float]],
    *,
    now: datetime,
    customer_ids: Iterable[int] = (),
    days: int = 2,
    chains: Mapping[int, Chain] | None = None,
    rows: WorkerRows | None = None,
) -> dict[int, Candidate]:
    """Candidates for the given workers (worker id → (lat, lng)) as of ``now``.

    ``chains``: workers on a job ending soon (docs/dispatch.md#chained-orders), at its
    address (their position here): ``busy``, with the job's end.

    ``rows``: the engine's copy of the workers' profiles (skills, exams, certificates,
    availability, discipline: :class:`dispatch.worker_rows.WorkerRows`), kept between
    ticks and re-read only for workers written since; without it they are read here.
    Either way each candidate is built from the same :class:`~dispatch.worker_rows.Profile`
    by the same loop. Today's jobs and earnings, the customers served, the day plans and
    the fix ages are read on every call.

    Free intervals are computed once per distinct weekly pattern and exceptions, not
    once per worker: a tick of 500 orders × 100k workers loads ~11k workers, and
    ``_intervals`` per worker (~9 µs each, with a ``Window`` per availability row) made
    this call 537 ms of client CPU against 202 with this alone, 143 with the rows
    unpacked (benchmarks/load_candidates.py, benchmarks/README.md)."""
    chains = chains or {}
    ids = list(positions)
    if not ids:
        return {}
    city = await catalog_store.city(stores.pool, city_id)
    zone = ZoneInfo(city.timezone if city else "Asia/Shanghai")
    today = now.astimezone(zone).date()
    day_list = [today + timedelta(days=i) for i in range(days)]
    start_of_day = datetime(today.year, today.month, today.day, tzinfo=zone)
    pool = stores.pool
    if rows is not None:
        profiles = await rows.profiles(stores, ids, day_list, zone)
    else:
        profiles = await read_profiles(pool, ids, day_list, zone)
    today_jobs = await pool.fetch(
        "SELECT worker_id, count(*) AS jobs, coalesce(sum(price_minor), 0) AS earned FROM orders "
        "WHERE worker_id = ANY($1) AND created_at >= $2 AND status NOT IN ('cancelled', 'failed') "
        "GROUP BY worker_id",
        ids,
        start_of_day,
    )
    served = await pool.fetch(
        "SELECT DISTINCT worker_id, customer_id FROM orders WHERE worker_id = ANY($1) "
        "AND customer_id = ANY($2) AND status = 'completed'",
        ids,
        list(set(customer_ids)),
    )
    # yesterday's plan too: an overnight job of it may still be ahead
    planned = await plan_store.next_stops(
        pool, city_id, [today - timedelta(days=1), *day_list], ids
    )
    seen = await stores.redis.zmscore(stores.keys.presence(city_id), [str(i) for i in ids])
    now_ms = now.timestamp() * 1000
    jobs_map = {r["worker_id"]: (int(r["jobs"]), int(r["earned"])) for r in today_jobs}
    served_map: dict[int, set[int]] = {}
    for r in served:
        served_map.setdefault(r["worker_id"], set()).add(r["customer_id"])
    no_customers: frozenset[int] = frozenset()
    out = {}
    # A fix that lands while a tick runs is newer than the tick's ``now``: age 0, not < 0.
    for w, s in zip(ids, seen, strict=True):
        p = profiles.get(w)
        if p is None:  # no profile
            continue
        lat, lng = positions[w]
        jobs, earned = jobs_map.get(w, (0, 0))
        stop = planned.get(w)
        # (most workers have no discipline: no call for them, ~5 ms a tick at 11k)
        blocked, priority = (p.blocked(now), p.priority(now)) if p.actions else (False, False)
        out[w] = Candidate(
            worker_id=w,
            lat=lat,
            lng=lng,
            fix_age_s=max(0.0, (now_ms - s) / 1000) if s is not None else float("inf"),
            skills=p.skills,
            certificates=p.certificates,
            rating_sum=p.rating_sum,
            rating_count=p.rating_count,
            jobs_today=jobs,
            earnings_today_minor=earned,
            available=p.available,
            team_id=p.team_id,
            served_customer_ids=frozenset(served_map[w]) if w in served_map else no_customers,
            untrained=p.untrained,
            # suspended or dismissed (quality/): "not available: unavailable" to the matcher
            state="unavailable" if blocked else "busy" if w in chains else "available",
            commitment=None if stop is None else _commitment(stop),
            priority=priority,
            chain=chains.get(w),
        )
    return out


def _commitment(stop: tuple[int, float, float, datetime] | None) -> Commitment | None:
    if stop is None:
        return None
    order_id, lat, lng, latest = stop
    return Commitment(order_id, float(lat), float(lng), int(latest.timestamp()))


async def order_job(stores: Stores, order: Order, *, now: datetime, params: MatchParams) -> Job:
    """The matcher's job for an order, with its service's requirements and exclusions."""
    service = await catalog_store.service(stores.pool, order.service_code)
    skills = service.required_skills if service else ()
    rules = await workforce_store.skill_certificate_rules(stores.pool)
    return job_from_order(
        order,
        required_skills=skills,
        # the service's own, and those its skills need (workforce.gating)
        required_certificates=set(service.required_certificates if service else ())
        | certificates_needed(skills, rules),
        excluded=await offers.excluded(stores.pool, order.id, now),
        now=now,
        params=params,
    )


async def order_jobs(
    stores: Stores, orders: Sequence[Order], *, now: datetime, params: MatchParams
) -> list[Job]:
    """:func:`order_job` for a tick's orders: each service read once, the certificate
    rules once and every order's exclusions in one query (per order, three queries each:
    1,500 round trips for a tick of 500 orders)."""
    if not orders:
        return []
    services = {
        code: await catalog_store.service(stores.pool, code)
        for code in sorted({o.service_code for o in orders})
    }
    rules = await workforce_store.skill_certificate_rules(stores.pool)
    excluded = await offers.excluded_many(stores.pool, [o.id for o in orders], now)
    jobs = []
    for order in orders:
        service = services[order.service_code]
        skills = service.required_skills if service else ()
        jobs.append(
            job_from_order(
                order,
                required_skills=skills,
                required_certificates=set(service.required_certificates if service else ())
                | certificates_needed(skills, rules),
                excluded=excluded.get(order.id, frozenset()),
                now=now,
                params=params,
            )
        )
    return jobs


async def assignment_warnings(
    stores: Stores, order: Order, worker_id: int, now: datetime, params: MatchParams
) -> list[str]:
    """Why the matcher, with the server's ``[matching]`` params, would not pick this worker
    for this order (empty: it would)."""
    at = await positions.read_position(stores.redis, stores.keys, order.city_id, worker_id)
    position = (at.lat, at.lng) if at is not None else (order.lat, order.lng)
    candidates = await load_candidates(
        stores, order.city_id, {worker_id: position}, now=now, customer_ids=[order.customer_id]
    )
    warnings = []
    if worker_id not in candidates:
        return [f"worker {worker_id} has no profile"]
    if at is None:
        warnings.append("no known position: the worker is offline")
    job = await order_job(stores, order, now=now, params=params)
    reason = why_not(job, candidates[worker_id], int(now.timestamp()), params)
    if reason is not None:
        warnings.append(reason)
    return warnings


async def unqualified(
    stores: Stores, order: Order, worker_ids: Iterable[int], *, now: datetime
) -> dict[int, str]:
    """Of ``worker_ids``, those who may not serve ``order`` (skills, exams, certificates
    through the job's last local day), with the reason (``workforce.gating``)."""
    ids = list(dict.fromkeys(worker_ids))
    if not ids:
        return {}
    service = await catalog_store.service(stores.pool, order.service_code)
    city = await catalog_store.city(stores.pool, order.city_id)
    zone = ZoneInfo(city.timezone if city else "Asia/Shanghai")
    start = order.window_end or now + timedelta(seconds=INSTANT_SLA_S)
    last_day = (
        (start + timedelta(minutes=order.duration_min) - timedelta(seconds=1))
        .astimezone(zone)
        .date()
    )
    quals = await workforce_store.qualifications(stores.pool, ids)
    rules = await workforce_store.skill_certificate_rules(stores.pool)
    out = {}
    for w in ids:
        q = quals.get(w)
        if q is None:
            out[w] = f"worker {w} has no profile"
            continue
        reason = why_unqualified(
            q,
            service.required_skills if service else (),
            service.required_certificates if service else (),
            rules,
            last_day,
        )
        if reason is not None:
            out[w] = reason
    return out


def utc(ts: float) -> datetime:
    """An epoch time as an aware datetime."""
    return datetime.fromtimestamp(ts, UTC)
