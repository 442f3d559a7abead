"""Load mode: more workers and watchers, step by step, until a service level breaks.

Each step adds ``step_workers`` workers (the same simulated phones as a city run: road
motion, GPS noise, fixes every 1–5 s) and as many *order slots*. A slot books an instant
order at a random door in the area, is watched by ``watchers_per_order`` order sockets
(the customer's and share-link viewers'), and books again as soon as the order ends, so
nearly every worker always drives to a job with its watchers listening. The dispatch
engine assigns the orders as in production.

After ``settle_s`` each step is measured for ``window_s``: fan-out lag (fix sent → a
watcher's ``position`` frame) and fix-to-index (fix sent → its ack, which follows the
Redis write). The run stops at the first step whose p99 of either is over its limit
(``fanout_p99_ms``, ``fix_to_index_p99_ms``), or at ``max_workers``. The capacity is the
last step within both limits. The simulator's own CPU and event-loop lag are reported
per step: a saturated generator would inflate the latencies it measures.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from doorstep.gcpolicy import GcParams, GcPolicy
from geo.roadgraph import load_futian_graph
from simulations import kpi
from simulations.agents import CustomerAgent, WorkerAgent, World
from simulations.client import Api, ApiError, Session, metric, parse_metrics
from simulations.demand import Booking, Sites, WorkerPlan
from simulations.motion import Router
from simulations.report import img, png
from simulations.runner import (
    SetupError,
    bounded,
    check_services,
    city_sites,
    customer_account,
    worker_account,
)
from simulations.scenario import Scenario

CUSTOMERS = 50
_TICK = os.sysconf("SC_CLK_TCK")


def _machine_busy_s() -> float:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) / _TICK


SIMULATOR_LAG_SHARE = 0.5  # simulator loop lag p99 above this share of a limit: its own


class LoopLag:
    """How late the simulator's event loop wakes up (a saturated generator shows here)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []

    async def run(self, world: World) -> None:
        """Sleep 100 ms at a time and record the oversleep."""
        while not world.stopping.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.1)
            self.samples.append((world.now(), (time.perf_counter() - t - 0.1) * 1000))


class Slot:
    """One order at a time, booked again as soon as it ends."""

    def __init__(self, world: World, shopper: CustomerAgent, sites: Sites, seed: int) -> None:
        self.world, self.shopper, self.sites = world, shopper, sites
        self.rng = np.random.default_rng(seed)
        self.count = 0

    async def run(self, service: str) -> None:
        """Book, follow, repeat until the run stops."""
        while not self.world.stopping.is_set():
            node = self.sites.node_near(self.rng, None)
            lat, lng = self.sites.door(self.rng, node)
            self.count += 1
            b = Booking(
                index=int(self.rng.integers(2**62)),
                at_s=self.world.now(),
                customer=0,
                service_code=service,
                lat=lat,
                lng=lng,
                scheduled=False,
                lead_s=0.0,
                window_s=0.0,
                cancel_after_s=None,
                stars=None,
                share_link=False,
            )
            watch = await self.shopper.book(b)
            if watch is None:
                await asyncio.sleep(5.0)
                continue
            await self.shopper.follow(watch)


def _window(samples: list[tuple[float, float]], a: float, b: float) -> list[float]:
    return [v for t, v in samples if a <= t < b]


