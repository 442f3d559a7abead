"""One simulated run against a running server, from accounts to KPIs.

1. Log in as an admin; read the city's service area (``GET /v1/cities/{id}``); check the
   scenario's services exist and need no skill or certificate the simulated workers lack.
2. Draw the seeded plan (:mod:`simulations.demand`).
3. Create the workers (``POST /v1/workers``, around-the-clock availability, the
   scenario's certificates registered and verified by the admin) and register
   the customers (``POST /v1/auth/register``); accounts from an earlier run of the same
   scenario on the same server are logged in and reused.
4. Run: workers work their shifts, customers book on schedule; a progress line on
   stderr; ``/metrics`` and the agents' states sampled every 5 s.
5. After ``duration_min`` no more bookings; wait up to ``drain_min`` for open orders.
6. Read what happened from the server (each order, its events, the engine's decisions)
   and compute the KPIs (:mod:`simulations.kpi`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import sys
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import numpy as np

from geo.areas import ServiceArea, parse_service_area
from geo.roadgraph import RoadGraph, graph_for_bbox, load_futian_graph
from simulations import kpi
from simulations.agents import CustomerAgent, OrderWatch, WorkerAgent, World
from simulations.client import Api, ApiError, Session, buckets, metric, parse_metrics
from simulations.demand import Plan, Sites, WorkerPlan, plan
from simulations.motion import Router
from simulations.scenario import Scenario

log = logging.getLogger("simulations")
PASSWORD = "sim-password-2026"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
SAMPLE_S = 5.0
T = TypeVar("T")


class SetupError(Exception):
    """The server cannot run this scenario (missing city, service or admin)."""


@dataclass
class RunResult:
    """Everything a report needs about one run."""

    scenario: Scenario
    label: str
    meta: dict[str, Any]
    kpis: dict[str, Any]
    series: dict[str, list[float]]
    orders: list[kpi.OrderOutcome]
    workers: list[kpi.WorkerOutcome]
    lags_ms: list[float] = field(default_factory=list)
    acks_ms: list[float] = field(default_factory=list)


def phone(kind: int, scenario: Scenario, i: int) -> str:
    """A mainland mobile number for simulated account ``i`` (prefix 17x: never seeded)."""
    code = zlib.crc32(f"{scenario.name}/{scenario.seed}".encode()) % 100
    return f"17{kind}{code:02d}{i:06d}"


def name(i: int) -> str:
    """A plausible Chinese name (deterministic)."""
    return (
        SURNAMES[i % len(SURNAMES)] + GIVEN[(i * 7) % len(GIVEN)] + GIVEN[(i * 13 + 3) % len(GIVEN)]
    )


async def bounded(items: Iterable[Awaitable[T]], limit: int) -> list[T]:
    """Await the items, at most ``limit`` at a time, results in order. If one fails, the
    rest are cancelled (those not started yet are closed, never left un-awaited) and its
    error is raised."""
    sem = asyncio.Semaphore(limit)

    async def one(a: Awaitable[T]) -> T:
        try:
            async with sem:
                return await a
        finally:
            if asyncio.iscoroutine(a):
                a.close()  # a no-op once it ran; a cancelled one waiting its turn never starts

    tasks = [asyncio.ensure_future(one(a)) for a in items]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def city_sites(api: Api, city_id: str) -> Sites:
    """Road-graph nodes inside the city's service area (from the public city record)."""
    try:
        city = await api.call("GET", f"/v1/cities/{city_id}")
    except ApiError as e:
        raise SetupError(
            f"city {city_id!r}: {e.status}; run `doorstep seed` on the server, or set `city`"
        ) from None
    area = parse_service_area(city["service_area"])
    g = city_graph(area)
    inside = np.array(
        [area.contains(float(a), float(b)) for a, b in zip(g.lat, g.lng, strict=True)]
    )
    if inside.sum() < 10:
        raise SetupError(f"city {city_id!r} does not cover a bundled road graph")
    return Sites(np.asarray(g.lat)[inside], np.asarray(g.lng)[inside])


def city_graph(area: ServiceArea) -> RoadGraph:
    """The bundled road graph under a service area (the server's rule, ``graph_for_bbox``);
    Shenzhen's when none lies under it."""
    box = area.bbox
    graph = graph_for_bbox((box.min_lat, box.min_lng, box.max_lat, box.max_lng))
    return graph if graph is not None else load_futian_graph()


