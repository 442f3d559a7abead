"""The city simulator: seeded demand, KPI maths, motion and GPS noise (pure), one short
run against a real server subprocess with the dispatch engine on, and the demo's live city
(crews and coupons) on one."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import math
import time
from pathlib import Path

import asyncpg
import msgspec
import numpy as np
import pytest

from doorstep.db import with_database
from geo.coords import haversine_m
from geo.roadgraph import load_futian_graph
from ledger import store as ledger_store
from simulations.demand import Sites, hourly_weight, plan
from simulations.demo import demo_scenario, run_demo
from simulations.kpi import gini, histogram_quantile, lorenz, percentile, summary
from simulations.motion import GpsNoise, MotionParams, Router, plan_trip
from simulations.report import write_run
from simulations.runner import bounded, run
from simulations.scenario import Scenario, ScenarioError, load_scenario, parse_scenario
from simulations.server import local_server

SCENARIOS = Path(__file__).resolve().parent.parent / "simulations" / "scenarios"


def _scenario(seed: int, **demand: object) -> Scenario:
    return parse_scenario(
        {
            "name": "t",
            "seed": seed,
            "duration_min": 60,
            "workers": {"count": 20, "disconnects_per_hour": 2.0},
            "demand": {"orders_per_min": 2.0, "customers": 30, **demand},
        }
    )


@pytest.fixture(scope="module")
def sites() -> Sites:
    """Doors near the bundled Futian road graph's nodes."""
    g = load_futian_graph()
    return Sites(np.asarray(g.lat), np.asarray(g.lng))


async def test_bounded_cancels_and_closes_the_rest_when_one_fails() -> None:
    """bounded raises the first failure, cancels the items under way and closes those never started (none left un-awaited)."""
    started: list[int] = []

    async def item(i: int) -> int:
        started.append(i)
        if i == 1:
            raise ValueError("set-up failed")
        await asyncio.sleep(30)
        return i

    items = [item(i) for i in range(6)]
    with pytest.raises(ValueError, match="set-up failed"):
        await bounded(items, 2)
    assert started[:2] == [0, 1]  # two at a time ...
    assert len(started) <= 3  # ... then at most the failed one's turn
    assert all(inspect.getcoroutinestate(c) == inspect.CORO_CLOSED for c in items)
    assert await bounded((asyncio.sleep(0, i) for i in range(4)), 2) == [0, 1, 2, 3]


def test_the_same_seed_gives_the_same_demand(sites: Sites) -> None:
    """Two plans from one seed are equal (bookings, customers, workers); another seed differs."""
    a, b = plan(_scenario(7), sites), plan(_scenario(7), sites)
    assert a == b
    c = plan(_scenario(8), sites)
    assert [x.at_s for x in c.bookings] != [x.at_s for x in a.bookings]
    n = len(a.bookings)  # Poisson with mean 120: within 5 standard deviations
    assert abs(n - 120) < 5 * math.sqrt(120)
    assert all(x.at_s < y.at_s for x, y in zip(a.bookings, a.bookings[1:], strict=False))
    assert any(w.disconnects for w in a.workers)


def test_demand_follows_the_hourly_curve(sites: Sites) -> None:
    """With a curve that triples at 16:00 (simulated, 6x), bookings after 15:30 outnumber those before as the curve says."""
    scenario = _scenario(3, orders_per_min=10.0)  # 13:00 for 60 wall minutes = 6 sim hours
    curve = tuple(1.0 if h < 16 else 3.0 for h in range(24))
    times = [b.at_s for b in plan(scenario, sites, curve).bookings]
    before = sum(1 for t in times if scenario.sim_hour(t) < 15.5)
    after = len(times) - before
    # Before 15:30: 2.5 h at 1. After: 15:30-16:30 ramps 1 -> 3 (mean 2), then 2.5 h at 3.
    expected = (1 * 2 + 2.5 * 3) / (2.5 * 1)
    assert after / before == pytest.approx(expected, rel=0.15)
    assert hourly_weight(curve, 15.5) == 1.0
    assert hourly_weight(curve, 16.0) == 2.0


