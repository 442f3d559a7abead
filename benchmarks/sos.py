"""SOS alert latency end to end while the city runs: an ``sos`` frame sent on a worker's
socket → the ``safety_alert`` on the dispatcher's city feed. Claim: p99 ≤ 500 ms.

One ``doorstep serve`` (engine on, the shipped params) on a fresh database seeded with
the demo city (``doorstep seed --demo``), and the demo's live city beside it
(``python -m simulations.demo``: 100 simulated workers streaming fixes over their
sockets, an order every few seconds, dispatched, driven to and served). After a
warm-up, ``--probes`` extra workers (their own sockets, one fix each on a Futian road)
(once ``--city-workers`` of the city's workers move on the feed) raise SOS in turn: each sends ``{"type": "sos"}``, the time is taken when the alert
reaches a dispatcher's feed socket (``/v1/ws/cities/shenzhen/feed``), and a dispatcher
resolves it over HTTP so that the worker's next SOS opens a new alert. Each probe waits
``--gap`` seconds between its SOS. Also reported: the socket's own ``sos_result``
round trip, the city's activity during the window (feed position messages, orders
booked), and the load average (2 shared cores).

Usage::

    python -m benchmarks.sos --quick   # warm-up until 90 workers move (≤ 120 s), 30 s of SOS
    python -m benchmarks.sos           # the same (≤ 180 s), 120 s of SOS
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _fleet as f
from benchmarks import _harness as h

CITY = "shenzhen"
TARGET_P99_MS = 500.0


class Feed:
    """The dispatcher's feed: when each probe's alert arrived, and the city's activity."""

    def __init__(self) -> None:
        self.waiters: dict[int, asyncio.Future[tuple[float, int]]] = {}
        self.positions = 0
        self.alerts = 0
        self.seen: set[int] = set()  # workers whose positions the feed carried

    async def run(self, ws: ClientConnection) -> None:
        async for raw in ws:
            now = time.perf_counter()
            msg = orjson.loads(raw)
            kind = msg.get("type")
            if kind == "positions":
                workers = msg.get("workers", ())
                self.positions += len(workers)
                self.seen.update(int(w["id"]) for w in workers)
            elif kind == "safety_alert" and msg.get("event") == "raised":
                self.alerts += 1
                subject = msg["alert"]["subject_id"]
                fut = self.waiters.pop(subject, None)
                if fut is not None and not fut.done():
                    fut.set_result((now, msg["alert"]["id"]))


async def _probe(
    i: int,
    port: int,
    token: str,
    worker_id: int,
    point: tuple[float, float],
    feed: Feed,
    http: httpx.AsyncClient,
    dispatcher: str,
    until: float,
    gap_s: float,
    out: dict[str, list[float]],
) -> None:
    ws = await connect(
        f"ws://127.0.0.1:{port}/v1/ws/worker",
        additional_headers={"Authorization": f"Bearer {token}"},
    )
    hello = orjson.loads(await ws.recv())
    seq = int(hello.get("resume_seq", 0)) + 1
    now_ms = int(time.time() * 1000)
    await ws.send(
        orjson.dumps(
            {
                "type": "fix",
                "seq": seq,
                "ts_ms": now_ms,
                "lat": point[0],
                "lng": point[1],
                "accuracy_m": 8.0,
                "ack": True,
            }
        ).decode()
    )
    await asyncio.sleep(gap_s * i / 10)  # spread the probes
    loop = asyncio.get_running_loop()
    while time.perf_counter() < until:
        # The baseline, on the same socket just before: a ping's round trip (no stores).
        t_ping = time.perf_counter()
        await ws.send('{"type":"ping"}')
        while orjson.loads(await asyncio.wait_for(ws.recv(), 10)).get("type") != "pong":
            pass
        out["ping_ms"].append((time.perf_counter() - t_ping) * 1000)
        fut: asyncio.Future[tuple[float, int]] = loop.create_future()
        feed.waiters[worker_id] = fut
        t0 = time.perf_counter()
        await ws.send(b'{"type":"sos","note":"bench"}'.decode())
        got_result = False
        while not got_result:
            msg = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
            if msg.get("type") == "sos_result":
                got_result = True
                out["socket_ms"].append((time.perf_counter() - t0) * 1000)
                if not msg.get("ok"):
                    out["errors"].append(1.0)
        try:
            t1, alert_id = await asyncio.wait_for(fut, 10)
        except TimeoutError:
            out["lost"].append(1.0)
            feed.waiters.pop(worker_id, None)
            continue
        out["feed_ms"].append((t1 - t0) * 1000)
        for attempt in range(3):  # a keep-alive connection the server just closed
            try:
                r = await http.post(
                    f"/v1/safety/alerts/{alert_id}/resolve",
                    headers={"Authorization": f"Bearer {dispatcher}"},
                    json={"resolution": "benchmark"},
                )
            except httpx.TransportError:
                if attempt == 2:
                    raise
                continue
            if r.status_code != 200:
                out["errors"].append(1.0)
            break
        await asyncio.sleep(gap_s)
    await ws.close()