async def check_services(api: Api, scenario: Scenario) -> dict[str, dict[str, Any]]:
    """The scenario's services, checked against what the simulated workers hold."""
    out = {}
    skills, held = set(scenario.workers.skills), set(scenario.workers.certificates)
    for mix in scenario.demand.services:
        try:
            s = await api.call("GET", f"/v1/services/{mix.code}")
        except ApiError:
            raise SetupError(f"service {mix.code!r} does not exist on the server") from None
        missing = set(s["required_skills"]) - skills
        lacking = set(s["required_certificates"]) - held
        if missing or lacking:
            raise SetupError(
                f"service {mix.code!r} needs skills {sorted(missing)} / certificates "
                f"{sorted(lacking)} the simulated workers do not have"
            )
        if not s["instant"] and not mix.always_scheduled:
            raise SetupError(
                f"service {mix.code!r} is booked for a window only: mark it always_scheduled"
            )
        out[mix.code] = s
    return out


async def worker_account(
    api: Api, admin: Session, scenario: Scenario, p: WorkerPlan, kind: int = 1
) -> tuple[Session, int]:
    """Create (or reuse) a worker in the scenario's city, available around the clock."""
    number = phone(kind, scenario, p.index)
    body = {
        "phone": number,
        "password": PASSWORD,
        "name": name(p.index),
        "city_id": scenario.city,
        "skills": list(scenario.workers.skills),
        "home": {"lat": p.start_lat, "lng": p.start_lng},
    }
    try:
        worker = await api.call("POST", "/v1/workers", session=admin, json=body)
        worker_id = int(worker["user_id"])
    except ApiError as e:
        if e.code != "phone_taken":
            raise
        worker_id = 0
    session = await api.login(number, PASSWORD)
    worker_id = worker_id or session.user_id
    if not worker_id or "worker" not in session.roles:
        raise SetupError(f"{number} exists but is not a worker")
    await api.call(
        "PATCH",
        f"/v1/workers/{worker_id}",
        session=admin,
        json={"city_id": scenario.city, "skills": list(scenario.workers.skills)},
    )
    await api.call(
        "PUT",
        f"/v1/workers/{worker_id}/availability",
        session=admin,
        json={"windows": [{"weekday": d, "start_min": 0, "end_min": 1440} for d in range(7)]},
    )
    if scenario.workers.certificates:
        await _certify(api, admin, worker_id, scenario.workers.certificates, number)
    return session, worker_id


async def _certify(
    api: Api, admin: Session, worker_id: int, kinds: Iterable[str], number: str
) -> None:
    """Register each certificate kind the worker lacks, and verify it (as the admin)."""
    worker = await api.call("GET", f"/v1/workers/{worker_id}", session=admin)
    held = {c["kind"] for c in worker["certificates"] if c["status"] == "verified"}
    today = datetime.now().date()
    for kind in kinds:
        if kind in held:
            continue
        cert = await api.call(
            "POST",
            f"/v1/workers/{worker_id}/certificates",
            session=admin,
            json={
                "kind": kind,
                "number": f"SIM-{kind}-{number}",
                "issued_on": (today - timedelta(days=365)).isoformat(),
                "expires_on": (today + timedelta(days=4 * 365)).isoformat(),
            },
        )
        await api.call(
            "PUT",
            f"/v1/workers/{worker_id}/certificates/{cert['id']}/status",
            session=admin,
            json={"status": "verified"},
        )


async def customer_account(api: Api, scenario: Scenario, i: int, kind: int = 2) -> Session:
    """Register (or log in) customer ``i``."""
    number = phone(kind, scenario, i)
    try:
        await api.call(
            "POST",
            "/v1/auth/register",
            json={"phone": number, "password": PASSWORD, "name": name(i + 5000)},
        )
    except ApiError as e:
        if e.code != "phone_taken":
            raise
    return await api.login(number, PASSWORD)


