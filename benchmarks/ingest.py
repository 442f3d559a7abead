"""Ingest benchmark: N worker sockets sending fixes to one ``doorstep serve`` process.

Measures, in one run and with one load generator (a separate process):

* Doorstep: accepted fixes/s (acked by the server), the server's CPU per fix and RSS per
  idle connection, and the latency from sending a frame to receiving the ack that
  covers it. The server acks only after the fixes are written to Redis, so this
  latency bounds "fix sent -> visible in Redis" from above.
* The ceiling: a minimal Starlette websocket endpoint served by uvicorn (ASGI, its
  websockets-sansio implementation; Doorstep's worker socket has its own layer),
  receiving and discarding the same frames.
* The floor of the indexing cost: raw pipelined GEOADD on the same Redis.

Usage::

    python benchmarks/ingest.py --quick       # 1k workers, under 60 s
    python benchmarks/ingest.py               # 1k and 10k workers, 1 and 5 fixes per frame
    python -m benchmarks.ingest --quick       # the same
    python -m benchmarks.ingest --workers 10000 --variants freeze --fixes-per-frame 1 --skip-ceiling
                                              # a diagnostic run, ~75 s (no ceiling ratios)

Every Doorstep window has a ``timeline`` (250 ms buckets: frames by send time with
their ack latency, the server, Redis, the generator and GC by wall time).

JSON on stdout, progress on stderr. Internal modes: ``--ceiling-server PORT`` (the
receive-only server) and ``--generator`` (the load generator, driven over stdin).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import itertools
import math
import os
import re
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import orjson

if __package__ in (None, ""):  # run as a script: make the project's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _fleet as fleet
from benchmarks import _harness as h
from benchmarks._phone import PhoneSocket

WORKER_PATH = "/v1/ws/worker"
CEILING_PATH = "/sink"
CITY_CENTER = (22.53, 114.01)
STEP_DEG = 0.00018  # ~20 m: more than the 12 m jitter clamp, less than 55 m/s over 1 s
SQUARE = {  # the tests' 2 km square in Futian, WGS-84
    "type": "Polygon",
    "coordinates": [
        [[114.00, 22.52], [114.02, 22.52], [114.02, 22.54], [114.00, 22.54], [114.00, 22.52]]
    ],
}
SCRIPT = str(Path(__file__).resolve())
LOG_LEVEL = "warning"  # both servers: per-connection access lines would only add noise
# Concurrent handshakes per generator; a handshake that fails is counted and retried
# (see the README).
CONNECT_BATCH = 100
WRITE_BUFFER_SKIP = 16 * 1024  # bytes queued on a client socket before it is skipped
DISTURBED_CORES = 0.25  # other work above this during a window: wait and measure again
TIMELINE_BUCKET_S = 0.25  # a window's timeline: frames by send time, server by wall time


def _run_loop(main: Coroutine[Any, Any, Any]) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] installs it
        return asyncio.run(main)
    return uvloop.run(main)


# --- the receive-only ceiling server ---------------------------------------------------


def ceiling_server(port: int) -> None:
    """Serve ``/sink`` (receive and discard text frames) and ``/count`` (frames so far).

    uvicorn gets the options ``doorstep serve`` passes (doorstep/cli.py ``_serve``);
    everything else is uvicorn's default there and here (loop, ws implementation,
    ws_max_size, per-message-deflate offered; the generator declines compression).
    """
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket

    frames = 0

    async def sink(ws: WebSocket) -> None:
        nonlocal frames
        await ws.accept()
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            frames += 1

    async def count(request: Request) -> Response:
        return Response(orjson.dumps({"frames": frames}), media_type="application/json")

    app = Starlette(routes=[WebSocketRoute(CEILING_PATH, sink), Route("/count", count)])
    uvicorn.run(
        app,
        host=h.LOOPBACK,
        port=port,
        log_level=LOG_LEVEL,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )


# --- the load generator (its own process, driven over stdin) ----------------------------


@dataclass(slots=True)
class _Conn:
    ws: PhoneSocket
    index: int
    worker_id: int = 0
    seq: int = 0
    acked_seq: int = 0
    lat: float = 0.0
    lng: float = 0.0
    inflight: collections.deque[tuple[int, float, int, bool]] = field(
        default_factory=collections.deque
    )
    # The server shed a frame (``overloaded``) or wants older fixes first: send nothing
    # before ``hold_until`` (perf_counter), then go on from the last acked seq.
    hold_until: float = 0.0
    rewind: bool = False

    @property
    def closed(self) -> bool:
        return self.ws.closed

    def frame(self, fixes: int, now_ms: int, ack: bool = False) -> bytes:
        out = []
        for _ in range(fixes):
            self.seq += 1
            lat = self.lat + (STEP_DEG if self.seq & 1 else 0.0)
            out.append(
                {"seq": self.seq, "ts_ms": now_ms, "lat": lat, "lng": self.lng, "accuracy_m": 5.0}
            )
        if ack:
            return orjson.dumps({"type": "fixes", "fixes": out, "ack": True})
        return orjson.dumps({"type": "fixes", "fixes": out})


class Generator:
    """Holds N client sockets; drives frames at a target rate and times the acks."""

    def __init__(self) -> None:
        self.conns: list[_Conn] = []
        self.errors: collections.Counter[str] = collections.Counter()
        self.t0 = 0.0
        self.t_end = math.inf
        self.ack_grace_s = 0.0
        self.timed_all = True
        self.acked_fixes_window = 0
        self.acked_frames_window = 0
        self.latencies_us: list[int] = []
        self.sent_us: list[int] = []  # each latency sample's send time, µs after t0
        # This process's own GC pauses (start perf, seconds), while a window is driven.
        self.gc_pauses: list[tuple[float, float]] | None = None
        self._gc_started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self.gc_pauses is not None:
            self.gc_pauses.append((self._gc_started, time.perf_counter() - self._gc_started))

    async def connect(
        self, url: str, tokens: list[str], *, hello: bool, batch: int, first: int
    ) -> dict[str, Any]:
        start = time.perf_counter()
        before = len(self.conns)
        failed: collections.Counter[str] = collections.Counter()

        async def one(i: int, token: str) -> bool:
            c = _Conn(cast(PhoneSocket, None), i)
            try:
                c.ws = await PhoneSocket.open(
                    url,
                    {"Authorization": f"Bearer {token}"},
                    lambda raw: self._on_text(c, raw),
                )
            except Exception as e:
                failed[f"{type(e).__name__}: {e}"[:120]] += 1
                return False
            if hello:
                try:
                    msg = orjson.loads(await asyncio.wait_for(asyncio.shield(c.ws.first), 30))
                except Exception as e:
                    failed[f"{type(e).__name__}: {e}"[:120]] += 1
                    c.ws.abort()
                    return False
                if msg.get("type") != "hello":
                    failed[f"first frame {msg.get('type')}: {msg.get('code')}"] += 1
                    c.ws.abort()
                    return False
                c.worker_id = int(msg["worker_id"])
                c.seq = c.acked_seq = int(msg["resume_seq"])
            frac = (i * 0.6180339887) % 1.0
            c.lat = CITY_CENTER[0] - 0.008 + 0.016 * frac
            c.lng = CITY_CENTER[1] - 0.008 + 0.016 * ((i * 0.7548776662) % 1.0)
            self.conns.append(c)
            return True

        async def wave(items: list[tuple[int, str]], size: int) -> list[tuple[int, str]]:
            again = []
            for lo in range(0, len(items), size):
                chunk = items[lo : lo + size]
                done = await asyncio.gather(*(one(i, t) for i, t in chunk))
                again += [it for it, ok in zip(chunk, done, strict=True) if not ok]
            return again

        # ``batch`` handshakes at a time; the failures once more, a few at a time.
        retry = await wave([(first + k, t) for k, t in enumerate(tokens)], batch)
        still = await wave(retry, 5)
        # The connections live for the run: out of the collector's way, or its full
        # collections walk them all (10-13 ms at 10,000), a pause in every ack it delays.
        gc.collect()
        gc.freeze()
        return {
            "connected": len(self.conns) - before,
            "failed_first_try": dict(failed),
            "retried": len(retry),
            "failed": len(still),
            "seconds": round(time.perf_counter() - start, 3),
        }

    def _on_text(self, c: _Conn, raw: bytes) -> None:
        msg = orjson.loads(raw)
        kind = msg.get("type")
        if kind == "ack":
            now = time.perf_counter()
            seq = msg["seq"]
            c.acked_seq = seq
            q = c.inflight
            in_window = now <= self.t_end + self.ack_grace_s
            while q and q[0][0] <= seq:
                _, sent, fixes, timed = q.popleft()
                if sent >= self.t0:
                    if timed or self.timed_all:
                        self.latencies_us.append(int((now - sent) * 1e6))
                        self.sent_us.append(int((sent - self.t0) * 1e6))
                    if in_window:
                        self.acked_fixes_window += fixes
                        self.acked_frames_window += 1
        elif kind == "error":
            code = str(msg.get("code"))
            self.errors[code] += 1
            if code in ("overloaded", "unavailable"):  # as the apps do: wait, then resend
                wait_s = float(msg.get("retry_after_ms", 2000)) / 1000
                c.hold_until = time.perf_counter() + wait_s * (1 + (c.index % 8) / 16)
                c.rewind = True

    async def drive(
        self,
        *,
        rate: float,
        seconds: float,
        fixes: int,
        window_s: float,
        drain_s: float,
        acks: bool,
        ack_interval_s: float = 0.0,
        sample_every: int = 10,
        profile: list[list[float]] | None = None,
    ) -> dict[str, Any]:
        """Send ``rate`` frames/s round-robin for ``seconds``; then wait for the acks.

        With ``profile`` ([[seconds, rate], …]) the offered rate follows it instead (an
        overload step); ``seconds`` and ``rate`` are then its total and its highest.
        A socket the server told to wait (``overloaded``) is held, then resends from its
        last ack (counted as ``held``), as the apps do.

        A socket with ``window_s`` worth of its frames unacked is skipped (a phone
        would batch them): under overload the backlog stays bounded. With a server
        that holds acks back (``ack_interval_s``), every ``sample_every``-th frame asks
        for its ack at once and only those are timed; the window of unacked frames and
        the time an ack may arrive after the window grow by the interval.
        """
        conns = [c for c in self.conns if not c.closed]
        n = len(conns)
        if profile:
            seconds = sum(seg[0] for seg in profile)
            rate = max(seg[1] for seg in profile)
        window = max(4, math.ceil(rate / max(n, 1) * (window_s + ack_interval_s)) + 1)
        self.ack_grace_s = ack_interval_s
        self.timed_all = ack_interval_s == 0
        self.errors.clear()
        self.latencies_us = []
        self.sent_us = []
        self.gc_pauses = []
        self.acked_fixes_window = self.acked_frames_window = 0
        attempts = sent = skipped = missed = held = rewound = 0
        idx = 0
        max_burst = max(1, int(rate * 0.02))  # at most 20 ms of frames at once
        perf = time.perf_counter
        # Per TIMELINE_BUCKET_S of the window: frames sent, and the longest gap between
        # two turns of the send loop (this process busy: acks, its own GC, the kernel).
        buckets = max(1, math.ceil(seconds / TIMELINE_BUCKET_S))
        sent_b = [0] * buckets
        gap_b = [0.0] * buckets
        cpu0 = time.process_time()
        self.t0 = t0 = prev = perf()
        self.t_end = t_end = t0 + seconds
        while n:
            now = perf()
            if now >= t_end:
                break
            b = min(int((now - t0) / TIMELINE_BUCKET_S), buckets - 1)
            if now - prev > gap_b[b]:
                gap_b[b] = now - prev
            prev = now
            due = int(_offered(profile, rate, now - t0)) - attempts
            if due > max_burst:  # the generator fell behind: those frames are missed
                missed += due - max_burst
                attempts += due - max_burst
                due = max_burst
            now_ms = int(time.time() * 1000)
            for _ in range(due):
                attempts += 1
                c = conns[idx]
                idx = idx + 1 if idx + 1 < n else 0
                if c.hold_until:
                    if now < c.hold_until:
                        held += 1
                        continue
                    c.hold_until = 0.0
                if c.rewind:  # what was not acked is sent again: numbering goes back
                    c.rewind = False
                    rewound += 1
                    c.seq = c.acked_seq
                    while c.inflight and c.inflight[-1][0] > c.acked_seq:
                        c.inflight.pop()
                if (
                    c.closed
                    or (acks and len(c.inflight) >= window)
                    or c.ws.write_buffer_size() > WRITE_BUFFER_SKIP
                ):  # never block the sender on one socket the server does not read
                    skipped += 1
                    continue
                timed = ack_interval_s > 0 and sent % sample_every == 0
                data = c.frame(fixes, now_ms, timed)
                t = perf()
                if acks:
                    c.inflight.append((c.seq, t, fixes, timed))
                c.ws.send_text(data)
                sent += 1
                sent_b[min(int((t - t0) / TIMELINE_BUCKET_S), buckets - 1)] += 1
            await asyncio.sleep(0.001)
        elapsed = perf() - t0
        cpu_window = time.process_time() - cpu0
        drained = True
        if acks:
            deadline = perf() + drain_s + ack_interval_s
            while any(c.inflight for c in conns if not c.closed):
                if perf() > deadline:
                    drained = False
                    break
                await asyncio.sleep(0.01)
        pending = sum(len(c.inflight) for c in conns if not c.closed)
        for c in conns:  # what is still unacked is not timed in the next step
            c.inflight.clear()
        gc_b = [0.0] * buckets  # this process's GC pauses that began in each bucket
        for start, took in self.gc_pauses:
            if t0 <= start < t_end:
                gc_b[int((start - t0) / TIMELINE_BUCKET_S)] += took
        self.gc_pauses = None
        return {
            "rate": rate,
            "elapsed_s": round(elapsed, 4),
            "attempts": attempts,
            "sent_frames": sent,
            "skipped_window": skipped,
            "held_overloaded": held,
            "rewound": rewound,
            "missed_generator": missed,
            "acked_frames": self.acked_frames_window,
            "acked_fixes": self.acked_fixes_window,
            "unacked_after_drain": pending,
            "drained": drained,
            "errors": dict(self.errors),
            "closed_conns": sum(c.closed for c in conns),
            "generator_cpu_s": round(cpu_window, 3),
            "latencies_us": self.latencies_us,
            "sent_us": self.sent_us,
            "t0": t0,
            "sent_per_bucket": sent_b,
            "gap_max_ms_per_bucket": [round(g * 1000, 1) for g in gap_b],
            "gc_ms_per_bucket": [round(g * 1000, 1) for g in gc_b],
        }

    async def close(self) -> dict[str, Any]:
        for c in self.conns:
            c.ws.close()
        await asyncio.sleep(0.5)  # the servers end the connections on the close frames
        for c in self.conns:
            c.ws.abort()
        closed = len(self.conns)
        self.conns = []
        return {"closed": closed}


def _offered(profile: list[list[float]] | None, rate: float, t: float) -> float:
    """Frames offered in the first ``t`` seconds: ``rate`` per second, or by ``profile``."""
    if not profile:
        return rate * t
    total = 0.0
    for seconds, r in profile:
        if t <= seconds:
            return total + r * max(t, 0.0)
        total += r * seconds
        t -= seconds
    return total


def _read_json(path: str) -> Any:
    with open(path, "rb") as f:
        return orjson.loads(f.read())


async def generator_main() -> None:
    """Read JSON commands from stdin, one per line; answer each with one JSON line."""
    h.raise_nofile()
    gen = Generator()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout.buffer
    while line := await reader.readline():
        cmd = orjson.loads(line)
        op = cmd.pop("op")
        reply: dict[str, Any]
        if op == "connect":
            all_tokens = await asyncio.to_thread(_read_json, cmd["tokens"])
            tokens = all_tokens[cmd["first"] : cmd["end"]]
            reply = await gen.connect(
                cmd["url"], tokens, hello=cmd["hello"], batch=cmd["batch"], first=cmd["first"]
            )
        elif op == "drive":
            reply = await gen.drive(**cmd)
        elif op == "seqs":
            reply = {"seqs": [[c.worker_id, c.acked_seq] for c in gen.conns if not c.closed]}
        elif op == "close":
            reply = await gen.close()
        else:
            break
        out.write(orjson.dumps(reply) + b"\n")
        out.flush()


class GeneratorClient:
    """The orchestrator's handle on generator processes (connections split among them)."""

    def __init__(self, procs: list[asyncio.subprocess.Process]) -> None:
        self.procs = procs

    @classmethod
    async def start(cls, count: int) -> GeneratorClient:
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                SCRIPT,
                "--generator",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=2**28,
                cwd=h.REPO,
                preexec_fn=h.child_setup,
            )
            for _ in range(count)
        ]
        return cls(procs)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    async def _call(self, proc: asyncio.subprocess.Process, cmd: dict[str, Any]) -> Any:
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write(orjson.dumps(cmd) + b"\n")
        await proc.stdin.drain()
        line = await proc.stdout.readline()
        if not line:
            raise RuntimeError(f"generator {proc.pid} exited (rc {await proc.wait()})")
        return orjson.loads(line)

    async def all(self, cmds: list[dict[str, Any]]) -> list[Any]:
        return list(
            await asyncio.gather(*(self._call(p, c) for p, c in zip(self.procs, cmds, strict=True)))
        )

    async def connect(
        self, url: str, tokens_path: Path, first: int, end: int, *, hello: bool
    ) -> dict[str, Any]:
        """Open connections [first, end) of the token file, split among the generators."""
        k = len(self.procs)
        bounds = [first + (end - first) * i // k for i in range(k + 1)]
        replies = await self.all(
            [
                {
                    "op": "connect",
                    "url": url,
                    "tokens": str(tokens_path),
                    "first": bounds[i],
                    "end": bounds[i + 1],
                    "hello": hello,
                    "batch": CONNECT_BATCH,
                }
                for i in range(k)
            ]
        )
        failed: collections.Counter[str] = collections.Counter()
        for r in replies:
            failed.update(r["failed_first_try"])
        return {
            "connected": sum(r["connected"] for r in replies),
            "failed_first_try": dict(failed),
            "retried": sum(r["retried"] for r in replies),
            "failed": sum(r["failed"] for r in replies),
            "seconds": max(r["seconds"] for r in replies),
        }

    async def drive(self, **kw: Any) -> dict[str, Any]:
        k = len(self.procs)
        cmd = {"op": "drive", **kw, "rate": kw["rate"] / k}
        if kw.get("profile"):
            cmd["profile"] = [[secs, r / k] for secs, r in kw["profile"]]
        replies = await self.all([cmd] * k)
        merged: dict[str, Any] = {"rate": kw["rate"]}
        for key in (
            "attempts",
            "sent_frames",
            "skipped_window",
            "held_overloaded",
            "rewound",
            "missed_generator",
            "acked_frames",
            "acked_fixes",
            "unacked_after_drain",
            "closed_conns",
            "generator_cpu_s",
        ):
            merged[key] = sum(r[key] for r in replies)
        merged["elapsed_s"] = max(r["elapsed_s"] for r in replies)
        merged["drained"] = all(r["drained"] for r in replies)
        errors: collections.Counter[str] = collections.Counter()
        lat: list[int] = []
        sent_us: list[int] = []
        t0 = min(r["t0"] for r in replies)  # perf_counter: CLOCK_MONOTONIC, one per machine
        for r in replies:
            errors.update(r["errors"])
            lat.extend(r["latencies_us"])
            shift = int((r["t0"] - t0) * 1e6)
            sent_us.extend(u + shift for u in r["sent_us"])
        merged["errors"] = dict(errors)
        merged["latencies_us"] = lat
        merged["sent_us"] = sent_us
        merged["t0"] = t0
        # Per bucket (each generator's own t0; they start within milliseconds).
        cols = list(zip(*(r["sent_per_bucket"] for r in replies), strict=True))
        merged["sent_per_bucket"] = [sum(c) for c in cols]
        for key in ("gap_max_ms_per_bucket", "gc_ms_per_bucket"):
            cols_f = zip(*(r[key] for r in replies), strict=True)
            merged[key] = [max(c) for c in cols_f]
        return merged

    async def seqs(self) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for r in await self.all([{"op": "seqs"}] * len(self.procs)):
            out.extend((int(w), int(s)) for w, s in r["seqs"])
        return out

    async def close(self) -> None:
        await self.all([{"op": "close"}] * len(self.procs))

    async def stop(self) -> None:
        for p in self.procs:
            if p.stdin is not None:
                p.stdin.close()
        for p in self.procs:
            try:
                await asyncio.wait_for(p.wait(), 10)
            except TimeoutError:
                p.kill()
                await p.wait()


# --- the orchestrator ------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One configuration of the Doorstep server, measured against the same ceiling."""

    name: str
    gc_freeze: bool
    ack_interval_ms: int
    young_threshold: int | None = None  # [gc] young_threshold; None: the server's default
    freeze_every_s: float | None = None  # [gc] freeze_every_s; None: the server's default
    shed: bool = True  # [ingest] load shedding as shipped; False: shed_above_ms = 0

    def params(self) -> str:
        # Lift the per-connection flood limit (20 frames/s) so 1k sockets can carry the
        # rates 10k sockets carry at a few frames/s each.
        return (
            "[socket]\nframes_per_s = 1000.0\nburst_frames = 1000.0\n"
            f"ack_interval_ms = {self.ack_interval_ms}\n"
            f"[gc]\nfreeze = {'true' if self.gc_freeze else 'false'}\n"
            + (
                f"young_threshold = {self.young_threshold}\n"
                if self.young_threshold is not None
                else ""
            )
            + (f"freeze_every_s = {self.freeze_every_s}\n" if self.freeze_every_s else "")
            + ("" if self.shed else "[ingest]\nshed_above_ms = 0\n")
        )


VARIANTS = {
    # CPython's collector as it comes (young_threshold 0: its own 700).
    "plain": Variant("plain", gc_freeze=False, ack_interval_ms=0, young_threshold=0),
    "freeze": Variant("freeze", gc_freeze=True, ack_interval_ms=0),
    "freeze-acks": Variant("freeze-acks", gc_freeze=True, ack_interval_ms=5000),
    # The baseline of --overload-step: as shipped but without load shedding.
    "freeze-noshed": Variant("freeze-noshed", gc_freeze=True, ack_interval_ms=0, shed=False),
    # Experiment: no automatic young collections between the policy's freezes.
    "freeze-only": Variant(
        "freeze-only", gc_freeze=True, ack_interval_ms=0, young_threshold=100_000_000
    ),
    # Experiments: the freeze's interval.
    "freeze-0.1s": Variant("freeze-0.1s", gc_freeze=True, ack_interval_ms=0, freeze_every_s=0.1),
    "freeze-0.5s": Variant("freeze-0.5s", gc_freeze=True, ack_interval_ms=0, freeze_every_s=0.5),
}


@dataclass(frozen=True)
class Plan:
    """Sizes and windows of one run."""

    quick: bool
    workers: tuple[int, ...]
    fixes_per_frame: tuple[int, ...]
    ceiling_fixes_per_frame: tuple[int, ...]
    step_s: float
    measure_s: float
    start_rate: float
    max_rate: float
    refine: int
    window_s: float
    drain_s: float
    generators: int
    kept_up_p99_ms: float
    geoadd_s: float
    variants: tuple[Variant, ...] = (VARIANTS["freeze"],)
    sample_server: bool = False  # scrape /metrics every timeline bucket
    rates: tuple[float, ...] = ()  # diagnostics: windows at these frame rates, no ramp
    confirm_s: float = 0.0  # the sustained rate must keep up this long (0: no confirming)
    skip_ceiling: bool = False  # debug runs only: no ceiling, so no ratios against it
    # (low, high) frames/s: one window of OVERLOAD_PROFILE instead of the ramp.
    overload_step: tuple[float, float] | None = None


@dataclass
class Env:
    """What the orchestrator holds for the whole run."""

    plan: Plan
    redis_url: str
    db: h.BenchDatabase
    city_id: str
    secret: str
    tokens_path: Path
    work_dir: Path
    redis_pid: int | None
    quiet_until: float = 0.0  # monotonic deadline for waiting out other work


# Counters read from Doorstep's /metrics (api/metrics.py): our key -> the sample's name.
_SERVER_COUNTERS = {
    "accepted": "doorstep_fixes_accepted_total",
    "frames": "doorstep_ws_frames_total",
    "flushes": "doorstep_ingest_flushes_total",
    "archived": "doorstep_trail_archived_total",
    "stale": "doorstep_workers_marked_stale_total",
    "freezes": "doorstep_gc_freezes_total",
    "sweeps": "doorstep_gc_sweeps_total",
    **{f"gc_s{g}": f'doorstep_gc_pause_seconds_total{{generation="{g}"}}' for g in range(3)},
    **{f"gc{g}": f'doorstep_gc_collections_total{{generation="{g}"}}' for g in range(3)},
}
_SERVER_NAMES = {name: key for key, name in _SERVER_COUNTERS.items()}


async def _server_counters(port: int) -> dict[str, float]:
    """Fixes accepted, frames, batches, trail COPY rows and cyclic GC (collections and
    pause seconds by generation, freezes, sweeps) so far, from Doorstep's /metrics;
    ``gc_s`` is the pause total over all generations."""
    status, body = await h.http_get(port, "/metrics", timeout_s=10.0)
    out = dict.fromkeys(_SERVER_COUNTERS, 0.0)
    if status == 200:
        for line in body.decode().splitlines():
            name, _, value = line.rpartition(" ")
            key = _SERVER_NAMES.get(name)
            if key is not None:
                out[key] = float(value)
    out["gc_s"] = out["gc_s0"] + out["gc_s1"] + out["gc_s2"]
    return out


@dataclass
class _Sample:
    """One tick of the window sampler: /proc meters, then the server's /metrics."""

    t: float
    server_cpu: float
    gen_cpu: float
    redis_cpu: float
    pg_cpu: dict[int, float]  # per PostgreSQL process alive at the tick
    machine_busy: float
    counters: dict[str, float] | None
    rtt_s: float  # /metrics round trip: also how long the server's event loop took to answer


async def _sample_window(
    t_start: float,
    ticks: int,
    server: h.ProcMeter,
    gens: list[h.ProcMeter],
    redis_meter: h.ProcMeter | None,
    metrics_port: int | None,
) -> list[_Sample]:
    """Sample at ``t_start + k * TIMELINE_BUCKET_S`` for k = 0..ticks (perf_counter).

    A tick already half a bucket late (the server took that long to answer /metrics)
    is skipped: the next interval spans more than one bucket and the buckets it does
    not have its middle in stay empty (None), rather than meter a few milliseconds.
    Without ``metrics_port`` only /proc is read (the scrapes cost the server)."""
    out: list[_Sample] = []
    for k in range(ticks + 1):
        delay = t_start + k * TIMELINE_BUCKET_S - time.perf_counter()
        if delay < -TIMELINE_BUCKET_S / 2 and k < ticks:
            continue
        if delay > 0:
            await asyncio.sleep(delay)
        s = server.sample()
        busy = h.CpuMeter._busy_s()
        gen_cpu = sum(g.sample().cpu_s for g in gens)
        redis_cpu = redis_meter.sample().cpu_s if redis_meter else 0.0
        pg_cpu = fleet.cpu_by_pid(h.pids_named(["postgres"]))
        t = time.perf_counter()
        counters: dict[str, float] | None = None
        if metrics_port is not None:
            with contextlib.suppress(OSError, TimeoutError):
                counters = await _server_counters(metrics_port)
        out.append(
            _Sample(
                s.t, s.cpu_s, gen_cpu, redis_cpu, pg_cpu, busy, counters, time.perf_counter() - t
            )
        )
    return out


def _pg_cpu_s(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds PostgreSQL's processes spent between two readings: those alive at both,
    plus all the time of one started in between (an autovacuum worker). One that exited
    in between takes its time with it."""
    return fleet.cpu_delta(before, after) + sum(v for p, v in after.items() if p not in before)


def _ms(us: float) -> float:
    ms = us / 1000
    return round(ms, 2) if ms < 10 else round(ms, 1)


def _timeline(res: dict[str, Any], lat: list[int], samples: list[_Sample]) -> dict[str, Any]:
    """The window per TIMELINE_BUCKET_S: frames by send time (sent, acked, ack latency
    p50/p99/max ms, the generator's longest loop gap and its own GC ms) and, by wall
    time, the server (cores, frames received, GC ms and collections, trail rows
    COPYed, workers marked stale, /metrics round trip ms), Redis, generator, PostgreSQL
    and machine cores and what none of them used. Lists of numbers, one per bucket; the buckets start at the window's start."""
    sent = res.pop("sent_per_bucket")
    n = len(sent)
    by: list[list[int]] = [[] for _ in range(n)]
    for us, sent_us in zip(lat, res.pop("sent_us"), strict=True):
        by[min(max(sent_us, 0) // int(TIMELINE_BUCKET_S * 1e6), n - 1)].append(us)
    pct = [h.percentiles(b, (50, 99)) for b in by]
    out: dict[str, Any] = {
        "bucket_ms": round(TIMELINE_BUCKET_S * 1000),
        "sent": sent,
        "acked": [len(b) for b in by],
        "p50_ms": [_ms(p["p50"]) if p else None for p in pct],
        "p99_ms": [_ms(p["p99"]) if p else None for p in pct],
        "max_ms": [_ms(p["max"]) if p else None for p in pct],
        "gen_gap_max_ms": res.pop("gap_max_ms_per_bucket"),
        "gen_gc_ms": res.pop("gc_ms_per_bucket"),
    }
    # Server side: each interval between two samples goes to the bucket of its middle.
    t0 = res.pop("t0")
    series: dict[str, list[float | None]] = {
        k: [None] * n
        for k in (
            "server_cores",
            "gen_cores",
            "redis_cores",
            "postgres_cores",
            "machine_cores",
            "other_cores",
            "server_frames",
            "server_gc_ms",
            "server_gc_n",
            "archived",
            "stale",
            "metrics_rtt_ms",
        )
    }
    for a, b in itertools.pairwise(samples):
        i = math.floor(((a.t + b.t) / 2 - t0) / TIMELINE_BUCKET_S)
        dt = b.t - a.t
        if not 0 <= i < n or dt <= 0:
            continue
        series["server_cores"][i] = round((b.server_cpu - a.server_cpu) / dt, 2)
        series["gen_cores"][i] = round((b.gen_cpu - a.gen_cpu) / dt, 2)
        series["redis_cores"][i] = round((b.redis_cpu - a.redis_cpu) / dt, 2)
        pg = _pg_cpu_s(a.pg_cpu, b.pg_cpu)
        series["postgres_cores"][i] = round(pg / dt, 2)
        series["machine_cores"][i] = machine = round((b.machine_busy - a.machine_busy) / dt, 2)
        metered = b.server_cpu - a.server_cpu + b.gen_cpu - a.gen_cpu + b.redis_cpu - a.redis_cpu
        series["other_cores"][i] = round(machine - (metered + pg) / dt, 2)  # kernel, others
        series["metrics_rtt_ms"][i] = round(b.rtt_s * 1000, 1)
        if a.counters and b.counters:
            ca, cb = a.counters, b.counters
            series["server_frames"][i] = round(cb["frames"] - ca["frames"])
            series["server_gc_ms"][i] = round((cb["gc_s"] - ca["gc_s"]) * 1000, 1)
            series["server_gc_n"][i] = round(sum(cb[f"gc{g}"] - ca[f"gc{g}"] for g in range(3)))
            series["archived"][i] = round(cb["archived"] - ca["archived"])
            series["stale"][i] = round(cb["stale"] - ca["stale"])
    out.update(series)
    out["sampler_offset_ms"] = round((samples[0].t - t0) * 1000, 1) if samples else None
    return out


def _timeline_summary(step: dict[str, Any]) -> str:
    """One line: the window's slowest buckets by p99 and the server's GC in it."""
    tl = step.get("timeline") or {}
    p99 = tl.get("p99_ms") or []
    worst = sorted((i for i, v in enumerate(p99) if v is not None), key=lambda i: -p99[i])[:4]
    b = tl.get("bucket_ms", 250) / 1000
    gc_ = step.get("server_gc") or {}
    return (
        "slowest buckets (sent at s: p99 ms): "
        + ", ".join(f"{i * b:g}: {p99[i]}" for i in sorted(worst))
        + f"; server GC {gc_.get('seconds')} s in {gc_.get('collections')} collections"
    )


def _server_gc(samples: list[_Sample]) -> dict[str, Any] | None:
    """The server's cyclic GC over the sampled window (first to last /metrics)."""
    scraped = [s for s in samples if s.counters]
    if len(scraped) < 2:
        return None
    a, b = cast(dict[str, float], scraped[0].counters), cast(dict[str, float], scraped[-1].counters)
    wall = scraped[-1].t - scraped[0].t
    return {
        "seconds": round(b["gc_s"] - a["gc_s"], 4),
        "collections": int(sum(b[f"gc{g}"] - a[f"gc{g}"] for g in range(3))),
        "seconds_by_gen": [round(b[f"gc_s{g}"] - a[f"gc_s{g}"], 4) for g in range(3)],
        "collections_by_gen": [int(b[f"gc{g}"] - a[f"gc{g}"]) for g in range(3)],
        "freezes": int(b["freezes"] - a["freezes"]),
        "sweeps": int(b["sweeps"] - a["sweeps"]),
        "share": round((b["gc_s"] - a["gc_s"]) / max(wall, 1e-9), 4),
        "over_s": round(wall, 2),
        "flushes": int(b["flushes"] - a["flushes"]),
        "archived": int(b["archived"] - a["archived"]),
    }


def _lat_ms(lat_us: list[int]) -> dict[str, float]:
    return {k: round(v / 1000, 2) for k, v in h.percentiles(lat_us).items()}


async def _measure_step(
    env: Env,
    gen: GeneratorClient,
    server_pid: int,
    *,
    rate: float,
    seconds: float,
    fixes: int,
    acks: bool,
    count_port: int | None,
    ack_interval_s: float = 0.0,
    metrics_port: int | None = None,
    profile: list[list[float]] | None = None,
) -> dict[str, Any]:
    """One window; with --wait-quiet, waits for a quiet machine and redoes a disturbed one."""
    step: dict[str, Any] = {}
    for attempt in range(3):
        if env.quiet_until > time.monotonic():
            await _wait_quiet(env.quiet_until - time.monotonic(), quiet_s=1.0)
        step = await _measure_once(
            env,
            gen,
            server_pid,
            rate=rate,
            seconds=seconds,
            fixes=fixes,
            acks=acks,
            count_port=count_port,
            ack_interval_s=ack_interval_s,
            metrics_port=metrics_port,
            profile=profile,
        )
        step["attempt"] = attempt + 1
        if step["other_cores"] <= DISTURBED_CORES or env.quiet_until <= time.monotonic():
            break
        h.progress(f"  (other work took {step['other_cores']} cores: measuring again)")
    return step


async def _measure_once(
    env: Env,
    gen: GeneratorClient,
    server_pid: int,
    *,
    rate: float,
    seconds: float,
    fixes: int,
    acks: bool,
    count_port: int | None,
    ack_interval_s: float = 0.0,
    metrics_port: int | None = None,
    profile: list[list[float]] | None = None,
) -> dict[str, Any]:
    """Drive one window and meter the server, the generator, Redis and PostgreSQL."""
    server = h.ProcMeter(server_pid)
    gens = [h.ProcMeter(p) for p in gen.pids]
    redis_meter = h.ProcMeter(env.redis_pid) if env.redis_pid else None
    sampling: asyncio.Task[list[_Sample]] | None = None
    if acks and metrics_port:  # the timeline's server side, from just before the window
        ticks = math.ceil(seconds / TIMELINE_BUCKET_S)
        sampling = asyncio.create_task(
            _sample_window(
                time.perf_counter(),
                ticks,
                server,
                gens,
                redis_meter,
                metrics_port if env.plan.sample_server else None,
            )
        )
    driving = asyncio.create_task(
        gen.drive(
            rate=rate,
            seconds=seconds,
            fixes=fixes,
            window_s=env.plan.window_s,
            drain_s=env.plan.drain_s,
            acks=acks,
            ack_interval_s=ack_interval_s,
            profile=profile,
        )
    )
    # Meter the middle of the window (skip 10% at each end) for the server-side rates.
    lead = min(0.5, seconds * 0.1)
    await asyncio.sleep(lead)
    cpu = h.CpuMeter()
    s0 = server.sample()
    g0 = [g.sample() for g in gens]
    r0 = redis_meter.sample() if redis_meter else None
    pg0 = fleet.cpu_by_pid(h.pids_named(["postgres"]))  # backends come and go: list them now
    c0 = (await h.http_get_json(count_port, "/count"))["frames"] if count_port else 0
    m0 = await _server_counters(metrics_port) if metrics_port else None
    await asyncio.sleep(seconds - 2 * lead)
    c1 = (await h.http_get_json(count_port, "/count"))["frames"] if count_port else 0
    m1 = await _server_counters(metrics_port) if metrics_port else None
    s1 = server.sample()
    g1 = [g.sample() for g in gens]
    r1 = redis_meter.sample() if redis_meter else None
    pg1 = fleet.cpu_by_pid(h.pids_named(["postgres"]))
    busy = cpu.cores_busy()
    res = await driving
    samples = await sampling if sampling else []
    wall = s1.t - s0.t
    lat = res.pop("latencies_us")
    timeline = _timeline(res, lat, samples) if acks else None
    if not acks:
        for key in (
            "sent_us",
            "t0",
            "sent_per_bucket",
            "gap_max_ms_per_bucket",
            "gc_ms_per_bucket",
        ):
            res.pop(key)
    out: dict[str, Any] = {
        "offered_frames_per_s": round(rate),
        "sent_frames_per_s": round(res["sent_frames"] / res["elapsed_s"]),
        **{k: v for k, v in res.items() if k not in ("rate",)},
        "server_cores": h.cores(s0, s1),
        "generator_cores": round(
            sum(b.cpu_s - a.cpu_s for a, b in zip(g0, g1, strict=True)) / wall, 3
        ),
        "redis_cores": round((r1.cpu_s - r0.cpu_s) / wall, 3) if r0 and r1 else None,
        "postgres_cores": round(_pg_cpu_s(pg0, pg1) / wall, 3),
        "machine_cores_busy": busy,
        "server_rss_mib": round(s1.rss / 2**20, 1),
    }
    known = out["server_cores"] + out["generator_cores"] + (out["redis_cores"] or 0.0)
    out["other_cores"] = round(busy - known - out["postgres_cores"], 3)  # kernel, other users
    server_cpu_s = s1.cpu_s - s0.cpu_s
    if acks:
        fixes_s = res["acked_fixes"] / res["elapsed_s"]
        out["acked_fixes_per_s"] = round(fixes_s)
        if m0 is not None and m1 is not None:
            # What the server wrote in the metered middle of the window (its own counter):
            # with held-back acks the acks trail the writes by up to the interval.
            fixes_s = (m1["accepted"] - m0["accepted"]) / wall
            out["gc_share"] = round((m1["gc_s"] - m0["gc_s"]) / wall, 4)
            out["gc2_collections"] = int(m1["gc2"] - m0["gc2"])
        out["server_gc"] = _server_gc(samples) or (
            _server_gc([_Sample(s0.t, 0, 0, 0, {}, 0, m0, 0), _Sample(s1.t, 0, 0, 0, {}, 0, m1, 0)])
            if m0 is not None and m1 is not None
            else None
        )
        out["accepted_fixes_per_s"] = round(fixes_s)
        out["latency_ms"] = _lat_ms(lat)
        # CPU per fix over the metered middle of the window, at the acked rate.
        out["server_us_per_fix"] = round(server_cpu_s / max(fixes_s * wall, 1) * 1e6, 1)
        if r0 and r1:
            out["redis_us_per_fix"] = round((r1.cpu_s - r0.cpu_s) / max(fixes_s * wall, 1) * 1e6, 1)
        out["measured_per_s"] = fixes_s
        out["timeline"] = timeline
    else:
        frames_s = (c1 - c0) / wall
        out["received_frames_per_s"] = round(frames_s)
        out["server_us_per_frame"] = round(server_cpu_s / max(frames_s * wall, 1) * 1e6, 1)
        out["measured_per_s"] = frames_s * fixes
    return out


OVERLOAD_PROFILE = (10.0, 5.0, 30.0)  # seconds at the low rate, the high, the low again
RECOVERY_SLACK = 2.0  # a bucket has recovered at p99 within this many times the low p99 ...
RECOVERY_FLOOR_MS = 250.0  # ... or within this, whichever is more


def _recovery(step: dict[str, Any]) -> dict[str, Any]:
    """How the server came back after the overload step of OVERLOAD_PROFILE.

    By send time, in timeline buckets: the low rate before the step (its p99 and acked
    share), and the first moment after the step from which every bucket to the end
    (but the last second, whose acks may still be out) has its frames acked (≥ 95 % of
    those sent) at a p99 within RECOVERY_SLACK × the p99 before the step (at least
    RECOVERY_FLOOR_MS): ``recovered_after_s``, None if it never did. Frames refused
    while shedding are not acked: they count against a bucket like late ones.
    """
    tl = step["timeline"]
    b = tl["bucket_ms"] / 1000
    sent, acked, p99 = tl["sent"], tl["acked"], tl["p99_ms"]
    before = range(int(2 / b), int(OVERLOAD_PROFILE[0] / b))  # skip the first 2 s
    lat_before = sorted(v for i in before if (v := p99[i]) is not None)
    base_p99 = lat_before[len(lat_before) // 2] if lat_before else None  # median bucket
    limit = max(RECOVERY_FLOOR_MS, RECOVERY_SLACK * (base_p99 or 0.0))
    step_end = int((OVERLOAD_PROFILE[0] + OVERLOAD_PROFILE[1]) / b)
    last = len(sent) - int(1 / b)

    def good(i: int) -> bool:
        return bool(sent[i]) and acked[i] >= 0.95 * sent[i] and (p99[i] or math.inf) <= limit

    recovered: int | None = None
    for i in range(last - 1, step_end - 1, -1):
        if not good(i):
            break
        recovered = i
    after = range(step_end + int(10 / b), last)  # from 10 s after the step
    sent_after = sum(sent[i] for i in after)
    acked_after = sum(acked[i] for i in after)
    p99_after = [v for i in after if (v := p99[i]) is not None]
    return {
        "p99_ms_before": base_p99,
        "limit_p99_ms": limit,
        "recovered_after_s": None if recovered is None else round(recovered * b - step_end * b, 2),
        "acked_share_from_10s": round(acked_after / sent_after, 4) if sent_after else None,
        "worst_bucket_p99_ms_from_10s": max(p99_after) if p99_after else None,
    }


def _kept_up(step: dict[str, Any], fixes: int, acks: bool, p99_ms: float) -> bool:
    offered = step["offered_frames_per_s"] * fixes
    if step["measured_per_s"] < 0.95 * offered:
        return False
    if step["missed_generator"] + step["skipped_window"] > 0.01 * max(step["attempts"], 1):
        return False
    if acks:
        p99 = step["latency_ms"].get("p99", math.inf)
        if p99 > p99_ms or not step["drained"]:
            return False
    return True


CONFIRM_TRIES = 4


async def _ramp(
    env: Env,
    label: str,
    step: Callable[[float, float], Awaitable[dict[str, Any]]],
    fixes: int,
    acks: bool,
) -> dict[str, Any]:
    """Double the offered rate until the server falls behind, then bisect ``refine`` times.

    A step that falls behind is measured once more before it counts as falling behind.
    With ``plan.confirm_s``, the best rate that kept up is then measured again for that
    long (lower by 10 % a try, up to CONFIRM_TRIES) and only a confirmed rate counts.
    """
    plan = env.plan
    rate = plan.start_rate / fixes
    lo: float | None = None
    hi: float | None = None
    steps: list[dict[str, Any]] = []
    refinements = 0
    while True:
        s = await step(rate, plan.step_s)
        ok = _kept_up(s, fixes, acks, plan.kept_up_p99_ms)
        if not ok:  # one stall (a full GC of either server) should not end the ramp: confirm
            s["kept_up"] = ok
            steps.append(s)
            s = await step(rate, plan.step_s)
            ok = _kept_up(s, fixes, acks, plan.kept_up_p99_ms)
            s["confirms"] = True
        s["kept_up"] = ok
        steps.append(s)
        p99 = s.get("latency_ms", {}).get("p99")
        h.progress(
            f"  {label}: offered {rate:,.0f} frames/s -> {s['measured_per_s']:,.0f} "
            f"{'fixes' if acks else 'fixes (received)'}/s"
            + (f", p99 {p99} ms" if p99 is not None else "")
            + f"; cores: server {s['server_cores']}, gen {s['generator_cores']}, "
            f"redis {s['redis_cores']}, other {s['other_cores']}"
            + ("" if ok else "  (fell behind)")
        )
        if ok:
            lo = rate
        else:
            hi = rate
        if hi is None:
            if rate >= plan.max_rate:
                break
            rate = min(rate * 2, plan.max_rate)
            continue
        if lo is None:
            if rate < 100:
                break
            rate /= 2
            continue
        if refinements >= plan.refine or hi / lo < 1.1:
            break
        refinements += 1
        rate = math.sqrt(lo * hi)
    kept = [s for s in steps if s["kept_up"]]
    best_kept = max(kept, key=lambda s: s["measured_per_s"]) if kept else None
    if best_kept is not None and plan.confirm_s > 0:
        # A short step can keep up by luck, or fall behind only after a few seconds:
        # the sustained rate is the best one that keeps up for a whole confirming window
        # (as long as the 80 % window); each failed try goes 10 % lower.
        rate = best_kept["offered_frames_per_s"]
        best_kept = None
        for _ in range(CONFIRM_TRIES):
            s = await step(rate, plan.confirm_s)
            ok = _kept_up(s, fixes, acks, plan.kept_up_p99_ms)
            s["kept_up"] = ok
            s["confirming"] = True
            steps.append(s)
            p99 = s.get("latency_ms", {}).get("p99")
            h.progress(
                f"  {label}: confirming {rate:,.0f} frames/s for {plan.confirm_s:g} s -> "
                f"{s['measured_per_s']:,.0f}/s"
                + (f", p99 {p99} ms" if p99 is not None else "")
                + ("" if ok else "  (fell behind)")
            )
            if ok:
                best_kept = s
                break
            rate *= 0.9
    best_any = max(steps, key=lambda s: s["measured_per_s"])
    return {
        "sustained_per_s": round(best_kept["measured_per_s"]) if best_kept else 0,
        "sustained_offered_frames_per_s": best_kept["offered_frames_per_s"] if best_kept else 0,
        "max_per_s": round(best_any["measured_per_s"]),
        "steps": [_brief(s) for s in steps],
        "at_sustained": _brief(best_kept) if best_kept else None,
    }


def _brief(s: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in s.items() if k != "measured_per_s"}


async def _rss_per_connection(
    env: Env,
    gen: GeneratorClient,
    server_pid: int,
    url: str,
    workers: int,
    *,
    hello: bool,
) -> dict[str, Any]:
    """Open ``workers`` idle connections; RSS growth per connection after a warm-up."""
    meter = h.ProcMeter(server_pid)
    warm = min(100, workers // 10)
    r = await gen.connect(url, env.tokens_path, 0, warm, hello=hello)
    await asyncio.sleep(1.0)
    before = meter.sample().rss
    t = time.perf_counter()
    r2 = await gen.connect(url, env.tokens_path, warm, workers, hello=hello)
    connect_s = time.perf_counter() - t
    await asyncio.sleep(2.0)
    after = meter.sample().rss
    connected = r["connected"] + r2["connected"]
    first_try = collections.Counter(r["failed_first_try"])
    first_try.update(r2["failed_first_try"])
    if connected < workers:
        raise RuntimeError(f"only {connected}/{workers} connected: {dict(first_try)}")
    per = (after - before) / max(r2["connected"], 1)
    return {
        "connected": connected,
        "handshake_batch": CONNECT_BATCH,
        "failed_first_try": dict(first_try),
        "retried": r["retried"] + r2["retried"],
        "connect_s": round(connect_s, 2),
        "connects_per_s": round(r2["connected"] / max(connect_s, 1e-9)),
        "rss_before_mib": round(before / 2**20, 1),
        "rss_after_mib": round(after / 2**20, 1),
        "rss_per_idle_conn_kib": round(per / 1024, 1),
    }


def _doorstep_env(env: Env, params: Path) -> dict[str, str]:
    assert env.db.url
    return {
        **os.environ,
        "REDIS_URL": env.redis_url,
        "DATABASE_URL": env.db.url,
        "DOORSTEP_DATA_DIR": str(env.work_dir / "data"),
        "DOORSTEP_SECRET_KEY": env.secret,
        "DOORSTEP_REDIS_PREFIX": env.db.prefix,
        "DOORSTEP_PARAMS": str(params),
        "DOORSTEP_LOG_LEVEL": LOG_LEVEL.upper(),
        **h.METRICS_ENV,
    }


def _doorstep_server(env: Env, port: int, variant: Variant) -> h.Server:
    params = env.work_dir / f"params-{variant.name}.toml"
    params.write_text(variant.params())
    return h.Server(
        f"doorstep-{port}",
        [sys.executable, "-m", "doorstep", "serve", "--port", str(port)],
        _doorstep_env(env, params),
        env.work_dir,
    )


def _ceiling_server(env: Env, port: int) -> h.Server:
    return h.Server(
        f"ceiling-{port}",
        [sys.executable, SCRIPT, "--ceiling-server", str(port)],
        dict(os.environ),
        env.work_dir,
    )


async def _run_ceiling(env: Env, workers: int) -> dict[str, Any]:
    port = h.free_port()
    server = _ceiling_server(env, port)
    gen = await GeneratorClient.start(env.plan.generators)
    try:
        await server.wait_http(port, "/count")
        url = f"ws://{h.LOOPBACK}:{port}{CEILING_PATH}"
        h.progress(f"ceiling server: connecting {workers:,} sockets")
        conns = await _rss_per_connection(env, gen, server.pid, url, workers, hello=False)
        h.progress(
            f"  {conns['connected']:,} connected in {conns['connect_s']} s; "
            f"{conns['rss_per_idle_conn_kib']} KiB RSS per idle connection"
        )
        out: dict[str, Any] = {"connections": conns, "by_fixes_per_frame": {}}
        for fixes in env.plan.ceiling_fixes_per_frame:

            async def step(rate: float, seconds: float, fixes: int = fixes) -> dict[str, Any]:
                return await _measure_step(
                    env,
                    gen,
                    server.pid,
                    rate=rate,
                    seconds=seconds,
                    fixes=fixes,
                    acks=False,
                    count_port=port,
                )

            ramp = await _ramp(env, f"ceiling {workers:,}w {fixes}f", step, fixes, acks=False)
            sustained_frames = ramp["sustained_per_s"] / fixes
            ramp["sustained_frames_per_s"] = round(sustained_frames)
            ramp["max_frames_per_s"] = round(ramp["max_per_s"] / fixes)
            out["by_fixes_per_frame"][str(fixes)] = ramp
        await gen.close()
        return out
    finally:
        await gen.stop()
        server.stop()


async def _run_doorstep(env: Env, workers: int, variant: Variant) -> list[dict[str, Any]]:
    port = h.free_port()
    server = _doorstep_server(env, port, variant)
    label = f"doorstep[{variant.name}]"
    ack_interval_s = variant.ack_interval_ms / 1000
    gen = await GeneratorClient.start(env.plan.generators)
    runs: list[dict[str, Any]] = []
    try:
        await server.wait_http(port, "/readyz")
        url = f"ws://{h.LOOPBACK}:{port}{WORKER_PATH}"
        h.progress(f"{label}: connecting {workers:,} worker sockets")
        conns = await _rss_per_connection(env, gen, server.pid, url, workers, hello=True)
        h.progress(
            f"  {conns['connected']:,} connected in {conns['connect_s']} s "
            f"({conns['connects_per_s']}/s); "
            f"{conns['rss_per_idle_conn_kib']} KiB RSS per idle connection"
        )
        for fixes in env.plan.fixes_per_frame:

            async def step(rate: float, seconds: float, fixes: int = fixes) -> dict[str, Any]:
                return await _measure_step(
                    env,
                    gen,
                    server.pid,
                    rate=rate,
                    seconds=seconds,
                    fixes=fixes,
                    acks=True,
                    count_port=None,
                    ack_interval_s=ack_interval_s,
                    metrics_port=port,
                )

            if env.plan.overload_step:  # one window: low, an overload step, low again
                low, high = env.plan.overload_step
                profile = [[OVERLOAD_PROFILE[0], low], [OVERLOAD_PROFILE[1], high]]
                profile.append([OVERLOAD_PROFILE[2], low])
                s = await _measure_step(
                    env,
                    gen,
                    server.pid,
                    rate=high,
                    seconds=sum(OVERLOAD_PROFILE),
                    fixes=fixes,
                    acks=True,
                    count_port=None,
                    ack_interval_s=ack_interval_s,
                    metrics_port=port,
                    profile=profile,
                )
                recovery = _recovery(s)
                h.progress(
                    f"  {label} {workers:,}w {fixes}f {low:,.0f} -> {high:,.0f} -> {low:,.0f} "
                    f"frames/s: {recovery}; errors {s['errors']}"
                )
                runs.append(
                    {
                        "variant": variant.name,
                        "server_params": variant.params(),
                        "workers": workers,
                        "fixes_per_frame": fixes,
                        "overload_step": {"profile": profile, "recovery": recovery, **_brief(s)},
                    }
                )
                continue
            if env.plan.rates:  # diagnostics: fixed rates instead of the ramp
                fixed = []
                for rate in env.plan.rates:
                    s = _brief(await step(rate, env.plan.measure_s))
                    h.progress(
                        f"  {label} {workers:,}w {fixes}f at {rate:,.0f} frames/s: "
                        f"{s['accepted_fixes_per_s']:,} fixes/s, latency {s['latency_ms']}, "
                        f"{s['server_us_per_fix']} us server CPU per fix"
                    )
                    h.progress(f"    {_timeline_summary(s)}")
                    fixed.append(s)
                runs.append(
                    {
                        "variant": variant.name,
                        "workers": workers,
                        "fixes_per_frame": fixes,
                        "fixed_rates": fixed,
                    }
                )
                continue
            ramp = await _ramp(env, f"{label} {workers:,}w {fixes}f", step, fixes, acks=True)
            at80: dict[str, Any] | None = None
            if ramp["sustained_offered_frames_per_s"]:
                rate80 = 0.8 * ramp["sustained_per_s"] / fixes
                at80 = _brief(await step(rate80, env.plan.measure_s))
                h.progress(
                    f"  {label} {workers:,}w {fixes}f at 80%: {rate80:,.0f} frames/s -> "
                    f"{at80['accepted_fixes_per_s']:,} fixes/s, latency {at80['latency_ms']}, "
                    f"{at80['server_us_per_fix']} us server CPU per fix"
                )
                h.progress(f"    {_timeline_summary(at80)}")
            runs.append(
                {
                    "variant": variant.name,
                    "server_params": variant.params(),
                    "workers": workers,
                    "fixes_per_frame": fixes,
                    "connections": conns,
                    "sustained_fixes_per_s": ramp["sustained_per_s"],
                    "max_fixes_per_s": ramp["max_per_s"],
                    "at_80pct": at80,
                    "ramp": ramp,
                }
            )
        runs[-1]["redis_check"] = await _check_redis(env, gen)
        await gen.close()
        return runs
    finally:
        await gen.stop()
        server.stop()


async def _check_redis(env: Env, gen: GeneratorClient) -> dict[str, Any]:
    """Every worker's ``seq`` in Redis is at least the last seq the server acked it."""
    from redis.asyncio import Redis

    from doorstep.keys import Keys
    from tracking import positions

    keys = Keys(env.db.prefix)
    seqs = await gen.seqs()
    redis = Redis.from_url(env.redis_url)
    try:
        live = await positions.read_many(redis, keys, env.city_id, [w for w, _ in seqs])
    finally:
        await redis.aclose()
    stored = {w: state.seq or 0 for w, state in live.items()}
    behind = sum(1 for w, s in seqs if stored.get(w, 0) < s)
    return {"workers_checked": len(seqs), "redis_seq_behind_ack": behind}


async def _geoadd_baseline(env: Env) -> dict[str, Any]:
    """Raw pipelined GEOADD (pipelines of 1000, redis-py asyncio) on the same Redis."""
    from redis.asyncio import Redis

    redis = Redis.from_url(env.redis_url)
    key = f"{env.db.prefix}baseline:geo"
    meter = h.ProcMeter(env.redis_pid) if env.redis_pid else None
    client = h.ProcMeter(os.getpid())
    members = 10_000
    try:
        ops = 0
        r0 = meter.sample() if meter else None
        c0 = client.sample()
        t0 = time.perf_counter()
        i = 0
        while time.perf_counter() - t0 < env.plan.geoadd_s:
            async with redis.pipeline(transaction=False) as pipe:
                for _ in range(1000):
                    frac = (i * 0.6180339887) % 1.0
                    pipe.geoadd(
                        key,
                        (
                            CITY_CENTER[1] - 0.008 + 0.016 * frac,
                            CITY_CENTER[0] - 0.008 + 0.016 * ((i * 0.7548776662) % 1.0),
                            f"w{i % members}",
                        ),
                    )
                    i += 1
                await pipe.execute()
            ops += 1000
        wall = time.perf_counter() - t0
        r1 = meter.sample() if meter else None
        c1 = client.sample()
        await redis.delete(key)
    finally:
        await redis.aclose()
    return {
        "geoadd_ops_per_s": round(ops / wall),
        "pipeline": 1000,
        "seconds": round(wall, 2),
        "client_cores": round((c1.cpu_s - c0.cpu_s) / wall, 3),
        "redis_cores": round((r1.cpu_s - r0.cpu_s) / wall, 3) if r0 and r1 else None,
        "redis_us_per_op": round((r1.cpu_s - r0.cpu_s) / ops * 1e6, 2) if r0 and r1 else None,
    }


async def _redis_pid(redis_url: str) -> int | None:
    """The Redis server's pid if it runs on this machine (to meter its CPU)."""
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    try:
        info = await redis.info("server")
    finally:
        await redis.aclose()
    return h.local_pid(int(info.get("process_id", 0)), ("redis", "valkey"))


async def _background_load(seconds: float = 2.0) -> float:
    """Busy cores on the machine while this benchmark runs nothing (other users' work)."""
    meter = h.CpuMeter()
    await asyncio.sleep(seconds)
    busy = meter.cores_busy()
    if busy > 0.2:
        h.progress(
            f"warning: the machine is busy with other work ({busy} cores): figures will suffer"
        )
    return busy


async def _wait_quiet(timeout_s: float, *, quiet_s: float = 3.0) -> None:
    """Wait (at most ``timeout_s``) until the machine is idle for ``quiet_s``.

    Call it while everything this benchmark runs is idle: what is busy is other work.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        meter = h.CpuMeter()
        await asyncio.sleep(quiet_s)
        busy = meter.cores_busy()
        if busy < DISTURBED_CORES:
            return
        h.progress(f"waiting for a quiet machine: {busy} cores busy with other work")


async def _setup(plan: Plan, redis_url: str, database_url: str, work_dir: Path) -> Env:
    from accounts.passwords import hash_password
    from catalog import service as catalog_service
    from catalog import store as catalog_store
    from doorstep.db import create_pool

    db = h.BenchDatabase(database_url, redis_url)
    await db.create()
    h.progress(f"database {db.name} created and migrated; Redis prefix {db.prefix}")
    city = catalog_service.build_city(
        id=f"bench-{db.prefix.split(':')[1]}",
        name_zh="压测城",
        name_en="Ingest benchmark city",
        timezone="Asia/Shanghai",
        currency="CNY",
        service_area=SQUARE,
        crs="wgs84",
    )
    n = max(plan.workers)
    secret = h.bench_secret()  # before the accounts: their phones are sealed with its keys
    pool = await create_pool(db.url, min_size=1, max_size=1)  # json codecs for the city
    try:
        t = time.perf_counter()
        async with pool.acquire() as conn:
            await catalog_store.write_city(conn, city, upsert=False)
            ids = await h.create_workers(
                conn,
                n,
                city_id=city.id,
                password_hash=await hash_password(secrets.token_urlsafe(16)),
                home=CITY_CENTER,
            )
    finally:
        await pool.close()
    tokens = h.mint_access_tokens(ids, key=secret)
    tokens_path = work_dir / "tokens.json"
    tokens_path.write_bytes(orjson.dumps(tokens))
    h.progress(f"{n:,} workers and tokens in {time.perf_counter() - t:.1f} s")
    return Env(
        plan=plan,
        redis_url=redis_url,
        db=db,
        city_id=city.id,
        secret=secret,
        tokens_path=tokens_path,
        work_dir=work_dir,
        redis_pid=await _redis_pid(redis_url),
    )


def _ratios_and_targets(
    runs: list[dict[str, Any]], ceilings: dict[int, dict[str, Any]], baselines: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    ratios: dict[str, Any] = {}
    geo = baselines["geoadd"]["geoadd_ops_per_s"]
    steps = [r for r in runs if "overload_step" in r]
    runs = [r for r in runs if "fixed_rates" not in r and "overload_step" not in r]
    if steps:  # --overload-step: the recovery per variant, against the one without shedding
        out = {f"{r['variant']}_{r['workers']}w": r["overload_step"]["recovery"] for r in steps}
        return {}, {
            "recovery_within_10s": {
                k: v["recovered_after_s"] is not None and v["recovered_after_s"] <= 10
                for k, v in out.items()
            },
            "recovery": out,
        }
    if not runs:
        return ratios, {"measured": "not measured (--rates)"}
    for r in runs:
        w, f, v = r["workers"], r["fixes_per_frame"], r["variant"]
        measured = ceilings.get(w)  # None: --skip-ceiling
        ceiling = measured["by_fixes_per_frame"] if measured else {}
        c1 = ceiling.get("1", {}).get("sustained_frames_per_s")
        cf = ceiling.get(str(f), {}).get("sustained_frames_per_s")
        key = f"{v}_{w}w_{f}f"
        if measured is None:
            ratios[key] = {
                "accepted_fixes_per_s": r["sustained_fixes_per_s"],
                "ceiling": "not measured (--skip-ceiling)",
                "vs_geoadd": round(r["sustained_fixes_per_s"] / geo, 3) if geo else None,
            }
            continue
        ratios[key] = {
            "accepted_fixes_per_s": r["sustained_fixes_per_s"],
            "vs_ceiling_frames_1f": round(r["sustained_fixes_per_s"] / c1, 3) if c1 else None,
            "frames_vs_ceiling_frames_same_shape": round(r["sustained_fixes_per_s"] / f / cf, 3)
            if cf
            else None,
            "vs_geoadd": round(r["sustained_fixes_per_s"] / geo, 3) if geo else None,
            "rss_per_idle_conn_vs_ceiling": round(
                r["connections"]["rss_per_idle_conn_kib"]
                / max(ceilings[w]["connections"]["rss_per_idle_conn_kib"], 0.1),
                2,
            ),
        }
    big = max(r["workers"] for r in runs)
    targets: dict[str, Any] = {"measured_at_workers": big, "target_workers": 10_000}
    for variant in dict.fromkeys(r["variant"] for r in runs):
        at = {
            r["fixes_per_frame"]: r for r in runs if r["workers"] == big and r["variant"] == variant
        }
        t: dict[str, Any] = {}
        if 1 in at and big not in ceilings:
            t["1f_accepted_vs_ceiling_ge_0.5"] = {
                "value": None,
                "reached": None,
                "ceiling": "not measured (--skip-ceiling)",
            }
        elif 1 in at:
            ratio = ratios[f"{variant}_{big}w_1f"]["vs_ceiling_frames_1f"]
            t["1f_accepted_vs_ceiling_ge_0.5"] = {
                "value": ratio,
                "reached": ratio is not None and ratio >= 0.5,
            }
        if 5 in at:
            v = at[5]["sustained_fixes_per_s"]
            t["5f_accepted_fixes_per_s_ge_40000"] = {"value": v, "reached": v >= 40_000}
        for f, r in sorted(at.items()):
            p99 = (r["at_80pct"] or {}).get("latency_ms", {}).get("p99")
            t[f"{f}f_p99_ms_at_80pct_le_50"] = {
                "value": p99,
                "reached": p99 is not None and p99 <= 50,
            }
        any_run = next(iter(at.values()))
        kib = any_run["connections"]["rss_per_idle_conn_kib"]
        t["rss_per_idle_conn_kib_le_40"] = {"value": kib, "reached": kib <= 40}
        targets[variant] = t
    return ratios, targets


async def orchestrate(
    plan: Plan, redis_url: str, database_url: str, *, wait_quiet_s: float = 0.0
) -> dict[str, Any]:
    h.raise_nofile()
    started = time.perf_counter()
    quiet_until = time.monotonic() + wait_quiet_s
    if wait_quiet_s > 0:
        await _wait_quiet(wait_quiet_s)
    background = await _background_load()
    with tempfile.TemporaryDirectory(prefix="doorstep-ingest-") as tmp:
        work_dir = Path(tmp)
        env = await _setup(plan, redis_url, database_url, work_dir)
        env.quiet_until = quiet_until
        try:
            baselines: dict[str, Any] = {"geoadd": await _geoadd_baseline(env)}
            h.progress(f"raw pipelined GEOADD: {baselines['geoadd']['geoadd_ops_per_s']:,} ops/s")
            ceilings: dict[int, dict[str, Any]] = {}
            runs: list[dict[str, Any]] = []
            for workers in plan.workers:
                if not plan.skip_ceiling:
                    ceilings[workers] = await _run_ceiling(env, workers)
                for variant in plan.variants:
                    runs += await _run_doorstep(env, workers, variant)
            baselines["ceiling"] = (
                "not measured (--skip-ceiling)"
                if plan.skip_ceiling
                else {str(w): c for w, c in ceilings.items()}
            )
            ratios, targets = _ratios_and_targets(runs, ceilings, baselines)
            background_after = await _background_load()
        finally:
            deleted = await env.db.drop()
            h.progress(f"dropped {env.db.name}; deleted {deleted} Redis keys")
    return {
        "benchmark": "ingest",
        "machine": {
            **h.machine(
                ["uvicorn", "websockets", "starlette", "uvloop", "redis", "asyncpg", "msgspec"]
            ),
            "background_cores_busy": {"before": background, "after": background_after},
        },
        "params": {
            **{k: v for k, v in plan.__dict__.items()},
            "frame": "text, {type: fixes, fixes: [{seq, ts_ms, lat, lng, accuracy_m}]}",
            "server_socket_params": "frames_per_s=1000, burst_frames=1000 (and per variant)",
            "latency": "frame sent -> ack received (ack follows the Redis write); with held-back "
            "acks only the frames asking for an ack at once (every 10th) are timed",
            "wait_quiet_s": wait_quiet_s,
        },
        "runs": runs,
        "baselines": baselines,
        "ratios": ratios,
        "targets": targets,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _plan(args: argparse.Namespace) -> Plan:
    fixes = tuple(dict.fromkeys(args.fixes_per_frame))
    if any(f < 1 for f in fixes):
        raise SystemExit("--fixes-per-frame: each must be >= 1")
    if args.quick:
        return Plan(
            quick=True,
            workers=tuple(args.workers or (1000,)),
            fixes_per_frame=fixes,
            ceiling_fixes_per_frame=(1,),
            step_s=1.0,
            measure_s=3.0,
            start_rate=4000,
            max_rate=200_000,
            refine=1,
            window_s=1.0,
            drain_s=5.0,
            generators=args.generators,
            kept_up_p99_ms=1000.0,
            geoadd_s=1.0,
            variants=tuple(VARIANTS[v] for v in args.variants),
            skip_ceiling=args.skip_ceiling or bool(args.rates or args.overload_step),
            sample_server=args.sample_server,
            rates=tuple(args.rates or ()),
            overload_step=tuple(args.overload_step) if args.overload_step else None,
        )
    return Plan(
        quick=False,
        workers=tuple(args.workers or (1000, 10_000)),
        fixes_per_frame=fixes,
        ceiling_fixes_per_frame=tuple(sorted({1, *fixes})),  # the ratios need 1 and f
        step_s=3.0,
        measure_s=10.0,
        start_rate=2000,
        max_rate=200_000,
        refine=3,
        window_s=1.0,
        drain_s=20.0,
        generators=args.generators,
        kept_up_p99_ms=1000.0,
        geoadd_s=3.0,
        confirm_s=10.0,
        variants=tuple(VARIANTS[v] for v in args.variants),
        skip_ceiling=args.skip_ceiling or bool(args.rates or args.overload_step),
        sample_server=args.sample_server,
        rates=tuple(args.rates or ()),
        overload_step=tuple(args.overload_step) if args.overload_step else None,
    )


# An indented list of numbers (a JSON string cannot hold a raw newline: never inside one).
_NUMBER_LIST = re.compile(r"\[\n[-+.,\deE\snul]*\]")


def _compact_lists(text: str) -> str:
    """Put every list of numbers (the timelines) on one line of the indented JSON."""
    return _NUMBER_LIST.sub(
        lambda m: "[" + ", ".join(x.strip() for x in m.group(0)[1:-1].split(",")) + "]", text
    )


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="1k workers, short windows (< 60 s)")
    p.add_argument("--workers", type=int, nargs="*", help="worker counts (default 1000 10000)")
    p.add_argument("--generators", type=int, default=1, help="load generator processes")
    p.add_argument(
        "--variants",
        nargs="+",
        choices=sorted(VARIANTS),
        default=["freeze"],
        help="server configurations to measure, each against the same ceiling (default: "
        "freeze, the shipped configuration): plain (CPython's GC, an ack per frame), "
        "freeze ([gc] freeze), freeze-acks (also [socket] ack_interval_ms = 5000); "
        "the others are experiments",
    )
    p.add_argument(
        "--fixes-per-frame",
        type=int,
        nargs="+",
        default=[1, 5],
        metavar="N",
        help="fixes per frame to measure Doorstep at (default 1 5); the ceiling is "
        "measured at 1 and these",
    )
    p.add_argument(
        "--skip-ceiling",
        action="store_true",
        help="debug only: do not measure the receive-only ceiling (its ratios and the "
        "1-fix target are reported as not measured)",
    )
    p.add_argument(
        "--rates",
        type=float,
        nargs="+",
        metavar="FRAMES_PER_S",
        help="diagnostics: measure Doorstep at these offered frame rates (one window of "
        "the measuring length each) instead of the ramp and the 80 %% window",
    )
    p.add_argument(
        "--overload-step",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="one window per variant: LOW frames/s for 10 s, HIGH for 5 s, LOW for 30 s, "
        "and how long the server takes to come back after the step (e.g. --variants "
        "freeze freeze-noshed: with load shedding and without, in the same run)",
    )
    p.add_argument(
        "--sample-server",
        action="store_true",
        help="diagnostics: scrape the server's /metrics every 250 ms of a window for the "
        "timeline (GC, frames, archive per bucket); each scrape costs the server a few ms",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help="for the first S seconds of the run, wait for other work on the machine to "
        "stop before it starts and before each window, and measure a disturbed window again",
    )
    p.add_argument("--ceiling-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    p.add_argument("--generator", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.ceiling_server:
        ceiling_server(args.ceiling_server)
        return
    if args.generator:
        _run_loop(generator_main())
        return
    plan = _plan(args)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)  # clean up when terminated
    with h.store_urls() as (redis_url, database_url):
        result = _run_loop(orchestrate(plan, redis_url, database_url, wait_quiet_s=args.wait_quiet))
    sys.stdout.write(_compact_lists(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
