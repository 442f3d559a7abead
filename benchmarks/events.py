"""Domain events under a steady booking load: throughput, consumer lag, nothing lost or
applied twice, and what writing the events adds to a booking.

Two ``doorstep serve`` processes on one fresh database: ``events`` is the server as it
ships; ``baseline`` is the same code with the domain-event append taken out of
``dispatch.changes.record`` (the booking's history rows stay), started through this
module (``--serve-baseline``). An open-loop generator books instant orders at a fixed
rate (``--rate``, 50/s by default) against one server per window, the windows taking
turns (events, baseline, events, baseline, …) so noise hits both alike. During the
``events`` windows it also appends probe events from a second connection (another
producer, 10/s), whose consumer records each delivery.

Where the consumers run (``--relay``): by default (``apart``) the two booking servers
run no relay (``[events] in_process = false``) and a third ``doorstep serve``, sent no
requests, holds the sequencer and every consumer, as a deployment that keeps delivery
off its API processes does; the ratio then measures what writing the events adds to a
booking. With ``in-server`` each booking server runs its own relay (they race for the
roles), so the events windows also carry the consumers' work on the booking loop.

Reported (JSON on stdout, progress on stderr):

* booking latency p50/p99/mean with and without events, and their ratios;
* ``events_written_per_s`` (rows appended) and ``events_consumed_per_s`` (handled by
  consumers, from the server's /metrics) in the ``events`` windows;
* ``lag_ms``: per consumer, commit to handling (the relay's own measure, last 1,000),
  and ``feed_lag_ms``: from the booking's HTTP answer to its ``confirmed`` status on a
  dispatcher's city feed (what a person watching sees);
* ``lost``: bookings whose status never reached the feed, plus probes never handled;
  ``duplicated_effects``: probes handled more than once. Both must be 0.

Usage::

    python -m benchmarks.events --quick     # 2 rounds of 8 s windows, under 90 s
    python -m benchmarks.events             # 3 rounds of 20 s windows
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

if __package__ in (None, ""):  # run as a script: make the project's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _fleet as f
from benchmarks import _harness as h

PROBE_RATE = 10.0


def serve_baseline(argv: list[str]) -> None:
    """``doorstep serve`` with bookings that write no domain events (the baseline)."""
    from dispatch import changes
    from dispatch import store as dispatch_store
    from doorstep import cli

    async def history_only(tx: Any, before: Any, after: Any, **kw: Any) -> None:
        await dispatch_store.add_event(
            tx,
            after.id,
            action=kw["action"],
            from_status=before.status if before is not None else None,
            to_status=after.status,
            actor=kw["actor"],
            actor_id=kw["actor_id"],
            reason=kw["reason"],
            data=kw.get("data"),
            at=kw["at"],
        )

    changes.record = history_only
    sys.argv = ["doorstep", *argv]
    cli.main()


def _server(
    name: str, port: int, env: dict[str, Any], baseline: bool, params: Path | None = None
) -> h.Server:
    db: h.BenchDatabase = env["db"]
    run_env = {
        **os.environ,
        "REDIS_URL": env["redis_url"],
        "DATABASE_URL": db.url,
        "DOORSTEP_DATA_DIR": str(env["work_dir"] / f"data-{name}"),
        "DOORSTEP_SECRET_KEY": env["secret"],
        "DOORSTEP_REDIS_PREFIX": db.prefix,
        "DOORSTEP_PARAMS": str(params or env["params"]),
        "DOORSTEP_LOG_LEVEL": "WARNING",
        **h.METRICS_ENV,  # /metrics answers only to its token
    }
    argv = [sys.executable, "-m", "doorstep", "serve", "--port", str(port)]
    if baseline:
        argv = [sys.executable, "-m", "benchmarks.events", "--serve-baseline", "serve"]
        argv += ["--port", str(port)]
    return h.Server(name, argv, run_env, env["work_dir"])


def _ms(values_s: list[float]) -> dict[str, float]:
    if not values_s:
        return {}
    ordered = sorted(values_s)

    def q(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 2)

    return {
        "n": len(ordered),
        "p50": q(0.5),
        "p90": q(0.9),
        "p99": q(0.99),
        "max": round(ordered[-1] * 1000, 2),
        "mean": round(sum(ordered) / len(ordered) * 1000, 2),
    }


class Feed:
    """A dispatcher's city feed: when each order's ``confirmed`` status arrived."""

    def __init__(self) -> None:
        self.confirmed_at: dict[int, float] = {}
        self.task: asyncio.Task[None] | None = None

    async def run(self, port: int, city_id: str, token: str) -> None:
        from websockets.asyncio.client import connect

        async with connect(
            f"ws://127.0.0.1:{port}/v1/ws/cities/{city_id}/feed",
            additional_headers={"Authorization": f"Bearer {token}"},
            max_size=2**24,
        ) as ws:
            async for raw in ws:
                msg = orjson.loads(raw)
                if msg.get("type") == "order" and msg.get("status") == "confirmed":
                    self.confirmed_at.setdefault(int(msg["order_id"]), time.monotonic())


async def _book_window(
    port: int,
    customers: list[tuple[int, str]],
    cursor: list[int],
    *,
    setup: dict[str, Any],
    rate: float,
    seconds: float,
    answered: dict[int, float],
) -> dict[str, Any]:
    """Book at ``rate``/s for ``seconds`` (open loop); latencies and statuses."""
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    points = setup["points"]
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30
    ) as client:

        async def one(i: int) -> None:
            _user, token = customers[i % len(customers)]
            lat, lng = points[i % len(points)]
            t0 = time.monotonic()
            try:
                r = await client.post(
                    "/v1/orders",
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Idempotency-Key": secrets.token_hex(8),
                    },
                    json={
                        "service_code": setup["service"],
                        "lat": lat,
                        "lng": lng,
                        "address_detail": "压测",
                    },
                )
                key = str(r.status_code)
                if r.status_code == 201:
                    answered[int(r.json()["id"])] = time.monotonic()
            except httpx.HTTPError as e:
                key = type(e).__name__
            latencies.append(time.monotonic() - t0)
            statuses[key] = statuses.get(key, 0) + 1

        tasks = []
        start = time.monotonic()
        n = int(rate * seconds)
        for k in range(n):
            due = start + k / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(cursor[0])))
            cursor[0] += 1
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - start
    return {"latencies": latencies, "statuses": statuses, "elapsed_s": elapsed, "sent": n}


async def _probes(url: str, seconds: float, sent: list[int]) -> None:
    """Append probe events at PROBE_RATE from another connection."""
    from doorstep.db import create_pool
    from events import probe

    pool = await create_pool(url, min_size=1, max_size=1)
    try:
        start = time.monotonic()
        k = 0
        while time.monotonic() - start < seconds:
            async with pool.acquire() as conn, conn.transaction():
                sent.append(await probe.send(conn, f"bench-{secrets.token_hex(4)}"))
            k += 1
            delay = start + k / PROBE_RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
    finally:
        await pool.close()


async def _metrics(port: int) -> dict[str, float]:
    status, body = await h.http_get(port, "/metrics", timeout_s=10.0)
    if status != 200:  # never report 0 consumed and no lag for a refused scrape
        raise RuntimeError(f"GET /metrics: {status}")
    out: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line.startswith("doorstep_events_"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


async def orchestrate(
    args: argparse.Namespace, redis_url: str, database_url: str
) -> dict[str, Any]:
    from accounts.passwords import hash_password
    from doorstep.db import create_pool
    from doorstep.embedded import free_port

    quick = args.quick
    rounds = args.rounds or (2 if quick else 3)
    window_s = args.window or (8.0 if quick else 20.0)
    if args.wait_quiet > 0:
        await f.wait_quiet(args.wait_quiet)
    db = h.BenchDatabase(database_url, redis_url)
    await db.create()
    h.progress(f"database {db.name}; rate {args.rate}/s, {rounds} rounds of {window_s} s windows")
    work = Path(tempfile.mkdtemp(prefix="doorstep-bench-events-"))
    servers: list[h.Server] = []
    feed_task: asyncio.Task[None] | None = None
    try:
        secret = h.bench_secret()  # before the accounts: their phones are sealed with its keys
        city_id = await f.create_city(db)
        pool = await create_pool(db.url, min_size=1, max_size=2)
        async with pool.acquire() as conn:
            ids = await f.create_customers(conn, 2000, password_hash=await hash_password("x" * 12))
            service = await f.create_service(conn)
            staff = await conn.fetchval(
                "INSERT INTO users (phone, phone_bidx, name, password_hash, roles) "
                "VALUES ($1, $2, '压测调度', 'x', ARRAY['dispatcher']) RETURNING id",
                *h.sealed_phone(f"177{secrets.randbelow(10**8):08d}"),
            )
        customers = list(zip(ids, f.tokens(ids, "customer", key=secret), strict=True))
        [dispatcher] = f.tokens([int(staff)], "dispatcher", key=secret)
        setup = {
            "service": service,
            "points": [[p[0] + 0.0001, p[1] + 0.0001] for p in f.road_points(500)],
        }
        params = work / "params.toml"
        common = "[engine]\nenabled = false\n\n[gc]\nfreeze = true\n"
        apart = args.relay == "apart"
        # Relay apart: the servers that take bookings run no relay ([events] in_process =
        # false); a third server, sent no requests, holds the sequencer and every consumer.
        gather = "" if args.gather_s is None else f"gather_s = {args.gather_s}\n"
        params.write_text(
            common + "\n[events]\n" + ("in_process = false\n" if apart else "") + gather
        )
        relay_params = work / "params-relay.toml"
        relay_params.write_text(common + ("\n[events]\n" + gather if gather else ""))
        env = {
            "db": db,
            "redis_url": redis_url,
            "secret": secret,
            "params": params,
            "work_dir": work,
        }
        ports = {"events": free_port(), "baseline": free_port()}
        if apart:
            ports["relay"] = free_port()
        for name, port in ports.items():
            server = _server(
                name,
                port,
                env,
                baseline=name == "baseline",
                params=relay_params if name == "relay" else None,
            )
            servers.append(server)
            await server.wait_http(port, "/readyz", timeout_s=120)
        h.progress(f"servers ready: {', '.join(ports)}")
        relay_port = ports["relay" if apart else "events"]  # where the consumers' metrics are
        feed = Feed()
        # The dispatcher's feed socket is held by the relay's server when it runs apart (any
        # server forwards the city's pushes), so the booking server's time is the bookings'.
        feed_task = asyncio.create_task(feed.run(relay_port, city_id, dispatcher))
        await asyncio.sleep(0.5)

        cursor = [0]
        answered: dict[int, float] = {}
        by_mode: dict[str, list[float]] = {"events": [], "baseline": []}
        statuses: dict[str, dict[str, int]] = {"events": {}, "baseline": {}}
        probes: list[int] = []
        written = 0
        consumed = 0.0
        event_seconds = 0.0
        lags: dict[str, dict[str, float]] = {}
        # The machine is shared: the 1-minute load average at each window's end (2 cores).
        load: dict[str, list[float]] = {"events": [], "baseline": []}
        # Warm both servers up (connections, prepared statements, caches) with a short
        # window each, not measured: the first window of a fresh server is slower.
        for mode in ("events", "baseline"):
            await _book_window(
                ports[mode],
                customers,
                cursor,
                setup=setup,
                rate=args.rate,
                seconds=min(4.0, window_s / 2),
                answered={},
            )
        await asyncio.sleep(1.0)
        for r in range(rounds):
            # Alternate which mode goes first, so that neither always follows the other.
            for mode in ("events", "baseline") if r % 2 == 0 else ("baseline", "events"):
                port = ports[mode]
                before = await _metrics(relay_port)
                head0 = await pool.fetchval("SELECT count(*) FROM events")
                probe_task = (
                    asyncio.create_task(_probes(db.url, window_s, probes))
                    if mode == "events"
                    else None
                )
                got = await _book_window(
                    port,
                    customers,
                    cursor,
                    setup=setup,
                    rate=args.rate,
                    seconds=window_s,
                    answered=answered if mode == "events" else {},
                )
                if probe_task is not None:
                    await probe_task
                load[mode].append(round(os.getloadavg()[0], 2))
                by_mode[mode] += got["latencies"]
                for k, v in got["statuses"].items():
                    statuses[mode][k] = statuses[mode].get(k, 0) + v
                if mode == "events":
                    await asyncio.sleep(1.0)  # let the window's events drain
                    after = await _metrics(relay_port)
                    written += int(await pool.fetchval("SELECT count(*) FROM events")) - int(head0)
                    consumed += sum(
                        v - before.get(k, 0.0)
                        for k, v in after.items()
                        if k.startswith(
                            ("doorstep_events_handled{", "doorstep_events_handled_total{")
                        )
                    )
                    event_seconds += got["elapsed_s"]
                    for k, v in after.items():
                        if k.startswith("doorstep_events_lag_seconds{"):
                            lags.setdefault(k, {})[str(r)] = v
                lat = sorted(got["latencies"])
                h.progress(
                    f"round {r + 1} {mode:8s}: {len(lat)} bookings, p50 "
                    f"{lat[len(lat) // 2] * 1000:.1f} ms, p99 "
                    f"{lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000:.1f} ms, {got['statuses']}, "
                    f"load {load[mode][-1]}"
                )
        await asyncio.sleep(2.0)
        feed_lag = [
            max(0.0, feed.confirmed_at[o] - t)
            for o, t in answered.items()
            if o in feed.confirmed_at
        ]
        lost_orders = [o for o in answered if o not in feed.confirmed_at]
        rows = await pool.fetch(
            "SELECT event_id, count(*) AS n FROM event_probes WHERE event_id = ANY($1) GROUP BY 1",
            probes,
        )
        handled = {r["event_id"]: r["n"] for r in rows}
        lost_probes = [p for p in probes if p not in handled]
        duplicated = sum(1 for n in handled.values() if n > 1)
        relay_lag: dict[str, dict[str, float]] = {}
        for name, per_round in lags.items():
            consumer = name.split('consumer="')[1].split('"')[0]
            quantile = name.split('quantile="')[1].split('"')[0]
            label = {"0.5": "p50", "0.99": "p99", "1": "max"}[quantile]
            relay_lag.setdefault(consumer, {})[label] = round(max(per_round.values()) * 1000, 2)
        await pool.close()
        ev, base = _ms(by_mode["events"]), _ms(by_mode["baseline"])
        return {
            "benchmark": "events",
            "machine": h.machine(),
            "source": h.source_revision(),
            "rate_per_s": args.rate,
            "relay": args.relay,
            "rounds": rounds,
            "window_s": window_s,
            "load_avg_1m": load,
            "booking_ms": {"events": ev, "baseline": base},
            "booking_ratio": {
                k: round(ev[k] / base[k], 3) for k in ("p50", "p99", "mean") if base.get(k)
            },
            "statuses": statuses,
            "events_written_per_s": round(written / max(event_seconds, 1e-9), 1),
            "events_consumed_per_s": round(consumed / max(event_seconds, 1e-9), 1),
            "lag_ms": relay_lag,
            "feed_lag_ms": _ms(feed_lag),
            "lost": len(lost_orders) + len(lost_probes),
            "lost_detail": {"orders": lost_orders[:20], "probes": lost_probes[:20]},
            "duplicated_effects": duplicated,
            "targets": {
                "feed_lag_p99_ms_max": 200,
                "booking_ratio_mean_max": 1.2,
                "lost": 0,
                "duplicated_effects": 0,
            },
        }
    finally:
        if feed_task is not None:
            feed_task.cancel()
            with contextlib.suppress(BaseException):
                await feed_task
        for server in servers:
            server.stop()
        await db.drop()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve-baseline"]:
        serve_baseline(argv[1:])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 rounds of 8 s windows")
    p.add_argument("--rate", type=float, default=50.0, help="bookings per second (default 50)")
    p.add_argument("--rounds", type=int, default=0, help="rounds of (events, baseline) windows")
    p.add_argument("--window", type=float, default=0.0, help="seconds per window")
    p.add_argument(
        "--relay",
        choices=("apart", "in-server"),
        default="apart",
        help="apart (default): a third server runs the relay and the booking servers none; "
        "in-server: each booking server runs its own relay (they race for the roles)",
    )
    p.add_argument(
        "--gather-s",
        type=float,
        default=None,
        help="[events] gather_s for the servers (default: the servers' own default)",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help="first wait up to S seconds for other work to use < 0.25 cores",
    )
    args = p.parse_args(argv)
    with h.store_urls() as (redis_url, database_url):
        result = asyncio.run(orchestrate(args, redis_url, database_url))
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")


if __name__ == "__main__":
    main()