class Progress:
    """A progress line on stderr: a bar while it is a terminal, a line every 30 s if not."""

    def __init__(self, label: str, total_s: float, enabled: bool = True) -> None:
        self.label, self.total_s, self.enabled = label, total_s, enabled
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def show(self, t: float, text: str, *, final: bool = False) -> None:
        """Update the line (``t``: seconds into the run)."""
        if not self.enabled:
            return
        if not self.tty and not final and time.monotonic() - self.last < 30:
            return
        self.last = time.monotonic()
        done = min(1.0, t / self.total_s) if self.total_s > 0 else 1.0
        width = 24
        bar = "#" * int(done * width) + "-" * (width - int(done * width))
        clock = f"{int(t) // 60:02d}:{int(t) % 60:02d}/{int(self.total_s) // 60:02d}:{int(self.total_s) % 60:02d}"
        line = f"{self.label} [{bar}] {clock} {text}"
        if self.tty:
            sys.stderr.write("\r" + line[:160].ljust(160) + ("\n" if final else ""))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


async def sample(
    world: World,
    api: Api,
    series: dict[str, list[float]],
    scrapes: list[tuple[float, dict[str, float]]],
) -> None:
    """Every few seconds: the agents' states and the server's counters."""
    while not world.stopping.is_set():
        t = world.now()
        states = Counter(a.state for a in world.workers.values())
        open_orders = sum(1 for w in world.watches.values() if not w.done.is_set())
        series["t"].append(round(t, 1))
        series["idle"].append(states["idle"])
        series["busy"].append(states["busy"])
        series["off"].append(states["off"])
        series["open_orders"].append(open_orders)
        series["booked"].append(world.counts["booked"])
        series["served"].append(sum(1 for w in world.watches.values() if w.status == "completed"))
        series["connected"].append(sum(1 for a in world.workers.values() if a.ws is not None))
        try:
            values = parse_metrics(await api.text("/metrics"))
            scrapes.append((t, values))
            series["fixes_accepted"].append(metric(values, "doorstep_fixes_accepted_total"))
            series["live_delivered"].append(metric(values, "doorstep_live_delivered_total"))
        except Exception as e:  # the run goes on without this sample
            world.problem(f"/metrics: {e!r}")
            series["fixes_accepted"].append(math.nan)
            series["live_delivered"].append(math.nan)
        await world.sleep_until(t + SAMPLE_S)


def _ts(value: str | None, t0: float) -> float | None:
    return datetime.fromisoformat(value).timestamp() - t0 if value else None


async def outcome(
    api: Api, admin: Session, w: OrderWatch, t0: float
) -> tuple[kpi.OrderOutcome, str | None]:
    """One order as the server recorded it (and the customer's socket saw its ETA), and
    the policy of the engine's first decision on it."""
    order = await api.call("GET", f"/v1/orders/{w.order_id}", session=w.customer)
    events = await api.call("GET", f"/v1/orders/{w.order_id}/events", session=w.customer)
    decisions = await api.call("GET", f"/v1/orders/{w.order_id}/decisions", session=admin)

    def first(action: str) -> float | None:
        for e in events:
            if e["action"] == action:
                return _ts(e["at"], t0)
        return None

    cancels = [e for e in events if e["action"] == "cancel"]
    policy = str(decisions[-1]["policy"]) if decisions else None
    return kpi.OrderOutcome(
        id=w.order_id,
        kind=order["kind"],
        status=order["status"],
        worker_id=order["worker_id"],
        price_minor=int(order["price_minor"]),
        booked=_ts(order["created_at"], t0) or 0.0,
        assigned=first("assign"),
        en_route=_ts(order["en_route_at"], t0),
        arrived=_ts(order["arrived_at"], t0),
        completed=_ts(order.get("completed_at"), t0),
        cancelled=first("cancel"),
        failed=first("fail"),
        cancelled_by_customer=bool(cancels and cancels[0]["actor"] == "customer"),
        window_start=_ts(order["window_start"], t0),
        window_end=_ts(order["window_end"], t0),
        first_decision=min((_ts(d["at"], t0) or math.inf) for d in decisions)
        if decisions
        else None,
        eta_at=w.eta_at,
        eta_p50_s=w.eta_p50_s,
        eta_p90_s=w.eta_p90_s,
    ), policy


