"""GC churn benchmark: what the freeze policy leaks between sweeps, and what a sweep costs.

``[gc] freeze`` (doorstep/gcpolicy.py) keeps the collector's generations small by
freezing survivors every few seconds. Frozen objects without reference cycles are still
freed by reference counting; cycles among frozen objects wait for the next sweep. This
script measures how much waits: it connects N worker sockets, drives fixes, closes them
all, and repeats, against two servers in turn:

* ``freeze``: ``[gc] freeze = true`` with a sweep every ``--sweep-s`` seconds; after the
  churn it waits for one more sweep and reads ``doorstep_gc_swept_objects`` (cycles
  that died while frozen) and the sweep's duration from /metrics;
* ``plain``: CPython's default collector, the same churn.

For both: RSS after each round, the longest GC pause and the GC's share of the time.
JSON on stdout, progress on stderr::

    python -m benchmarks.gc_churn --quick     # 500 sockets x 3 rounds, under 60 s
    python -m benchmarks.gc_churn             # 2,000 sockets x 6 rounds
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks import _harness as h
from benchmarks import ingest as ing


async def _metrics(port: int) -> dict[str, float]:
    status, body = await h.http_get(port, "/metrics", timeout_s=10.0)
    out: dict[str, float] = {"gc_s": 0.0}
    if status != 200:
        return out
    for line in body.decode().splitlines():
        if line.startswith("#") or not line:
            continue
        name, _, value = line.rpartition(" ")
        if name.startswith("doorstep_gc_pause_seconds_total{"):
            out["gc_s"] += float(value)
        elif name.startswith("doorstep_gc_pause_max_seconds{"):
            out["max_pause_s"] = max(out.get("max_pause_s", 0.0), float(value))
        elif name in (
            "doorstep_gc_sweeps_total",
            "doorstep_gc_swept_objects_total",
            "doorstep_gc_last_sweep_seconds",
            "doorstep_gc_frozen_objects",
            "doorstep_fixes_accepted_total",
        ):
            out[name.removeprefix("doorstep_").removesuffix("_total")] = float(value)
    return out


async def _churn(
    env: ing.Env, variant: str, *, sockets: int, rounds: int, sweep_s: float
) -> dict[str, Any]:
    port = h.free_port()
    freeze = variant == "freeze"
    params = env.work_dir / f"params-churn-{variant}.toml"
    params.write_text(
        "[socket]\nframes_per_s = 1000.0\nburst_frames = 1000.0\n"
        f"[gc]\nfreeze = {'true' if freeze else 'false'}\nsweep_every_s = {sweep_s}\n"
    )
    server = h.Server(
        f"doorstep-churn-{variant}",
        [sys.executable, "-m", "doorstep", "serve", "--port", str(port)],
        ing._doorstep_env(env, params),
        env.work_dir,
    )
    gen = await ing.GeneratorClient.start(1)
    meter = h.ProcMeter(server.pid)
    url = f"ws://{h.LOOPBACK}:{port}{ing.WORKER_PATH}"
    out: dict[str, Any] = {"variant": variant, "rounds": []}
    try:
        await server.wait_http(port, "/readyz")
        await asyncio.sleep(1.0)
        m0 = await _metrics(port)
        t0 = time.perf_counter()
        out["rss_start_mib"] = round(meter.sample().rss / 2**20, 1)
        for r in range(rounds):
            c = await gen.connect(url, env.tokens_path, 0, sockets, hello=True)
            d = await gen.drive(
                rate=2 * sockets, seconds=2.0, fixes=1, window_s=1.0, drain_s=10.0, acks=True
            )
            await gen.close()
            await asyncio.sleep(0.5)
            rss = meter.sample().rss
            out["rounds"].append(
                {
                    "connected": c["connected"],
                    "acked_frames": d["acked_frames"],
                    "rss_mib": round(rss / 2**20, 1),
                }
            )
            h.progress(
                f"  {variant} round {r + 1}/{rounds}: {c['connected']} sockets, "
                f"{d['acked_frames']} frames acked, RSS {rss / 2**20:.1f} MiB"
            )
        churn_s = time.perf_counter() - t0
        m1 = await _metrics(port)
        if freeze:  # wait for the next sweep, then read what it reclaimed
            deadline = time.monotonic() + sweep_s + 30
            while time.monotonic() < deadline:
                await asyncio.sleep(1.0)
                m2 = await _metrics(port)
                if m2.get("gc_sweeps", 0) > m1.get("gc_sweeps", 0):
                    break
            m1 = await _metrics(port)
        closed = sum(x["connected"] for x in out["rounds"])
        swept = m1.get("gc_swept_objects", 0.0) - m0.get("gc_swept_objects", 0.0)
        out.update(
            {
                "sockets_closed": closed,
                "churn_s": round(churn_s, 1),
                "rss_end_mib": round(meter.sample().rss / 2**20, 1),
                "gc_share": round((m1["gc_s"] - m0["gc_s"]) / max(churn_s, 1e-9), 4),
                "max_gc_pause_ms": round(m1.get("max_pause_s", 0.0) * 1000, 1),
                "sweeps": int(m1.get("gc_sweeps", 0)),
                "swept_objects": int(swept),
                "swept_objects_per_closed_socket": round(swept / max(closed, 1), 1),
                "last_sweep_ms": round(m1.get("gc_last_sweep_seconds", 0.0) * 1000, 1),
                "frozen_after_sweep": int(m1.get("gc_frozen_objects", 0)),
            }
        )
        return out
    finally:
        await gen.stop()
        server.stop()


async def orchestrate(
    redis_url: str, database_url: str, *, sockets: int, rounds: int, sweep_s: float
) -> dict[str, Any]:
    h.raise_nofile()
    plan = ing.Plan(
        quick=True,
        workers=(sockets,),
        fixes_per_frame=(1,),
        ceiling_fixes_per_frame=(1,),
        step_s=1.0,
        measure_s=1.0,
        start_rate=1000,
        max_rate=1000,
        refine=0,
        window_s=1.0,
        drain_s=10.0,
        generators=1,
        kept_up_p99_ms=1000.0,
        geoadd_s=0.0,
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="doorstep-gc-churn-") as tmp:
        env = await ing._setup(plan, redis_url, database_url, Path(tmp))
        try:
            results = [
                await _churn(env, v, sockets=sockets, rounds=rounds, sweep_s=sweep_s)
                for v in ("freeze", "plain")
            ]
        finally:
            deleted = await env.db.drop()
            h.progress(f"dropped {env.db.name}; deleted {deleted} Redis keys")
    freeze, plain = results
    return {
        "benchmark": "gc_churn",
        "machine": h.machine(["uvicorn", "websockets", "starlette", "uvloop"]),
        "params": {"sockets": sockets, "rounds": rounds, "sweep_every_s": sweep_s},
        "runs": results,
        "ratios": {
            "rss_end_freeze_vs_plain": round(freeze["rss_end_mib"] / plain["rss_end_mib"], 3),
            "gc_share_freeze_vs_plain": round(freeze["gc_share"] / plain["gc_share"], 3)
            if plain["gc_share"]
            else None,
        },
        "seconds": round(time.perf_counter() - started, 1),
    }


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="500 sockets x 3 rounds (< 60 s)")
    p.add_argument("--sockets", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--sweep-s", type=float, default=20.0, help="the freeze server's sweep_every_s")
    args = p.parse_args(argv)
    if args.quick:
        args.sockets, args.rounds, args.sweep_s = 500, 3, 10.0
    signal.signal(signal.SIGTERM, _stop)
    with h.store_urls() as (redis_url, database_url):
        result = ing._run_loop(
            orchestrate(
                redis_url,
                database_url,
                sockets=args.sockets,
                rounds=args.rounds,
                sweep_s=args.sweep_s,
            )
        )
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")


if __name__ == "__main__":
    main()