async def run_load(
    scenario: Scenario, base_url: str, admin_phone: str, admin_password: str
) -> dict[str, Any]:
    """Ramp until a service level breaks; the steps, the capacity and the raw figures."""
    load = scenario.load
    api = Api(base_url)
    # The simulator holds every phone's sockets and agents: without this policy its own
    # full collections stalled its event loop for up to 450 ms at 400 workers, and the
    # latencies it measured were its own (docs/simulation.md).
    gc_policy = GcPolicy(GcParams())
    gc_policy.start()
    try:
        try:
            admin = await api.login(admin_phone, admin_password)
            api.metrics_session = admin  # /metrics needs an admin (or its token)
        except ApiError as e:
            raise SetupError(f"admin login {admin_phone}: {e.status}") from None
        sites = await city_sites(api, scenario.city)
        await check_services(api, scenario)
        service = scenario.demand.services[0].code
        world = World(
            api=api,
            scenario=scenario,
            router=Router(load_futian_graph()),
            tag=f"load-{os.getpid()}-{int(time.time())}",
        )
        customers = await bounded(
            (customer_account(api, scenario, i, kind=4) for i in range(CUSTOMERS)), 6
        )
        shoppers = [
            CustomerAgent(world, s, extra_watchers=load.watchers_per_order - 1) for s in customers
        ]
        lag = LoopLag()
        tasks: list[asyncio.Task[None]] = [asyncio.create_task(lag.run(world))]
        rng = np.random.default_rng(scenario.seed)
        steps: list[dict[str, Any]] = []
        capacity: dict[str, Any] | None = None
        n = 0
        target = load.start_workers
        while target <= load.max_workers:
            t_add = time.monotonic()
            new = list(range(n, target))
            plans = []
            for i in new:
                node = sites.node_near(rng, None)
                plans.append(
                    WorkerPlan(
                        index=i,
                        start_lat=float(sites.lat[node]),
                        start_lng=float(sites.lng[node]),
                        shifts=((0.0, 10 * 86400.0),),
                        disconnects=(),
                        fix_interval_s=float(
                            rng.uniform(
                                scenario.workers.fix_interval_s[0],
                                scenario.workers.fix_interval_s[1],
                            )
                        ),
                        seed=int(rng.integers(2**62)),
                    )
                )
            accounts: list[tuple[Session, int]] = await bounded(
                (worker_account(api, admin, scenario, p, kind=3) for p in plans), 6
            )
            for p, (s, wid) in zip(plans, accounts, strict=True):
                agent = WorkerAgent(world, p, s, wid)
                world.workers[wid] = agent
                tasks.append(asyncio.create_task(agent.run()))
            for i in new:
                slot = Slot(world, shoppers[i % CUSTOMERS], sites, int(rng.integers(2**62)))
                tasks.append(asyncio.create_task(slot.run(service)))
            n = target
            added_s = time.monotonic() - t_add
            await asyncio.sleep(load.settle_s)
            a = world.now()
            cpu0, busy0, wall0 = time.process_time(), _machine_busy_s(), time.monotonic()
            gc0 = sum(gc_policy.stats.pause_s)
            m0 = parse_metrics(await api.text("/metrics"))
            await asyncio.sleep(load.window_s)
            b = world.now()
            m1 = parse_metrics(await api.text("/metrics"))
            wall = time.monotonic() - wall0
            fan = _window(world.lags, a, b)
            acks = _window(world.acks, a, b)
            loop = _window(lag.samples, a, b)
            watchers = (
                sum(1 for w in world.watches.values() if not w.done.is_set())
                * load.watchers_per_order
            )
            step = {
                "workers": n,
                "connected": sum(1 for w in world.workers.values() if w.ws is not None),
                "busy": sum(1 for w in world.workers.values() if w.state == "busy"),
                "watchers": watchers,
                "fanout_ms": kpi.summary(fan),
                "fix_to_index_ms": kpi.summary(acks),
                "fixes_accepted_per_s": round(
                    (
                        metric(m1, "doorstep_fixes_accepted_total")
                        - metric(m0, "doorstep_fixes_accepted_total")
                    )
                    / wall,
                    1,
                ),
                "live_delivered_per_s": round(
                    (
                        metric(m1, "doorstep_live_delivered_total")
                        - metric(m0, "doorstep_live_delivered_total")
                    )
                    / wall,
                    1,
                ),
                "live_dropped": int(
                    metric(m1, "doorstep_live_dropped_total")
                    - metric(m0, "doorstep_live_dropped_total")
                ),
                "simulator_cores": round((time.process_time() - cpu0) / wall, 3),
                "machine_busy_cores": round((_machine_busy_s() - busy0) / wall, 3),
                "simulator_loop_lag_ms": kpi.summary(loop),
                "simulator_gc_share": round((sum(gc_policy.stats.pause_s) - gc0) / wall, 4),
                "setup_s": round(added_s, 1),
            }
            fan99 = kpi.percentile(fan, 99)
            ack99 = kpi.percentile(acks, 99)
            ok = (fan99 is not None and fan99 <= load.fanout_p99_ms) and (
                ack99 is not None and ack99 <= load.fix_to_index_p99_ms
            )
            step["within_limits"] = ok
            lag99 = kpi.percentile(loop, 99)
            # A late simulator loop delays the frames it times: then the step measured
            # the simulator, not the server, and the capacity is only a lower bound.
            step["limited_by"] = (
                None
                if ok
                else "simulator"
                if lag99 is not None
                and lag99 > SIMULATOR_LAG_SHARE * min(load.fanout_p99_ms, load.fix_to_index_p99_ms)
                else "server"
            )
            steps.append(step)
            print(
                f"[load] {n} workers, {watchers} watchers: fan-out p99 {fan99} ms, fix-to-index p99 {ack99} ms, "
                f"{step['fixes_accepted_per_s']} fixes/s, simulator {step['simulator_cores']} cores, "
                f"machine {step['machine_busy_cores']} cores, simulator loop lag p99 {lag99} ms -> "
                + ("ok" if ok else f"BROKEN (limited by the {step['limited_by']})"),
                file=sys.stderr,
                flush=True,
            )
            if not ok:
                break
            capacity = {
                k: step[k]
                for k in ("workers", "watchers", "fixes_accepted_per_s", "live_delivered_per_s")
            }
            target += load.step_workers
        world.stopping.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        broke = steps[-1] if steps and not steps[-1]["within_limits"] else None
        return {
            "scenario": scenario.name,
            "server": base_url,
            "limits": {
                "fanout_p99_ms": load.fanout_p99_ms,
                "fix_to_index_p99_ms": load.fix_to_index_p99_ms,
            },
            "steps": steps,
            "capacity": capacity,
            "broke_at": {k: broke[k] for k in ("workers", "watchers")} if broke else None,
            "limited_by": broke["limited_by"] if broke else None,
            "reached_max_workers": broke is None,
            "problems": world.problems[:50],
            "events": dict(world.counts),
        }
    finally:
        await api.close()
        await gc_policy.stop()