def dispatch_kpis(
    scrapes: list[tuple[float, dict[str, float]]], window: tuple[float, float]
) -> dict[str, Any]:
    """Tick time of deciding ticks and decision counts, from /metrics deltas over ``window``."""
    inside = [s for s in scrapes if window[0] <= s[0] <= window[1] + SAMPLE_S] or scrapes
    if len(inside) < 2:
        return {}
    a, b = inside[0][1], inside[-1][1]
    name = "doorstep_dispatch_tick_seconds"
    ba, bb = buckets(a, name, decided="true"), dict(buckets(b, name, decided="true"))
    delta = [(le, bb.get(le, 0.0) - c) for le, c in ba] if ba else sorted(bb.items())
    count = metric(b, name + "_count", decided="true") - metric(a, name + "_count", decided="true")
    total = metric(b, name + "_sum", decided="true") - metric(a, name + "_sum", decided="true")
    out: dict[str, Any] = {"deciding_ticks": int(count)}
    out["tick_mean_ms"] = round(total / count * 1000, 2) if count else None
    for q in (0.5, 0.9, 0.99):
        v = kpi.histogram_quantile(q, delta)
        out[f"tick_p{q * 100:g}_ms"] = round(v * 1000, 2) if v is not None else None
    # Decisions are counted to the run's last scrape (after the drain): an order booked
    # near the window's end is often decided after it, and the bookings it is compared
    # with are those of the window.
    last = scrapes[-1][1]
    for outcome_ in ("worker", "none"):
        n = sum(
            v - metric(a, k)
            for k, v in last.items()
            if k.startswith("doorstep_dispatch_decisions_total{") and f'outcome="{outcome_}"' in k
        )
        out[f"decisions_{outcome_}"] = int(n)
    idle = metric(b, name + "_count", decided="false") - metric(a, name + "_count", decided="false")
    out["idle_ticks"] = int(idle)
    span = inside[-1][0] - inside[0][0]
    fixes = metric(b, "doorstep_fixes_accepted_total") - metric(a, "doorstep_fixes_accepted_total")
    out["ingest_fixes_per_s"] = round(fixes / span, 2) if span > 0 else None
    delivered = metric(b, "doorstep_live_delivered_total") - metric(
        a, "doorstep_live_delivered_total"
    )
    out["live_delivered_per_s"] = round(delivered / span, 2) if span > 0 else None
    out["live_dropped"] = int(
        metric(b, "doorstep_live_dropped_total") - metric(a, "doorstep_live_dropped_total")
    )
    return out


async def run(
    scenario: Scenario,
    base_url: str,
    *,
    admin_phone: str,
    admin_password: str,
    label: str = "run",
    progress: bool = True,
    on_started: Callable[[World], Awaitable[None]] | None = None,
    http_timeout_s: float = 30.0,
) -> RunResult:
    """Run ``scenario`` against the server at ``base_url``; the KPIs and raw records
    (``http_timeout_s``: each API call's limit; longer on a busy machine)."""
    api = Api(base_url, timeout_s=http_timeout_s)
    try:
        return await _run(scenario, api, admin_phone, admin_password, label, progress, on_started)
    finally:
        await api.close()