def _ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    s = sorted(values)

    def q(p: float) -> float:
        return round(s[min(len(s) - 1, int(p * len(s)))], 1)

    return {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": round(s[-1], 1), "n": len(s)}


async def orchestrate(
    args: argparse.Namespace, redis_url: str, database_url: str
) -> dict[str, Any]:
    from accounts.passwords import hash_password
    from accounts.tokens import issue
    from doorstep.db import create_pool
    from doorstep.embedded import free_port
    from privacy import crypto
    from seeding.load import DISPATCHER_PHONE

    warmup = args.warmup or (120.0 if args.quick else 180.0)
    window = args.window or (30.0 if args.quick else 120.0)
    db = h.BenchDatabase(database_url, redis_url)
    await db.create()
    work = Path(tempfile.mkdtemp(prefix="doorstep-bench-sos-"))
    secret = "b" * 48
    crypto.install(crypto.DataKeys.derived(secret))  # the servers' keys (docs/privacy.md)
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": db.url,
        "DOORSTEP_DATA_DIR": str(work / "data"),
        "DOORSTEP_SECRET_KEY": secret,
        "DOORSTEP_REDIS_PREFIX": db.prefix,
        "DOORSTEP_LOG_LEVEL": "WARNING",
        "DOORSTEP_RATE_LIMIT_EXEMPT": "127.0.0.1",
        **h.METRICS_ENV,
    }
    env.pop("DOORSTEP_PARAMS", None)  # the shipped defaults: engine on
    server: h.Server | None = None
    city: subprocess.Popen[bytes] | None = None
    try:
        h.progress(f"database {db.name}: seeding the demo city")
        subprocess.run(  # noqa: ASYNC221 - nothing else runs yet
            [sys.executable, "-m", "doorstep", "seed", "--demo"],
            env=env,
            cwd=h.REPO,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        port = free_port()
        server = h.Server(
            "server", [sys.executable, "-m", "doorstep", "serve", "--port", str(port)], env, work
        )
        await server.wait_http(port, "/readyz", timeout_s=120)
        city_log = (work / "city.log").open("wb")
        city = subprocess.Popen(  # noqa: ASYNC220 - starting it does not wait
            [sys.executable, "-m", "simulations.demo", f"http://127.0.0.1:{port}"],
            env=env,
            cwd=h.REPO,
            stdin=subprocess.DEVNULL,
            stdout=city_log,
            stderr=subprocess.STDOUT,
            preexec_fn=h.child_setup,
        )
        pool = await create_pool(db.url, min_size=1, max_size=2)
        async with pool.acquire() as conn:
            ids = await h.create_workers(
                conn,
                args.probes,
                city_id=CITY,
                password_hash=await hash_password("x" * 12),
                home=(22.54, 114.05),
            )
            staff = int(
                await conn.fetchval(
                    "SELECT id FROM users WHERE phone_bidx = $1",
                    crypto.blind("phone", DISPATCHER_PHONE),
                )
            )
        tokens = h.mint_access_tokens(ids, key=secret, ttl_s=4 * 3600)
        dispatcher = issue(
            user_id=staff,
            roles=("dispatcher",),
            typ="access",
            now=int(time.time()),
            ttl_s=4 * 3600,
            key=secret,
        )[0]
        points = [(p[0], p[1]) for p in f.road_points(args.probes)]
        h.progress(f"server on {port}, the city running; warming up {warmup:.0f} s")
        feed_ws = await connect(
            f"ws://127.0.0.1:{port}/v1/ws/cities/{CITY}/feed",
            additional_headers={"Authorization": f"Bearer {dispatcher}"},
        )
        snapshot = orjson.loads(await feed_ws.recv())
        feed = Feed()
        feed_task = asyncio.create_task(feed.run(feed_ws))
        deadline = time.monotonic() + warmup
        while time.monotonic() < deadline and len(feed.seen) < args.city_workers:  # noqa: ASYNC110
            await asyncio.sleep(1.0)  # the city's workers come online (accounts made by API)
        await asyncio.sleep(5.0)
        online = len(feed.seen)  # workers whose positions reached the console
        orders0 = int(await pool.fetchval("SELECT count(*) FROM orders"))
        pos0 = feed.positions
        h.progress(f"{online} workers online; SOS for {window:.0f} s from {args.probes} probes")
        out: dict[str, list[float]] = {
            "feed_ms": [],
            "socket_ms": [],
            "ping_ms": [],
            "lost": [],
            "errors": [],
        }
        until = time.perf_counter() + window
        t_start = time.perf_counter()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            await asyncio.gather(
                *(
                    _probe(
                        i,
                        port,
                        tokens[i],
                        ids[i],
                        points[i],
                        feed,
                        http,
                        dispatcher,
                        until,
                        args.gap,
                        out,
                    )
                    for i in range(args.probes)
                )
            )
        elapsed = time.perf_counter() - t_start
        orders = int(await pool.fetchval("SELECT count(*) FROM orders")) - orders0
        load = round(os.getloadavg()[0], 2)
        feed_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await feed_task
        await feed_ws.close()
        await pool.close()
        lat = _ms(out["feed_ms"])
        return {
            "benchmark": "sos",
            "quick": args.quick,
            "claim": "SOS frame on a worker socket -> safety_alert on the dispatcher feed, p99 <= 500 ms while the city runs",
            "sos_to_console_ms": lat,
            "sos_result_on_socket_ms": _ms(out["socket_ms"]),
            "baseline_ping_pong_ms": _ms(out["ping_ms"]),
            "p50_ratio_to_ping": round(lat["p50"] / max(0.1, _ms(out["ping_ms"])["p50"]), 1)
            if lat and out["ping_ms"]
            else None,
            "lost": len(out["lost"]),
            "errors": len(out["errors"]),
            "target_p99_ms": TARGET_P99_MS,
            "target_met": bool(lat) and lat["p99"] <= TARGET_P99_MS and not out["lost"],
            "city": {
                "workers_moving_on_the_feed_in_warmup": online,
                "workers_moving_on_the_feed_overall": len(feed.seen),
                "snapshot_workers": len(snapshot.get("workers", [])),
                "feed_positions_per_s": round((feed.positions - pos0) / elapsed, 1),
                "orders_booked_in_window": orders,
            },
            "probes": args.probes,
            "gap_s": args.gap,
            "window_s": round(elapsed, 1),
            "load_avg_1m_at_end": load,
            "machine": h.machine(),
        }
    finally:
        if city is not None and city.poll() is None:
            city.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                city.wait(10)
            if city.poll() is None:
                city.kill()
        if server is not None:
            server.stop()
        await db.drop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="30 s of SOS (default 120 s)")
    p.add_argument("--probes", type=int, default=10, help="workers raising SOS (default 10)")
    p.add_argument("--gap", type=float, default=1.0, help="seconds between a probe's SOS")
    p.add_argument("--warmup", type=float, default=0.0, help="at most this long for the city")
    p.add_argument(
        "--city-workers", type=int, default=90, help="start once this many move on the feed"
    )
    p.add_argument("--window", type=float, default=0.0)
    args = p.parse_args(argv)
    h.raise_nofile()
    with h.store_urls() as (redis_url, database_url):
        result = asyncio.run(orchestrate(args, redis_url, database_url))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