def load_figure(result: dict[str, Any]) -> bytes:
    """p99 latencies per step against the limits; throughput per step."""
    import matplotlib.pyplot as plt

    steps = result["steps"]
    xs = [s["workers"] for s in steps]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    for key, color, limit in (
        ("fanout_ms", "#1f77b4", "fanout_p99_ms"),
        ("fix_to_index_ms", "#d62728", "fix_to_index_p99_ms"),
    ):
        name = "fan-out" if key == "fanout_ms" else "fix → index"
        a.plot(
            xs, [s[key]["p99"] or math.nan for s in steps], "o-", color=color, label=f"{name} p99"
        )
        a.plot(
            xs,
            [s[key]["p50"] or math.nan for s in steps],
            "o--",
            color=color,
            alpha=0.5,
            label=f"{name} p50",
        )
        a.axhline(result["limits"][limit], color=color, ls=":", lw=1, label=f"{name} limit")
    a.set_yscale("log")
    a.set_xlabel("workers (each driving to a job; watchers = workers x watchers per order)")
    a.set_ylabel("milliseconds")
    a.set_title("Latency per step")
    a.legend(fontsize=8)
    b.plot(xs, [s["fixes_accepted_per_s"] for s in steps], "o-", label="fixes accepted / s")
    b.plot(
        xs, [s["live_delivered_per_s"] for s in steps], "o-", label="position frames delivered / s"
    )
    b2 = b.twinx()
    b2.plot(xs, [s["machine_busy_cores"] for s in steps], "k:", label="machine busy cores")
    b2.plot(xs, [s["simulator_cores"] for s in steps], "k--", label="simulator cores")
    b2.set_ylabel("cores")
    b.set_xlabel("workers")
    b.set_ylabel("per second")
    b.set_title("Throughput and CPU per step")
    b.legend(fontsize=8, loc="upper left")
    b2.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return png(fig)


def write_load(result: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """report.json, report.html and report.png of a load run."""
    import html

    out_dir.mkdir(parents=True, exist_ok=True)
    figure = load_figure(result)
    rows = "".join(
        f"<tr><td>{s['workers']}</td><td>{s['watchers']}</td><td>{s['fanout_ms']['p50']}</td>"
        f"<td>{s['fanout_ms']['p99']}</td><td>{s['fix_to_index_ms']['p50']}</td><td>{s['fix_to_index_ms']['p99']}</td>"
        f"<td>{s['fixes_accepted_per_s']}</td><td>{s['live_delivered_per_s']}</td><td>{s['simulator_cores']}</td>"
        f"<td>{s['machine_busy_cores']}</td><td>{s['simulator_loop_lag_ms']['p99']}</td>"
        f"<td>{'yes' if s['within_limits'] else 'no, limited by the ' + str(s.get('limited_by'))}</td></tr>"
        for s in result["steps"]
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Doorstep load test</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto}"
        "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}table{border-collapse:collapse}</style>"
        f"</head><body><h1>Load test: {html.escape(result['scenario'])}</h1>"
        f"<p>Capacity within the limits (fan-out p99 ≤ {result['limits']['fanout_p99_ms']} ms, "
        f"fix-to-index p99 ≤ {result['limits']['fix_to_index_p99_ms']} ms): "
        f"<b>{html.escape(str(result['capacity']))}</b>; broke at {html.escape(str(result['broke_at']))}"
        + (
            " — the simulator's own event loop was late there, so this is a lower bound of "
            "the server's capacity"
            if result.get("limited_by") == "simulator"
            else ""
        )
        + ".</p>"
        "<table><tr><th>workers</th><th>watchers</th><th>fan-out p50 ms</th><th>fan-out p99 ms</th>"
        "<th>fix→index p50 ms</th><th>fix→index p99 ms</th><th>fixes/s</th><th>frames out/s</th>"
        "<th>simulator cores</th><th>machine cores</th><th>sim loop lag p99 ms</th><th>within limits</th></tr>"
        f"{rows}</table>{img(figure, 'load test')}</body></html>"
    )
    paths = {
        "json": out_dir / "report.json",
        "html": out_dir / "report.html",
        "png": out_dir / "report.png",
    }
    paths["json"].write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    paths["html"].write_text(page, encoding="utf-8")
    paths["png"].write_bytes(figure)
    return paths
