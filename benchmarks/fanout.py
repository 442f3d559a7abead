"""Fan-out benchmark: M customers watching M active orders across two server processes.

M workers hold one ``en_route`` order each (bulk-inserted, distinct workers and
customers, all in one city on the bundled Futian road graph, so every ETA is a road
ETA). Two ``doorstep serve`` processes share the database, Redis, key prefix and
secret: the workers' sockets connect to A, the customers' order sockets to B, from two
load-generator processes (one holds the worker sockets, one the order sockets). Each
worker sends one fix every ``interval`` seconds, staggered evenly; the fix's ``ts_ms``
is its send time. The customer's process stamps each ``position`` frame on arrival.

Latency = arrival of the ``position`` frame at the customer − the moment the worker's
process sent the fix (both ``time.time()`` on the same machine; joined on (worker, seq)),
and also arrival − ``ts_ms`` as the issue words it (millisecond resolution). Reported:
p50/p90/p99/max, frames/s delivered, fixes that never arrived, the servers' own
counters (``/metrics``), every process's CPU, and the servers' garbage-collector pauses
(the servers run ``doorstep.cli`` under a ``gc.callbacks`` probe, ``benchmarks._fleet``).

Baseline in the same run, after each Doorstep window, for the same message rate and
size: raw Redis ``PUBLISH`` (from the worker generator's process, one pipeline per send
tick) → one redis-py asyncio subscriber subscribed to M other channels (B hears none of
them) and reading them the way Doorstep's hub does (``get_message`` in a loop). It is
the floor of cross-process fan-out through Redis pub/sub with this client.

Usage::

    python -m benchmarks.fanout --quick     # 1k watched orders, under 60 s
    python -m benchmarks.fanout             # 1k every 5 s; 10k every 10 s and every 5 s
    python -m benchmarks.fanout --server-gc plain    # the servers with CPython's own GC

JSON on stdout, progress on stderr. Internal modes: ``--worker-gen`` and
``--customer-gen`` (the load generators, driven over stdin).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import secrets
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

if __package__ in (None, ""):  # run as a script: make the project's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _fleet as f
from benchmarks import _harness as h

WORKER_PATH = "/v1/ws/worker"
STEP_DEG = 0.00018  # ~20 m: beyond the 12 m jitter clamp, far below an impossible speed
CONNECT_BATCH = 50  # concurrent handshakes per generator (the servers' Redis pool is 100)
TARGET_P99_MS = 25.0
TARGET_ORDERS = 10_000
DISTURBED_CORES = 0.3  # other work above this during a window: measure it again
SLOW_US = 25_000  # frames slower than the target: checked against the servers' GC pauses
GC_PAUSE_MS = 10.0  # server GC pauses this long or longer count as overlapping
A_COUNTERS = ("doorstep_fixes_accepted", "doorstep_fixes_indexed", "doorstep_ingest_flushes")
B_COUNTERS = ("doorstep_live_delivered", "doorstep_live_dropped", "doorstep_live_reconnects")


def _ws_connect(url: str, token: str) -> Any:
    from websockets.asyncio.client import connect

    return connect(
        url,
        additional_headers={"Authorization": f"Bearer {token}"},
        compression=None,  # as the ingest benchmark: no permessage-deflate
        ping_interval=None,  # the server pings (uvicorn: every 20 s)
        open_timeout=120,
        close_timeout=2,
        max_queue=256,
    )


async def _connect_all(
    items: list[tuple[int, Any]],
    one: Any,
    *,
    batch: int,
) -> dict[str, Any]:
    """Run ``one(index, item)`` ``batch`` at a time; retry the failures 5 at a time."""
    failed: collections.Counter[str] = collections.Counter()

    async def attempt(i: int, item: Any) -> bool:
        try:
            await one(i, item)
        except Exception as e:
            failed[f"{type(e).__name__}: {e}"[:120]] += 1
            return False
        return True

    async def wave(todo: list[tuple[int, Any]], size: int) -> list[tuple[int, Any]]:
        again = []
        for lo in range(0, len(todo), size):
            chunk = todo[lo : lo + size]
            ok = await asyncio.gather(*(attempt(i, it) for i, it in chunk))
            again += [c for c, good in zip(chunk, ok, strict=True) if not good]
        return again

    t = time.perf_counter()
    retry = await wave(items, batch)
    still = await wave(retry, 5)
    return {
        "failed_first_try": dict(failed),
        "retried": len(retry),
        "failed": len(still),
        "seconds": round(time.perf_counter() - t, 2),
    }


# --- the worker generator: M worker sockets, fixes on a staggered schedule ------------


@dataclass(slots=True)
class _Worker:
    ws: Any
    index: int
    worker_id: int
    seq: int
    lat: float
    lng: float
    inflight: dict[int, float] = field(default_factory=dict)
    closed: bool = False


class WorkerGen:
    """Holds the worker sockets (to server A); sends fixes; times acks."""

    def __init__(self) -> None:
        self.conns: list[_Worker] = []
        self.readers: list[asyncio.Task[None]] = []
        self.ack_us: list[int] = []
        self.acked = 0
        self.accepted = 0
        self.rejected: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.other: collections.Counter[str] = collections.Counter()

    async def connect(self, cmd: dict[str, Any]) -> dict[str, Any]:
        tokens: list[list[Any]] = await asyncio.to_thread(f.read_json, cmd["tokens"])
        first, end = cmd["first"], cmd["end"]

        async def one(i: int, item: list[Any]) -> None:
            token, lat, lng = str(item[0]), float(item[1]), float(item[2])
            ws = await _ws_connect(cmd["url"], token)
            try:
                hello = orjson.loads(await asyncio.wait_for(ws.recv(), 60))
            except BaseException:
                await ws.close()
                raise
            if hello.get("type") != "hello":
                await ws.close()
                raise RuntimeError(f"first frame {hello.get('type')}: {hello.get('code')}")
            c = _Worker(ws, i, int(hello["worker_id"]), int(hello["resume_seq"]), lat, lng)
            self.conns.append(c)
            self.readers.append(asyncio.create_task(self._reader(c)))

        out = await _connect_all(
            [(i, tokens[i]) for i in range(first, end)], one, batch=cmd["batch"]
        )
        gc.collect()
        gc.freeze()  # the sockets live for the whole run: keep them out of every GC pass
        self.conns.sort(key=lambda c: c.index)
        out["connected"] = len(self.conns)
        return out

    async def _reader(self, c: _Worker) -> None:
        from websockets.exceptions import ConnectionClosed

        perf = time.perf_counter
        try:
            async for raw in c.ws:
                now = perf()
                msg = orjson.loads(raw)
                kind = msg.get("type")
                if kind == "ack":
                    seq = int(msg["seq"])
                    self.acked += 1
                    self.accepted += int(msg.get("accepted", 0))
                    for r in msg.get("rejected") or ():
                        self.rejected[str(r.get("reason"))] += 1
                    for s in [s for s in c.inflight if s <= seq]:
                        self.ack_us.append(int((now - c.inflight.pop(s)) * 1e6))
                elif kind == "error":
                    self.errors[str(msg.get("code"))] += 1
                else:
                    self.other[str(kind)] += 1
        except ConnectionClosed:
            pass
        c.closed = True

    async def drive(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Each socket sends one fix every ``interval_s``, evenly staggered, for ``seconds``."""
        interval, seconds, record = cmd["interval_s"], cmd["seconds"], cmd["record"]
        conns = [c for c in self.conns if not c.closed]
        n = len(conns)
        gap = interval / max(n, 1)
        self.ack_us, self.acked, self.accepted = [], 0, 0
        self.rejected.clear()
        self.errors.clear()
        sends: list[tuple[int, int, int]] = []
        late_us: list[int] = []
        perf, wall = time.perf_counter, time.time
        gc.disable()  # no collector pause of the generator inside a window
        cpu0 = time.process_time()
        t0 = perf()
        j = 0
        while n:
            now = perf()
            if now - t0 >= seconds:
                break
            due = int((now - t0) / gap) + 1
            while j < due:
                c = conns[j % n]
                late_us.append(int((perf() - (t0 + j * gap)) * 1e6))
                j += 1
                if c.closed:
                    continue
                c.seq += 1
                lat = c.lat + (STEP_DEG if c.seq & 1 else 0.0)
                t_send = wall()
                data = orjson.dumps(
                    {
                        "type": "fixes",
                        "fixes": [
                            {
                                "seq": c.seq,
                                "ts_ms": int(t_send * 1000),
                                "lat": lat,
                                "lng": c.lng,
                                "accuracy_m": 5.0,
                            }
                        ],
                    }
                )
                c.inflight[c.seq] = perf()
                await c.ws.send(data, text=True)
                if record:
                    sends.append((c.worker_id, c.seq, int(t_send * 1e6)))
            await asyncio.sleep(max(0.0, t0 + j * gap - perf()))
        elapsed = perf() - t0
        cpu = time.process_time() - cpu0
        gc.enable()
        deadline = perf() + cmd.get("drain_s", 5.0)
        while any(c.inflight for c in conns if not c.closed) and perf() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        unacked = sum(len(c.inflight) for c in conns)
        for c in conns:
            c.inflight.clear()
        return {
            "sockets": n,
            "fixes_sent": j,
            "elapsed_s": round(elapsed, 3),
            "generator_cpu_s": round(cpu, 3),
            "acked_frames": self.acked,
            "accepted_fixes": self.accepted,
            "rejected": dict(self.rejected),
            "errors": dict(self.errors),
            "unacked_after_drain": unacked,
            "closed_sockets": sum(c.closed for c in conns),
            "ack_us": self.ack_us,
            "send_lateness_us": h.percentiles(late_us),
            "sends": sends,
        }

    async def close(self, cmd: dict[str, Any]) -> dict[str, Any]:
        await asyncio.gather(*(c.ws.close() for c in self.conns), return_exceptions=True)
        for t in self.readers:
            t.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        closed = len(self.conns)
        self.conns, self.readers = [], []
        return {"closed": closed, "other_frames": dict(self.other)}

    async def publish(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Baseline: PUBLISH ``size``-byte messages on ``channels`` on the same schedule."""
        from redis.asyncio import Redis

        channels: list[str] = cmd["channels"]
        interval, seconds, size = cmd["interval_s"], cmd["seconds"], cmd["size"]
        n = len(channels)
        gap = interval / n
        redis = Redis.from_url(cmd["redis_url"])
        perf, wall = time.perf_counter, time.time
        template = orjson.dumps({"type": "position", "k": 0, "seq": 0, "t_us": 0, "pad": ""})
        pad_len = max(0, size - len(template) - 20)
        pad = "x" * pad_len
        sent = 0
        receivers = 0
        gc.disable()
        try:
            cpu0 = time.process_time()
            t0 = perf()
            j = 0
            while True:
                now = perf()
                if now - t0 >= seconds:
                    break
                due = int((now - t0) / gap) + 1
                if j < due:
                    async with redis.pipeline(transaction=False) as pipe:
                        while j < due:
                            msg = orjson.dumps(
                                {
                                    "type": "position",
                                    "k": j % n,
                                    "seq": j,
                                    "t_us": int(wall() * 1e6),
                                    "pad": pad,
                                }
                            )
                            pipe.publish(channels[j % n], msg)
                            j += 1
                        got = await pipe.execute()
                    receivers += sum(int(x) for x in got)
                    sent = j
                await asyncio.sleep(max(0.0, t0 + j * gap - perf()))
            elapsed = perf() - t0
            cpu = time.process_time() - cpu0
        finally:
            gc.enable()
            await redis.aclose()
        return {
            "published": sent,
            "receivers": receivers,
            "elapsed_s": round(elapsed, 3),
            "publisher_cpu_s": round(cpu, 3),
            "message_bytes": len(template) + pad_len + 16,
        }


# --- the customer generator: M order sockets (to server B), or the baseline subscriber --


@dataclass(slots=True)
class _Watcher:
    ws: Any
    order_id: int
    worker_id: int


class CustomerGen:
    """Holds the order sockets; stamps each ``position`` frame on arrival."""

    def __init__(self) -> None:
        self.conns: list[_Watcher] = []
        self.readers: list[asyncio.Task[None]] = []
        self.recording = False
        self.records: list[tuple[int, int, int, int]] = []  # worker, seq, ts_ms, recv_us
        self.frames: collections.Counter[str] = collections.Counter()
        self.eta_methods: collections.Counter[str] = collections.Counter()
        self.bytes = 0
        self.snapshot: collections.Counter[str] = collections.Counter()
        self._sub: Any = None
        self._sub_task: asyncio.Task[None] | None = None
        self._sub_lat: list[int] = []
        self._sub_count = 0

    async def connect(self, cmd: dict[str, Any]) -> dict[str, Any]:
        items: list[list[Any]] = await asyncio.to_thread(f.read_json, cmd["items"])
        first, end = cmd["first"], cmd["end"]
        base = cmd["url"]

        async def one(i: int, item: list[Any]) -> None:
            order_id, token = int(item[0]), str(item[1])
            ws = await _ws_connect(f"{base}/{order_id}", token)
            try:
                snap = orjson.loads(await asyncio.wait_for(ws.recv(), 60))
            except BaseException:
                await ws.close()
                raise
            if snap.get("type") != "snapshot":
                await ws.close()
                raise RuntimeError(f"first frame {snap.get('type')}: {snap.get('code')}")
            worker = snap.get("worker") or {}
            self.snapshot[f"status:{snap['order']['status']}"] += 1
            self.snapshot[f"eta:{(snap.get('eta') or {}).get('method')}"] += 1
            c = _Watcher(ws, order_id, int(worker.get("id") or 0))
            self.conns.append(c)
            self.readers.append(asyncio.create_task(self._reader(c)))

        out = await _connect_all(
            [(i, items[i]) for i in range(first, end)], one, batch=cmd["batch"]
        )
        gc.collect()
        gc.freeze()
        out["connected"] = len(self.conns)
        out["snapshots"] = dict(self.snapshot)
        return out

    async def _reader(self, c: _Watcher) -> None:
        from websockets.exceptions import ConnectionClosed

        wall = time.time
        try:
            async for raw in c.ws:
                t = wall()
                msg = orjson.loads(raw)
                kind = str(msg.get("type"))
                self.frames[kind] += 1
                if kind == "position" and self.recording:
                    self.records.append(
                        (int(msg["worker_id"]), int(msg["seq"]), int(msg["ts_ms"]), int(t * 1e6))
                    )
                    self.bytes += len(raw)
                    self.eta_methods[str((msg.get("eta") or {}).get("method"))] += 1
        except ConnectionClosed:
            pass

    async def record(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Start (``on``) or stop recording; stopping returns what was recorded."""
        if cmd["on"]:
            self.records, self.bytes = [], 0
            self.frames.clear()
            self.eta_methods.clear()
            self.recording = True
            gc.collect()
            gc.disable()
            return {}
        self.recording = False
        gc.enable()
        out = {
            "records": self.records,
            "frames": dict(self.frames),
            "bytes": self.bytes,
            "eta_methods": dict(self.eta_methods),
            "closed_sockets": sum(1 for t in self.readers if t.done()),
        }
        self.records = []
        return out

    async def close(self, cmd: dict[str, Any]) -> dict[str, Any]:
        await asyncio.gather(*(c.ws.close() for c in self.conns), return_exceptions=True)
        for t in self.readers:
            t.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        closed = len(self.conns)
        self.conns, self.readers = [], []
        return {"closed": closed}

    async def sub_start(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Baseline: one redis-py subscriber on ``channels``, read like Doorstep's hub."""
        from redis.asyncio import Redis

        redis = Redis.from_url(cmd["redis_url"])
        pubsub = redis.pubsub()
        channels: list[str] = cmd["channels"]
        t = time.perf_counter()
        for lo in range(0, len(channels), 1000):
            await pubsub.subscribe(*channels[lo : lo + 1000])
        # Read every confirmation before the window: none may queue ahead of a message.
        confirmed = 0
        deadline = time.perf_counter() + 60
        while confirmed < len(channels) and time.perf_counter() < deadline:
            msg = await pubsub.get_message(timeout=1.0)
            if msg is not None and msg["type"] == "subscribe":
                confirmed += 1
        self._sub = (redis, pubsub)
        self._sub_lat, self._sub_count = [], 0

        async def read() -> None:
            wall = time.time
            while True:
                msg = await pubsub.get_message(timeout=1.0)
                if msg is not None and msg["type"] == "message":
                    now_us = int(wall() * 1e6)
                    self._sub_lat.append(now_us - orjson.loads(msg["data"])["t_us"])
                    self._sub_count += 1

        self._sub_task = asyncio.create_task(read())
        gc.collect()
        gc.disable()
        return {
            "subscribed": len(channels),
            "confirmed": confirmed,
            "seconds": round(time.perf_counter() - t, 2),
        }

    async def sub_stop(self, cmd: dict[str, Any]) -> dict[str, Any]:
        assert self._sub_task is not None
        self._sub_task.cancel()
        await asyncio.gather(self._sub_task, return_exceptions=True)
        gc.enable()
        redis, pubsub = self._sub
        await pubsub.aclose()
        await redis.aclose()
        return {"received": self._sub_count, "latencies_us": self._sub_lat}


def _child_main(kind: str) -> None:
    gen: WorkerGen | CustomerGen = WorkerGen() if kind == "worker" else CustomerGen()
    ops = {
        name: getattr(gen, name)
        for name in (
            "connect",
            "drive",
            "close",
            "publish",
            "record",
            "sub_start",
            "sub_stop",
        )
        if hasattr(gen, name)
    }
    f.run_loop(f.serve_commands(ops))


# --- the orchestrator --------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Sizes, rates and windows of one run."""

    quick: bool
    orders: tuple[int, ...]
    intervals_s: tuple[float, ...]  # at every size
    extra_intervals_s: tuple[float, ...]  # at the largest size only
    warmup_s: float
    measure_s: float  # doorstep, per size and interval, split into `rounds` windows
    baseline_s: float  # raw pub/sub, likewise
    rounds: int
    drain_s: float


@dataclass
class Env:
    """What the orchestrator holds for the whole run."""

    plan: Plan
    redis_url: str
    db: h.BenchDatabase
    city_id: str
    secret: str
    work_dir: Path
    params: Path
    worker_tokens: Path
    watch_items: Path
    order_ids: list[int]
    redis_pid: int | None
    py_spy: str | None
    gc_mode: str = "policy"
    gc_logs: dict[str, Path] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    quiet_until: float = 0.0  # monotonic deadline for waiting out other work


def _ms(samples_us: list[int]) -> dict[str, float]:
    return {k: round(v / 1000, 2) for k, v in h.percentiles(samples_us).items()}


async def _setup(
    plan: Plan, redis_url: str, database_url: str, work_dir: Path, py_spy: str | None
) -> Env:
    from accounts.passwords import hash_password
    from doorstep.db import create_pool

    db = h.BenchDatabase(database_url, redis_url)
    await db.create()
    h.progress(f"database {db.name} created and migrated; Redis prefix {db.prefix}")
    try:
        secret = h.bench_secret()  # before the accounts: their phones are sealed with its keys
        city_id = await f.create_city(db)
        m = max(plan.orders)
        t = time.perf_counter()
        password_hash = await hash_password(secrets.token_urlsafe(16))
        pool = await create_pool(db.url, min_size=1, max_size=1)
        try:
            async with pool.acquire() as conn:
                workers = await h.create_workers(
                    conn, m, city_id=city_id, password_hash=password_hash, home=f.CITY_CENTER
                )
                customers = await f.create_customers(conn, m, password_hash=password_hash)
                service = await f.create_service(conn)
                points = f.road_points(m)
                order_ids = await f.create_active_orders(
                    conn,
                    city_id=city_id,
                    service_code=service,
                    customers=customers,
                    workers=workers,
                    points=points,
                )
        finally:
            await pool.close()
        worker_tokens = work_dir / "worker_tokens.json"
        worker_tokens.write_bytes(
            orjson.dumps(
                [
                    [tok, p[2], p[3]]
                    for tok, p in zip(f.tokens(workers, "worker", key=secret), points, strict=True)
                ]
            )
        )
        watch_items = work_dir / "watch_items.json"
        customer_tokens = f.tokens(customers, "customer", key=secret)
        watch_items.write_bytes(orjson.dumps(list(zip(order_ids, customer_tokens, strict=True))))
        h.progress(
            f"{m:,} workers, {m:,} customers, {m:,} en_route orders and their tokens "
            f"in {time.perf_counter() - t:.1f} s"
        )
    except BaseException:
        await db.drop()
        raise
    return Env(
        plan=plan,
        redis_url=redis_url,
        db=db,
        city_id=city_id,
        secret=secret,
        work_dir=work_dir,
        params=f.write_params(work_dir / "params.toml"),
        worker_tokens=worker_tokens,
        watch_items=watch_items,
        order_ids=order_ids,
        redis_pid=await f.redis_pid(redis_url),
        py_spy=py_spy,
    )


class _Meters:
    """CPU seconds of named processes, PostgreSQL and the whole machine, over windows."""

    def __init__(self, env: Env, pids: dict[str, int]) -> None:
        self.meters = {name: h.ProcMeter(pid) for name, pid in pids.items()}
        if env.redis_pid:
            self.meters["redis"] = h.ProcMeter(env.redis_pid)
        self.cpu_s: dict[str, float] = collections.defaultdict(float)
        self.seconds = 0.0
        self.busy_s = 0.0

    def start(self) -> None:
        self.cpu = h.CpuMeter()
        self.s0 = {k: m.sample() for k, m in self.meters.items()}
        self.pg0 = f.cpu_by_pid(h.pids_named(["postgres"]))  # backends come and go

    def stop(self) -> None:
        s1 = {k: m.sample() for k, m in self.meters.items()}
        self.cpu_s["postgres"] += f.cpu_delta(self.pg0, f.cpu_by_pid(list(self.pg0)))
        wall = next(iter(s1.values())).t - next(iter(self.s0.values())).t
        self.busy_s += self.cpu.cores_busy() * wall
        for k in s1:
            self.cpu_s[k] += s1[k].cpu_s - self.s0[k].cpu_s
        self.seconds += wall
        self.rss = {k: round(v.rss / 2**20, 1) for k, v in s1.items()}

    def summary(self) -> dict[str, Any]:
        wall = max(self.seconds, 1e-9)
        out: dict[str, Any] = {f"{k}_cores": round(v / wall, 3) for k, v in self.cpu_s.items()}
        busy = round(self.busy_s / wall, 3)
        out["machine_cores_busy"] = busy
        out["other_cores"] = round(busy - sum(self.cpu_s.values()) / wall, 3)
        out["cpu_s"] = {k: round(v, 3) for k, v in self.cpu_s.items()}
        out["rss_mib"] = self.rss
        out["seconds"] = round(self.seconds, 3)
        return out


async def _metered(meters: _Meters, work: Any, seconds: float) -> Any:
    """Run ``work`` (a coroutine lasting about ``seconds``); meter its middle 80 %."""
    task = asyncio.create_task(work)
    lead = min(1.0, seconds * 0.1)
    await asyncio.sleep(lead)
    meters.start()
    await asyncio.sleep(max(0.1, seconds - 2 * lead))
    meters.stop()
    return await task


def _join(sends: list[list[int]], records: list[list[int]]) -> dict[str, Any]:
    """Latencies of the sent fixes that arrived, and the counts of those that did not."""
    sent_at = {(w, s): t for w, s, t in sends}
    exact: list[int] = []
    by_ts: list[int] = []
    seen: set[tuple[int, int]] = set()
    slow: list[tuple[float, float]] = []
    unmatched = dupes = 0
    for w, s, ts_ms, recv_us in records:
        key = (w, s)
        t = sent_at.get(key)
        if t is None:
            unmatched += 1  # a fix sent before this window
            continue
        if key in seen:
            dupes += 1
            continue
        seen.add(key)
        exact.append(recv_us - t)
        by_ts.append(recv_us // 1000 - ts_ms)
        if recv_us - t > SLOW_US:
            slow.append((t / 1e6, recv_us / 1e6))
    return {
        "exact_us": exact,
        "slow": slow,
        "ts_ms": by_ts,
        "matched": len(exact),
        "missed": len(sent_at) - len(seen),
        "unmatched_frames": unmatched,
        "duplicates": dupes,
    }


class _PySpy:
    """Optional: ``py-spy record`` of both servers during the measured windows."""

    def __init__(self, exe: str | None, out_dir: Path) -> None:
        self.exe = exe
        self.out_dir = out_dir
        self.procs: list[asyncio.subprocess.Process] = []

    async def start(self, pids: dict[str, int], seconds: float, tag: str) -> None:
        if not self.exe:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            self.procs.append(
                await asyncio.create_subprocess_exec(
                    self.exe,
                    "record",
                    "-p",
                    str(pid),
                    "-d",
                    str(max(1, int(seconds))),
                    "--nonblocking",
                    "-r",
                    "200",
                    "-f",
                    "raw",
                    "-o",
                    str(self.out_dir / f"{tag}-{name}.txt"),
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
            )

    async def wait(self) -> None:
        for p in self.procs:
            try:
                await asyncio.wait_for(p.wait(), 30)
            except TimeoutError:
                p.kill()
                await p.wait()
        self.procs = []


async def _doorstep_round(
    env: Env,
    interval: float,
    window: float,
    servers: dict[str, int],
    wgen: f.Child,
    cgen: f.Child,
    spy: _PySpy | None,
) -> dict[str, Any]:
    """One Doorstep window: drive the workers, collect the watchers' frames, join them."""
    plan = env.plan
    meters = _Meters(env, {**servers, "worker_gen": wgen.pid, "customer_gen": cgen.pid})
    m_a0 = await f.scrape(env.ports["server_a"], A_COUNTERS)
    m_b0 = await f.scrape(env.ports["server_b"], B_COUNTERS)
    await cgen.call("record", on=True)
    t0 = time.time()
    if spy is not None:
        await spy.start(servers, window * 0.8, f"{len(env.order_ids)}-{interval:g}s")
    drive = await _metered(
        meters,
        wgen.call("drive", interval_s=interval, seconds=window, record=True, drain_s=plan.drain_s),
        window,
    )
    if spy is not None:
        await spy.wait()
    await asyncio.sleep(min(plan.drain_s, 2.0))
    got = await cgen.call("record", on=False)
    t1 = time.time()
    m_a1 = await f.scrape(env.ports["server_a"], A_COUNTERS)
    m_b1 = await f.scrape(env.ports["server_b"], B_COUNTERS)
    counters = {
        **{f"a_{k}": m_a1[k] - m_a0.get(k, 0.0) for k in m_a1},
        **{f"b_{k}": m_b1[k] - m_b0.get(k, 0.0) for k in m_b1},
    }
    joined = _join(drive.pop("sends"), got.pop("records"))
    server_gc: dict[str, Any] = {}
    pauses: list[tuple[float, float]] = []
    for name in servers:
        log = f.read_gc_log(env.gc_logs[name])
        server_gc[name] = f.gc_pauses_between(log, t0, t1)
        pauses += [
            (e["t"], e["t"] + e["ms"] / 1000)
            for e in log
            if t0 <= e["t"] <= t1 and e["ms"] >= GC_PAUSE_MS
        ]
    slow = joined.pop("slow")
    overlapping = sum(1 for a, b in slow if any(p0 < b and a < p1 for p0, p1 in pauses))
    joined["slow_frames"] = len(slow)
    joined["slow_frames_overlapping_server_gc"] = overlapping
    return {
        "drive": drive,
        "got": got,
        "joined": joined,
        "meters": meters,
        "server_gc": server_gc,
        "counters": counters,
    }


async def _baseline_round(
    env: Env,
    interval: float,
    window: float,
    channels: list[str],
    size: int,
    wgen: f.Child,
    cgen: f.Child,
) -> dict[str, Any]:
    """One raw pub/sub window: same rate and message size, other channels (B hears none)."""
    meters = _Meters(env, {"publisher": wgen.pid, "subscriber": cgen.pid})
    await cgen.call("sub_start", redis_url=env.redis_url, channels=channels)
    pub = await _metered(
        meters,
        wgen.call(
            "publish",
            redis_url=env.redis_url,
            channels=channels,
            interval_s=interval,
            seconds=window,
            size=size,
        ),
        window,
    )
    await asyncio.sleep(1.0)
    res = await cgen.call("sub_stop")
    return {"pub": pub, "res": res, "meters": meters}


async def _measure(
    env: Env,
    m: int,
    interval: float,
    servers: dict[str, int],
    wgen: f.Child,
    cgen: f.Child,
) -> dict[str, Any]:
    """``rounds`` × (a Doorstep window, then a raw pub/sub window); both aggregated.

    With ``--wait-quiet``, each round first waits for other work to stop, and a round
    during which other work took more than ``DISTURBED_CORES`` is measured again (at
    most twice more; every attempt is listed).
    """
    plan = env.plan
    from doorstep.keys import Keys

    base_channels = [
        f"{Keys(env.db.prefix).city_tag(env.city_id)}baseline:{o}" for o in env.order_ids[:m]
    ]
    spy = _PySpy(env.py_spy, Path(tempfile.gettempdir()) / "doorstep-fanout-profiles")
    window = plan.measure_s / plan.rounds
    base_window = plan.baseline_s / plan.rounds
    d_all: list[dict[str, Any]] = []
    b_all: list[dict[str, Any]] = []
    per_round: list[dict[str, Any]] = []
    size = 200
    for r in range(plan.rounds):
        for attempt in range(3):
            if env.quiet_until > time.monotonic():
                await f.wait_quiet(env.quiet_until - time.monotonic(), quiet_s=1.0)
            d = await _doorstep_round(
                env, interval, window, servers, wgen, cgen, spy if r == 0 and not attempt else None
            )
            d_other = d["meters"].summary()["other_cores"]
            lat_round = _ms(d["joined"]["exact_us"])
            matched = max(d["joined"]["matched"], 1)
            size = round(d["got"]["bytes"] / matched) or size
            b = await _baseline_round(env, interval, base_window, base_channels, size, wgen, cgen)
            b_other = b["meters"].summary()["other_cores"]
            base_round = _ms(b["res"]["latencies_us"])
            entry = {
                "attempt": attempt + 1,
                "latency_ms": lat_round,
                "server_gc_pauses": d["server_gc"],
                "slow_frames": d["joined"]["slow_frames"],
                "slow_frames_overlapping_server_gc": d["joined"][
                    "slow_frames_overlapping_server_gc"
                ],
                "ack_latency_ms": _ms(d["drive"]["ack_us"]),
                "not_delivered": d["joined"]["missed"],
                "other_cores": d_other,
                "baseline_latency_ms": base_round,
                "baseline_other_cores": b_other,
            }
            h.progress(
                f"[{m:,} @ {interval:g} s] round {r + 1}.{attempt + 1}: doorstep p50 "
                f"{lat_round.get('p50')} / p99 {lat_round.get('p99')} / max "
                f"{lat_round.get('max')} ms, not delivered {d['joined']['missed']}; raw "
                f"pub/sub p50 {base_round.get('p50')} / p99 {base_round.get('p99')} ms; "
                f"other work {d_other} / {b_other} cores"
            )
            disturbed = max(d_other, b_other) > DISTURBED_CORES
            entry["kept"] = not disturbed or attempt == 2 or env.quiet_until <= time.monotonic()
            per_round.append(entry)
            if entry["kept"]:
                d_all.append(d)
                b_all.append(b)
                break
    return _aggregate(m, interval, d_all, b_all, per_round)


def _merge_meters(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    merged = rounds[0]["meters"]
    for r in rounds[1:]:
        o = r["meters"]
        for k, v in o.cpu_s.items():
            merged.cpu_s[k] += v
        merged.seconds += o.seconds
        merged.busy_s += o.busy_s
        merged.rss = o.rss
    summary: dict[str, Any] = merged.summary()
    return summary


def _aggregate(
    m: int,
    interval: float,
    d_all: list[dict[str, Any]],
    b_all: list[dict[str, Any]],
    per_round: list[dict[str, Any]],
) -> dict[str, Any]:
    exact: list[int] = []
    by_ts: list[int] = []
    ack_us: list[int] = []
    sums: collections.Counter[str] = collections.Counter()
    frames: collections.Counter[str] = collections.Counter()
    eta_methods: collections.Counter[str] = collections.Counter()
    rejected: collections.Counter[str] = collections.Counter()
    errors: collections.Counter[str] = collections.Counter()
    lateness_p99 = 0.0
    elapsed = 0.0
    gc_sum: dict[str, dict[str, float]] = collections.defaultdict(
        lambda: {"count": 0, "total_ms": 0.0, "max_ms": 0.0}
    )
    full_gcs: list[dict[str, Any]] = []
    counters: collections.Counter[str] = collections.Counter()
    for d in d_all:
        drive, got, joined = d["drive"], d["got"], d["joined"]
        exact += joined["exact_us"]
        by_ts += joined["ts_ms"]
        ack_us += drive["ack_us"]
        for k in (
            "matched",
            "missed",
            "duplicates",
            "unmatched_frames",
            "slow_frames",
            "slow_frames_overlapping_server_gc",
        ):
            sums[k] += joined[k]
        for name, gens in d["server_gc"].items():
            full_gcs += [{"server": name, **e} for e in gens.get("full_collections", ())]
            for gen, st in gens.items():
                if gen == "full_collections":
                    continue
                key = f"{name}_{gen}"
                gc_sum[key]["count"] += st["count"]
                gc_sum[key]["total_ms"] += st["total_ms"]
                gc_sum[key]["max_ms"] = max(gc_sum[key]["max_ms"], st["max_ms"])
        for k in ("fixes_sent", "accepted_fixes", "unacked_after_drain"):
            sums[k] += drive[k]
        sums["bytes"] += got["bytes"]
        elapsed += drive["elapsed_s"]
        frames.update(got["frames"])
        eta_methods.update(got["eta_methods"])
        rejected.update(drive["rejected"])
        errors.update(drive["errors"])
        lateness_p99 = max(lateness_p99, drive["send_lateness_us"].get("p99", 0) / 1000)
        counters.update({k: int(v) for k, v in d["counters"].items()})
    last = d_all[-1]
    usage = _merge_meters(d_all)
    fixes_metered = sums["fixes_sent"] * usage["seconds"] / max(elapsed, 1e-9)
    lat = _ms(exact)
    doorstep = {
        "latency_ms": lat,
        "latency_ms_from_ts_ms": {k: float(v) for k, v in h.percentiles(by_ts).items()},
        "ack_latency_ms": _ms(ack_us),
        "fixes_per_s_offered": round(m / interval, 1),
        "fixes_sent": sums["fixes_sent"],
        "fixes_accepted": sums["accepted_fixes"],
        "position_frames_delivered_per_s": round(sums["matched"] / max(elapsed, 1e-9), 1),
        "frames_matched": sums["matched"],
        "not_delivered_within_drain": sums["missed"],
        "unacked_by_server_a_after_drain": sums["unacked_after_drain"],
        "duplicates": sums["duplicates"],
        "unmatched_frames": sums["unmatched_frames"],
        "frames_slower_than_25ms": sums["slow_frames"],
        "of_which_overlap_a_server_gc_pause_ge_10ms": sums["slow_frames_overlapping_server_gc"],
        "server_gc_pauses": {
            k: {
                "count": int(v["count"]),
                "total_ms": round(v["total_ms"], 1),
                "max_ms": v["max_ms"],
            }
            for k, v in sorted(gc_sum.items())
        },
        "server_full_collections": full_gcs,
        "frames_by_type": dict(frames),
        "server_counters": dict(counters),
        "eta_methods": dict(eta_methods),
        "mean_position_frame_bytes": round(sums["bytes"] / max(sums["matched"], 1)),
        "rejected": dict(rejected),
        "errors": dict(errors),
        "closed_sockets": {
            "workers": last["drive"]["closed_sockets"],
            "watchers": last["got"]["closed_sockets"],
        },
        "generator_send_lateness_p99_ms": round(lateness_p99, 2),
        "usage": usage,
        "server_a_us_cpu_per_fix": round(usage["cpu_s"]["server_a"] / max(fixes_metered, 1) * 1e6),
        "server_b_us_cpu_per_frame": round(
            usage["cpu_s"]["server_b"] / max(fixes_metered, 1) * 1e6
        ),
        "rounds": per_round,
    }
    base_lat: list[int] = []
    published = received = 0
    pub_elapsed = 0.0
    for b in b_all:
        base_lat += b["res"]["latencies_us"]
        published += b["pub"]["published"]
        received += b["res"]["received"]
        pub_elapsed += b["pub"]["elapsed_s"]
    base = _ms(base_lat)
    baseline = {
        "latency_ms": base,
        "published": published,
        "received": received,
        "not_received": published - received,
        "messages_per_s": round(received / max(pub_elapsed, 1e-9), 1),
        "message_bytes": b_all[-1]["pub"]["message_bytes"],
        "usage": _merge_meters(b_all),
    }
    h.progress(
        f"[{m:,} @ {interval:g} s] doorstep p50 {lat.get('p50')} / p99 {lat.get('p99')} / "
        f"max {lat.get('max')} ms, {doorstep['position_frames_delivered_per_s']:,} frames/s, "
        f"not delivered {sums['missed']}; raw pub/sub p50 {base.get('p50')} / p99 "
        f"{base.get('p99')} ms; cores A {usage['server_a_cores']}, B {usage['server_b_cores']}, "
        f"gens {usage['worker_gen_cores']}+{usage['customer_gen_cores']}, "
        f"redis {usage.get('redis_cores')}, other {usage['other_cores']}"
    )
    return {
        "watched_orders": m,
        "interval_s": interval,
        "doorstep": doorstep,
        "baseline": baseline,
        "ratios": {
            k: round(lat[k] / base[k], 2) if base.get(k) else None
            for k in ("p50", "p90", "p99", "max")
            if k in lat
        },
    }


async def _run_size(env: Env, m: int, intervals: tuple[float, ...]) -> list[dict[str, Any]]:
    plan = env.plan
    port_a, port_b = h.free_port(), h.free_port()
    common: dict[str, Any] = {
        "db": env.db,
        "redis_url": env.redis_url,
        "secret": env.secret,
        "params": env.params,
        "work_dir": env.work_dir,
    }
    env.ports = {"server_a": port_a, "server_b": port_b}
    env.gc_logs = {
        "server_a": env.work_dir / f"gc-a-{m}.jsonl",
        "server_b": env.work_dir / f"gc-b-{m}.jsonl",
    }
    a = f.doorstep_server(f"server-a-{m}", port_a, gc_log=env.gc_logs["server_a"], **common)
    b = f.doorstep_server(f"server-b-{m}", port_b, gc_log=env.gc_logs["server_b"], **common)
    argv = [sys.executable, "-m", "benchmarks.fanout"]
    wgen = await f.Child.start("worker-gen", [*argv, "--worker-gen"])
    cgen = await f.Child.start("customer-gen", [*argv, "--customer-gen"])
    runs: list[dict[str, Any]] = []
    try:
        await a.wait_http(port_a, "/readyz")
        await b.wait_http(port_b, "/readyz")
        h.progress(f"[{m:,}] servers A (:{port_a}) and B (:{port_b}) ready")
        rss0 = {"server_a": h.ProcMeter(a.pid).sample(), "server_b": h.ProcMeter(b.pid).sample()}
        wc = await wgen.call(
            "connect",
            url=f"ws://{h.LOOPBACK}:{port_a}{WORKER_PATH}",
            tokens=str(env.worker_tokens),
            first=0,
            end=m,
            batch=CONNECT_BATCH,
        )
        h.progress(f"[{m:,}] {wc['connected']:,} worker sockets on A in {wc['seconds']} s")
        # One round of fixes first, so that every worker has a position and the
        # watchers' snapshots carry an ETA.
        await wgen.call(
            "drive", interval_s=intervals[0], seconds=intervals[0], record=False, drain_s=10
        )
        cc = await cgen.call(
            "connect",
            url=f"ws://{h.LOOPBACK}:{port_b}/v1/ws/orders",
            items=str(env.watch_items),
            first=0,
            end=m,
            batch=CONNECT_BATCH,
        )
        h.progress(
            f"[{m:,}] {cc['connected']:,} order sockets on B in {cc['seconds']} s; "
            f"snapshots {cc['snapshots']}"
        )
        if wc["connected"] < m or cc["connected"] < m:
            raise RuntimeError(f"connected {wc} / {cc}")
        rss1 = {"server_a": h.ProcMeter(a.pid).sample(), "server_b": h.ProcMeter(b.pid).sample()}
        connections = {
            "workers": wc,
            "watchers": cc,
            "rss_growth_per_socket_kib": {
                k: round((rss1[k].rss - rss0[k].rss) / m / 1024, 1) for k in rss0
            },
        }
        for interval in intervals:
            await wgen.call(
                "drive",
                interval_s=interval,
                seconds=min(interval, plan.warmup_s),
                record=False,
                drain_s=10,
            )
            await asyncio.sleep(1.0)
            h.progress(
                f"[{m:,} @ {interval:g} s] measuring: one fix per worker every {interval:g} s "
                f"({m / interval:,.0f} fixes/s), {plan.rounds} rounds of "
                f"{plan.measure_s / plan.rounds:g} s + {plan.baseline_s / plan.rounds:g} s baseline"
            )
            run = await _measure(
                env, m, interval, {"server_a": a.pid, "server_b": b.pid}, wgen, cgen
            )
            run["connections"] = connections
            runs.append(run)
        await wgen.call("close")
        await cgen.call("close")
    finally:
        a.stop()
        b.stop()
        await wgen.stop()
        await cgen.stop()
    return runs


def _targets(runs: list[dict[str, Any]]) -> dict[str, Any]:
    big = max(r["watched_orders"] for r in runs)
    out: dict[str, Any] = {}
    for r in runs:
        if r["watched_orders"] != big:
            continue
        p99 = r["doorstep"]["latency_ms"].get("p99")
        out[f"fanout_p99_le_25ms_at_10k_orders_{r['interval_s']:g}s"] = {
            "measured_at_orders": big,
            "target_orders": TARGET_ORDERS,
            "fixes_per_s": r["doorstep"]["fixes_per_s_offered"],
            "p99_ms": p99,
            "not_delivered": r["doorstep"]["not_delivered_within_drain"],
            "reached": (
                p99 is not None
                and p99 <= TARGET_P99_MS
                and big >= TARGET_ORDERS
                and r["doorstep"]["not_delivered_within_drain"] == 0
            ),
        }
    return out


async def orchestrate(
    plan: Plan,
    redis_url: str,
    database_url: str,
    *,
    wait_quiet_s: float,
    py_spy: str | None,
    gc_mode: str,
) -> dict[str, Any]:
    h.raise_nofile()
    started = time.perf_counter()
    if wait_quiet_s > 0:
        await f.wait_quiet(wait_quiet_s)
    background = await f.background_load()
    with tempfile.TemporaryDirectory(prefix="doorstep-fanout-") as tmp:
        env = await _setup(plan, redis_url, database_url, Path(tmp), py_spy)
        env.quiet_until = time.monotonic() + wait_quiet_s if wait_quiet_s > 0 else 0.0
        env.gc_mode = gc_mode
        f.write_params(env.params, gc_freeze=gc_mode == "policy")
        try:
            runs = []
            big = max(plan.orders)
            for m in plan.orders:
                extra = plan.extra_intervals_s if m == big else ()
                # the lightest load first: a backlog must not spill into the next window
                intervals = tuple(sorted({*plan.intervals_s, *extra}, reverse=True))
                runs += await _run_size(env, m, intervals)
            background_after = await f.background_load()
        finally:
            deleted = await env.db.drop()
            h.progress(f"dropped {env.db.name}; deleted {deleted} Redis keys")
    return {
        "benchmark": "fanout",
        "machine": {
            **h.machine(["uvicorn", "websockets", "starlette", "uvloop", "redis", "hiredis"]),
            "background_cores_busy": {"before": background, "after": background_after},
            "note": (
                "one 2-core machine runs both servers, Redis, PostgreSQL and both load "
                "generators at once (and other users' work: see other_cores)"
            ),
        },
        "params": {
            **asdict(plan),
            "topology": "workers -> server A; order sockets -> server B; same DB/Redis/prefix",
            "server_params": "[engine] enabled=false; [socket] frames_per_s=1000",
            "latency": "position frame received by the customer - fix sent by the worker",
            "frame": "worker: {type: fixes, fixes: [one fix]}, ts_ms = send time",
            "compression": "none (clients decline permessage-deflate)",
            "server_gc_mode": gc_mode,
            "generators_gc": "frozen after connecting, disabled during windows",
            "baseline": "PUBLISH (pipelined per send tick) -> one redis-py subscriber, "
            "get_message loop, same channel count, rate and message size",
        },
        "runs": runs,
        "targets": _targets(runs),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _plan(args: argparse.Namespace) -> Plan:
    intervals = tuple(args.interval or (5.0,))
    if args.quick:
        return Plan(
            quick=True,
            orders=(1000,),
            intervals_s=intervals,
            extra_intervals_s=(),
            warmup_s=3.0,
            measure_s=10.0,
            baseline_s=6.0,
            rounds=1,
            drain_s=2.0,
        )
    return Plan(
        quick=False,
        orders=tuple(args.orders or (1000, 10_000)),
        intervals_s=intervals,
        extra_intervals_s=tuple(args.extra_interval or (10.0,)),
        warmup_s=5.0,
        measure_s=30.0,
        baseline_s=15.0,
        rounds=3,
        drain_s=3.0,
    )


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="1k watched orders (< 60 s)")
    p.add_argument("--orders", type=int, nargs="*", help="watched orders (default 1000 10000)")
    p.add_argument(
        "--interval",
        type=float,
        nargs="*",
        help="seconds between one worker's fixes, at every size (default 5)",
    )
    p.add_argument(
        "--extra-interval",
        type=float,
        nargs="*",
        help="more intervals at the largest size only (default 10)",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help="wait (at most S seconds in all) for other work on the machine to stop before "
        "the run and each round; measure a round again if other work took > 0.3 cores",
    )
    p.add_argument(
        "--py-spy",
        metavar="EXE",
        help="record both servers with this py-spy during the first window of each run "
        "(raw stacks in $TMPDIR/doorstep-fanout-profiles/)",
    )
    p.add_argument(
        "--server-gc",
        choices=("policy", "plain"),
        default="policy",
        help="'policy': the servers' [gc] freeze policy (the default); 'plain': [gc] freeze = false",
    )
    p.add_argument("--worker-gen", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--customer-gen", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker_gen or args.customer_gen:
        _child_main("worker" if args.worker_gen else "customer")
        return
    plan = _plan(args)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)  # clean up when terminated
    with h.store_urls() as (redis_url, database_url):
        result = f.run_loop(
            orchestrate(
                plan,
                redis_url,
                database_url,
                wait_quiet_s=args.wait_quiet,
                py_spy=args.py_spy,
                gc_mode=args.server_gc,
            )
        )
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")


if __name__ == "__main__":
    main()