def test_a_service_booked_only_for_a_window_is_always_scheduled(sites: Sites) -> None:
    """A service marked always_scheduled is booked for a window every time, the others as
    scheduled_share says, and the draws of the rest of the plan do not change; its
    windows must be ≥ 30 min ahead and long."""
    mix = [{"code": "daily_cleaning_2h"}, {"code": "move_in_cleaning"}]
    plain = plan(_scenario(5, scheduled_share=0.0, services=mix), sites)
    marked = [{"code": "daily_cleaning_2h"}, {"code": "move_in_cleaning", "always_scheduled": True}]
    crews = plan(_scenario(5, scheduled_share=0.0, services=marked), sites)
    assert [b.service_code for b in plain.bookings] == [b.service_code for b in crews.bookings]
    assert [b.at_s for b in plain.bookings] == [b.at_s for b in crews.bookings]
    assert not any(b.scheduled for b in plain.bookings)
    for b in crews.bookings:
        assert b.scheduled == (b.service_code == "move_in_cleaning")
        assert b.lead_s >= 30 * 60 or not b.scheduled
    with pytest.raises(ScenarioError, match=r"demand\.scheduled_lead_min"):
        _scenario(1, scheduled_share=0.0, services=marked, scheduled_lead_min=[10, 20])


def test_the_demo_books_a_crew_and_a_prepaid_order_in_its_first_seconds(sites: Sites) -> None:
    """The demo's plan books a 开荒保洁 for a crew of 3 within 10 s and a prepaid 日常保洁3小时
    (paid at once, with a coupon) within 15 s, and a few crews an hour, not more."""
    from seeding.pay_modes import DEMO_PREPAID

    scenario = demo_scenario()
    assert "housekeeping" in scenario.workers.certificates
    demo = plan(scenario, sites)
    prepaid = [b for b in demo.bookings if b.service_code in DEMO_PREPAID and not b.scheduled]
    crews = [b for b in demo.bookings if b.service_code == "move_in_cleaning"]
    assert prepaid[0].at_s < 15
    assert prepaid[0].cancel_after_s is None
    assert crews[0].at_s < 10
    assert all(b.scheduled for b in crews)
    assert 2 <= sum(b.at_s < 3600 for b in crews) <= 10


def test_a_bad_scenario_names_the_key() -> None:
    """The bundled scenarios load; an unknown key, or a range given backwards, is an error naming the key."""
    assert {load_scenario(p).name for p in SCENARIOS.glob("*.toml")} >= {"smoke", "demo", "load"}
    with pytest.raises(ScenarioError, match="unknown field `speed`"):
        parse_scenario(
            {
                "name": "t",
                "seed": 1,
                "workers": {"count": 1, "speed": 3},
                "demand": {"orders_per_min": 1},
            }
        )
    with pytest.raises(ScenarioError, match=r"demand\.patience_min"):
        _scenario(1, patience_min=[5, 1])