async def _run(
    scenario: Scenario,
    api: Api,
    admin_phone: str,
    admin_password: str,
    label: str,
    progress: bool,
    on_started: Callable[[World], Awaitable[None]] | None,
) -> RunResult:
    try:
        admin = await api.login(admin_phone, admin_password)
        api.metrics_session = admin  # /metrics needs an admin (or its token)
    except ApiError as e:
        raise SetupError(
            f"admin login {admin_phone}: {e.status}; seed the server or pass --admin-phone/--admin-password"
        ) from None
    sites = await city_sites(api, scenario.city)
    await check_services(api, scenario)
    the_plan: Plan = plan(scenario, sites)

    def say(message: str) -> None:
        if progress:
            print(f"[{label}] {message}", file=sys.stderr, flush=True)

    say(
        f"plan: {len(the_plan.bookings)} bookings, {len(the_plan.workers)} workers, {len(the_plan.customers)} customers"
    )
    t_setup = time.monotonic()
    workers = await bounded((worker_account(api, admin, scenario, p) for p in the_plan.workers), 6)
    customers = await bounded(
        (customer_account(api, scenario, c.index) for c in the_plan.customers), 6
    )
    say(f"accounts ready in {time.monotonic() - t_setup:.0f} s")
    router = Router(
        city_graph(
            parse_service_area(
                (await api.call("GET", f"/v1/cities/{scenario.city}"))["service_area"]
            )
        )
    )
    world = World(api=api, scenario=scenario, router=router, tag=f"sim-{secrets.token_hex(4)}")
    agents = [
        WorkerAgent(world, p, s, wid) for p, (s, wid) in zip(the_plan.workers, workers, strict=True)
    ]
    world.workers = {a.id: a for a in agents}
    shoppers = [CustomerAgent(world, s) for s in customers]
    series: dict[str, list[float]] = {
        k: []
        for k in (
            "t",
            "idle",
            "busy",
            "off",
            "open_orders",
            "booked",
            "served",
            "connected",
            "fixes_accepted",
            "live_delivered",
        )
    }
    scrapes: list[tuple[float, dict[str, float]]] = []
    world.t0 = time.time()
    started = datetime.now().astimezone().isoformat(timespec="seconds")
    tasks = [asyncio.create_task(a.run(), name=f"worker-{a.id}") for a in agents]
    tasks += [
        asyncio.create_task(shoppers[b.customer].run(b), name=f"booking-{b.index}")
        for b in the_plan.bookings
    ]
    sampler = asyncio.create_task(sample(world, api, series, scrapes))
    bar = Progress(label, scenario.duration_s, progress)
    if on_started is not None:
        await on_started(world)
    total = scenario.duration_s + scenario.drain_min * 60

    def status_line() -> str:
        states = Counter(a.state for a in agents)
        served = sum(1 for w in world.watches.values() if w.status == "completed")
        open_ = sum(1 for w in world.watches.values() if not w.done.is_set())
        return (
            f"booked {world.counts['booked']}/{len(the_plan.bookings)} served {served} open {open_} "
            f"workers busy {states['busy']} idle {states['idle']} off {states['off']}"
        )

    try:
        while world.now() < scenario.duration_s:
            bar.show(world.now(), status_line())
            await asyncio.sleep(1.0)
        world.booking_closed.set()
        while world.now() < total:
            placed = all(t.done() for t in tasks[len(agents) :])
            if placed and all(w.done.is_set() for w in world.watches.values()):
                break
            bar.show(world.now(), "draining: " + status_line())
            await asyncio.sleep(1.0)
        bar.show(world.now(), status_line(), final=True)
    finally:
        ended = world.now()
        world.stopping.set()
        await asyncio.gather(*tasks, sampler, return_exceptions=True)
    say("reading what happened from the server")
    found = await bounded((outcome(api, admin, w, world.t0) for w in world.watches.values()), 8)
    outcomes = [o for o, _ in found]
    policies = Counter(p for _, p in found if p is not None)
    with contextlib.suppress(Exception):
        scrapes.append((world.now(), parse_metrics(await api.text("/metrics"))))
    warmup = scenario.warmup_min * 60
    window = (warmup, scenario.duration_s)
    measured = [o for o in outcomes if o.booked >= warmup]
    worker_outcomes = [
        kpi.WorkerOutcome(a.id, tuple(a.shifts), tuple(a.holding), a.km, a.completed, a.earned)
        for a in agents
    ]
    lags = [ms for t, ms in world.lags if t >= warmup]
    acks = [ms for t, ms in world.acks if t >= warmup]
    samples = kpi.Samples(acks, lags, world.fixes_sent, world.fixes_acked, dict(world.rejected))
    kpis = {
        "orders": kpi.order_kpis(measured, scenario.hour_of),
        "orders_with_warmup": kpi.order_kpis(outcomes),
        "workers": kpi.worker_kpis(worker_outcomes, window),
        "latency": kpi.latency_kpis(samples, ended - warmup),
        "dispatch": dispatch_kpis(scrapes, window),
        "offers": dict(sum((a.offers for a in agents), Counter())),
        "events": dict(world.counts),
        "socket_errors": dict(world.socket_errors),
        "http": {f"{m} {r} {s}": n for (m, r, s), n in sorted(world.api.calls.items())},
    }
    meta = {
        "label": label,
        "scenario": scenario.name,
        "seed": scenario.seed,
        "server": api.base_url,
        "started": started,
        "ran_s": round(ended, 1),
        "time_scale": scenario.time_scale,
        "start_hour": scenario.start_hour,
        "duration_min": scenario.duration_min,
        "workers": scenario.workers.count,
        "bookings_planned": len(the_plan.bookings),
        "warmup_min": scenario.warmup_min,
        "problems": world.problems,
        "policy": policies.most_common(1)[0][0] if policies else None,
    }
    return RunResult(scenario, label, meta, kpis, series, outcomes, worker_outcomes, lags, acks)