def test_percentiles_gini_and_histogram_quantiles() -> None:
    """Nearest-rank percentiles, the Gini coefficient and PromQL-style histogram quantiles on known inputs."""
    assert percentile([4, 1, 3, 2], 50) == 2
    assert percentile([4, 1, 3, 2], 90) == 4
    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile([], 50) is None
    assert summary([1.0, 2.0, 3.0])["mean"] == 2.0
    assert gini([3, 3, 3, 3]) == 0
    assert gini([0, 0, 0, 8]) == pytest.approx(0.75)
    assert gini([1, 2, 3, 4, 5]) == pytest.approx(4 / 15)
    assert gini([]) == 0
    assert lorenz([1, 3])[1] == [0.0, 0.25, 1.0]
    buckets = [(0.01, 2.0), (0.1, 6.0), (1.0, 10.0), (math.inf, 10.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.01 + 0.09 * 3 / 4)
    assert histogram_quantile(0.1, buckets) == pytest.approx(0.005)
    assert histogram_quantile(0.5, [(1.0, 0.0), (math.inf, 0.0)]) is None


def test_gps_noise_is_seeded_and_looks_like_a_phone() -> None:
    """The same seed gives the same fixes; errors are metres, not tens of metres, with rare jumps."""

    def fixes(seed: int) -> list[tuple[float, float, float]]:
        noise = GpsNoise(np.random.default_rng(seed))
        return [noise.fix(22.53, 114.02, 2.0) for _ in range(2000)]

    a = fixes(1)
    assert a == fixes(1)
    assert a != fixes(2)
    errors = [haversine_m(22.53, 114.02, lat, lng) for lat, lng, _ in a]
    median = percentile(errors, 50)
    assert median is not None
    assert 4 < median < 12
    jumps = sum(1 for e in errors if e > 140)
    assert 1 <= jumps <= 25  # about 0.4 % of fixes
    steps = [haversine_m(a[i][0], a[i][1], a[i + 1][0], a[i + 1][1]) for i in range(len(a) - 1)]
    assert (percentile(steps, 50) or 99) < 5  # consecutive errors are correlated
    assert all(acc >= 3 for _, _, acc in a)


def test_a_trip_follows_the_fastest_roads_at_road_speed() -> None:
    """Without traffic spread or stops a trip takes the path's road time over the speed factor, and moves forward."""
    graph = load_futian_graph()
    router = Router(graph)
    start = (float(graph.lat[10]), float(graph.lng[10]))
    door = (float(graph.lat[900]), float(graph.lng[900]))
    params = MotionParams(speed_factor=0.5, speed_sd=0.0, stop_share=0.0)
    trip = plan_trip(router, start, door, np.random.default_rng(1), params)
    nodes = router.path(10, 900)
    road_s = sum(float(graph.travel_s[u, v]) for u, v in itertools.pairwise(nodes))
    assert trip.duration_s == pytest.approx(road_s / 0.5)
    assert trip.end == door
    assert trip.length_m > haversine_m(*start, *door)
    done = [trip.distance_by(t) for t in np.linspace(0, trip.duration_s, 50)]
    assert all(x <= y + 1e-6 for x, y in itertools.pairwise(done))
    assert done[-1] == pytest.approx(trip.length_m)
    top = max(
        float(graph.length_m[u, v] / graph.travel_s[u, v]) for u, v in itertools.pairwise(nodes)
    )
    speeds = [trip.at(t)[2] for t in np.linspace(0, trip.duration_s, 200)]
    assert max(speeds) <= top / 0.5 + 1e-6


async def test_a_short_city_run_against_a_real_server(
    server_urls: tuple[str, str], tmp_path: Path
) -> None:
    """The smoke scenario on a seeded server with the engine on: every booking is served through offers, sockets and the geofence; the report is written; the server's storage is dropped."""
    scenario = load_scenario(SCENARIOS / "smoke.toml")
    async with local_server(server_urls, tmp_path, label="smoke") as srv:
        result = await run(
            scenario,
            srv.url,
            admin_phone=srv.admin_phone,
            admin_password=srv.admin_password,
            label="smoke",
            progress=False,
        )
    orders = result.kpis["orders"]
    assert orders["created"] == result.meta["bookings_planned"] >= 2
    assert orders["served"] == orders["created"]
    for o in result.orders:
        assert o.assigned is not None
        assert o.en_route is not None
        assert o.arrived is not None
        assert o.completed is not None
        assert o.booked <= o.assigned <= o.en_route <= o.arrived <= o.completed
    assert result.kpis["events"]["rated"] == orders["served"]
    assert result.kpis["events"].get("arrived_by_geofence", 0) >= 1
    assert result.kpis["dispatch"]["decisions_worker"] >= orders["created"]
    assert result.kpis["latency"]["fanout_lag_ms"]["n"] > 0
    assert result.kpis["latency"]["fix_to_index_ms"]["n"] > 0
    assert result.meta["policy"] == "batch"
    paths = write_run(result, tmp_path / "report")
    assert json.loads(paths["json"].read_text())["kpis"]["orders"]["served"] == orders["served"]
    assert "data:image/png;base64," in paths["html"].read_text()
    conn = await asyncpg.connect(with_database(server_urls[1], "postgres"))
    try:
        left = await conn.fetchval(
            "SELECT count(*) FROM pg_database WHERE datname = $1", srv.database
        )
    finally:
        await conn.close()
    assert left == 0


async def _demo_facts(conn: asyncpg.Connection) -> tuple[int, int, int]:
    """(crew orders booked, crew orders offered to or held by a whole crew, orders paid
    with a coupon whose subsidy the ledger posted)."""
    crews = await conn.fetchval("SELECT count(*) FROM orders WHERE crew_size > 1")
    crewed = await conn.fetchval(
        "SELECT count(*) FROM orders o WHERE o.crew_size > 1 AND ("
        " (SELECT count(DISTINCT f.worker_id) FROM offers f WHERE f.order_id = o.id)"
        " >= o.crew_size OR EXISTS (SELECT 1 FROM order_crew c WHERE c.order_id = o.id))"
    )
    subsidised = await conn.fetchval(
        "SELECT count(*) FROM order_discounts d JOIN ledger_entries e "
        "ON e.key = 'growth:discount:' || d.order_id JOIN ledger_lines l ON l.entry_id = e.id "
        "WHERE d.status = 'captured' AND d.coupon_id IS NOT NULL AND d.coupon_fen > 0 "
        "AND l.account = 'subsidy_expense' AND l.debit_fen = d.coupon_fen"
    )
    return int(crews), int(crewed), int(subsidised)


@pytest.mark.timeout(600)
async def test_the_demo_city_books_crews_and_pays_with_coupons(
    server_urls: tuple[str, str], tmp_path: Path
) -> None:
    """The demo's live city (its first 20 workers) on a `seed --demo` server, for a few minutes at most: its customers claim coupons, it books a 开荒保洁 crew order that is offered to a whole crew, and pays a prepaid order with the suggested coupon through checkout and the sandbox's pay page (the subsidy posted, the ledger balanced)."""
    async with local_server(server_urls, tmp_path, label="demo") as srv:
        scenario = demo_scenario()  # its first 20 workers: enough for a crew, quicker to start
        scenario = msgspec.structs.replace(
            scenario, workers=msgspec.structs.replace(scenario.workers, count=20)
        )
        city = asyncio.create_task(
            run_demo(srv.url, srv.admin_phone, srv.admin_password, srv.url, scenario)
        )
        conn = await asyncpg.connect(with_database(server_urls[1], srv.database))
        try:
            deadline = time.monotonic() + 300
            facts = (0, 0, 0)
            while time.monotonic() < deadline and not city.done():
                facts = await _demo_facts(conn)
                if all(facts):
                    break
                await asyncio.sleep(2.0)
            city.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await city
            claimed = await conn.fetchval("SELECT count(*) FROM coupons WHERE source = 'claim'")
            violations = await ledger_store.check(conn)
        finally:
            if not city.done():
                city.cancel()
            await conn.close()
    crews, crewed, subsidised = facts
    assert crews >= 1
    assert crewed >= 1
    assert subsidised >= 1
    assert claimed >= 40  # each of the demo city's 40 customers claimed the claimable ones
    assert violations == []


def test_rotation_flag_sets_every_started_servers_params() -> None:
    """``--rotation-s 60`` gives each server the simulator starts ``rotation_slack_s = 60`` in
    its ``[matching]`` table, read back by the params loader; without it nothing is added."""
    import tomllib

    from doorstep.params import from_mapping
    from matching.params import MatchParams
    from simulations.__main__ import _parser, _rotation
    from simulations.server import params_text

    args = _parser().parse_args(["compare", "s.toml", "--rotation-s", "60", "--chain-s", "300"])
    table = tomllib.loads(params_text("batch", f"chain_s = 300.0\n{_rotation(args)}"))
    params = from_mapping(MatchParams, table["matching"], section="matching")
    assert (params.rotation_slack_s, params.chain_s) == (60.0, 300.0)
    assert _rotation(_parser().parse_args(["run", "s.toml"])) == ""


def test_compare_with_chain_s_runs_batch_without_chaining_beside_batch_chain() -> None:
    """Chaining is on by default, so ``compare --chain-s 300`` gives ``batch`` ``chain_s = 0``
    and ``batch-chain`` 300; without the flag batch keeps the default (nothing added)."""
    import tomllib

    from doorstep.params import from_mapping
    from matching.params import MatchParams
    from simulations.__main__ import _parser, compare_runs
    from simulations.server import params_text

    def chain_of(policy: str, extra: str) -> float:
        table = tomllib.loads(params_text(policy, extra))
        return from_mapping(MatchParams, table["matching"], section="matching").chain_s

    runs = compare_runs(_parser().parse_args(["compare", "s.toml", "--chain-s", "300"]))
    assert {label: chain_of(policy, extra) for label, policy, extra in runs} == {
        "batch": 0.0,
        "greedy": MatchParams().chain_s,
        "batch-chain": 300.0,
    }
    plain = compare_runs(_parser().parse_args(["compare", "s.toml"]))
    assert plain == [("batch", "batch", ""), ("greedy", "greedy", "")]
    assert MatchParams().chain_s == 300.0
