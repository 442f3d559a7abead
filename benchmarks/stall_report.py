"""What the slow notifications of a paced run waited for: ``money --stall-probe DIR``'s
files summarised, as JSON.

    python -m benchmarks.stall_report DIR [--slow-ms 50]

For the paced window: the notifications slower than ``--slow-ms`` (client side, from
when each was due) and the periods they cover; the server's event-loop stalls in the
window (how long, its own CPU, its wait for a core) and the collections of the garbage
collector; inside the payment handler, where its time went (a pooled connection,
statements, COMMIT, Redis, the rest: its own CPU and the event loop's queue), for the
handlers that ran in slow periods and in the others; the server's statements and
COMMITs (its relay's included) in the window; PostgreSQL's backends'
wait events and the processes' CPU and run-queue wait in slow periods and the others.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from collections import Counter
from pathlib import Path
from typing import Any


def _inside(t: float, periods: list[list[float]]) -> bool:
    return any(a <= t <= b for a, b in periods)


def _cores(proc: list[Any], periods: list[list[float]], inside: bool) -> dict[str, Any]:
    """Per process: cores running and cores waiting for a core (run queue), summed over
    the sample intervals inside (or outside) the periods; the machine's busy cores."""
    run: Counter[str] = Counter()
    wait: Counter[str] = Counter()
    span = busy = 0.0
    for (t0, a, c0), (t1, b, c1) in itertools.pairwise(proc):
        if _inside((t0 + t1) / 2, periods) != inside:
            continue
        dt = t1 - t0
        span += dt
        for k, (r1, w1) in b.items():
            if k in a:
                group = "postgres" if k.startswith("pg ") else k
                run[group] += (r1 - a[k][0]) / 1e9
                wait[group] += (w1 - a[k][1]) / 1e9
        idle = (c1[3] + c1[4]) - (c0[3] + c0[4])
        busy += (sum(c1) - sum(c0) - idle) / 100
    if not span:
        return {}
    return {
        "seconds": round(span, 3),
        "machine_busy_cores": round(busy / span, 2),
        "running_cores": {k: round(v / span, 2) for k, v in run.most_common()},
        "runqueue_cores": {k: round(v / span, 2) for k, v in wait.most_common()},
    }


def _waits(activity: list[Any], periods: list[list[float]], inside: bool) -> dict[str, Any]:
    """Client backends by state / wait event, averaged over the samples."""
    seen: Counter[str] = Counter()
    n = 0
    for t, rows in activity:
        if _inside(t, periods) != inside:
            continue
        n += 1
        for r in rows:
            if r[1] != "client backend" or r[2] in (None, "idle"):
                continue
            seen[f"{r[2]} / {r[3] or '-'}:{r[4] or '-'}"] += 1
    return {
        "samples": n,
        "backends": {k: round(v / n, 2) for k, v in seen.most_common(8)} if n else {},
    }


def _phases(rows: list[dict[str, Any]]) -> dict[str, Any]:
    if not rows:
        return {"n": 0}
    keys = ("ms", "acquire_ms", "sql_ms", "commit_ms", "redis_ms")
    mean = {k: statistics.fmean(r.get(k, 0.0) for r in rows) for k in keys}
    mean["rest_ms"] = mean["ms"] - sum(mean[k] for k in keys[1:])
    return {
        "n": len(rows),
        "mean": {k: round(v, 2) for k, v in mean.items()},
        "slowest_phase": dict(Counter(str(r.get("slowest")) for r in rows).most_common(4)),
    }


def report(folder: Path, slow_ms: float) -> dict[str, Any]:
    d = json.loads((folder / "paced.json").read_text())
    lines = [json.loads(x) for x in (folder / "server-stalls.jsonl").read_text().splitlines()]
    t0, firsts, each = d["t0"], d["firsts"], d["each"]
    end = max(due + ms / 1000 for _, due, ms in each)
    slow = sorted((due, due + ms / 1000, i < firsts) for i, due, ms in each if ms > slow_ms)
    periods: list[list[float]] = []
    for a, b, _ in slow:
        if periods and a <= periods[-1][1]:
            periods[-1][1] = max(periods[-1][1], b)
        else:
            periods.append([a, b])
    stalls = [s for s in lines if "stall" in s and t0 - 0.1 <= s["stall"] <= end]
    gcs = [g for g in lines if "gc" in g and "t" in g and t0 <= g["t"] <= end]
    handled = [
        n["notification"]
        for n in lines
        if "notification" in n and t0 - 0.1 <= n["notification"]["t"] <= end
    ]

    def split(rows: list[dict[str, Any]], outcome: str, inside: bool) -> dict[str, Any]:
        return _phases(
            [r for r in rows if r["outcome"] == outcome and _inside(r["t"], periods) == inside]
        )

    counts = [c for c in lines if "counts" in c]

    def sent(a: float, b: float) -> dict[str, int]:
        """The server's statements and COMMITs between a and b (its ~0.1 s counters)."""
        inside = [c for c in counts if a <= c["counts"] <= b]
        if len(inside) < 2:
            return {}
        return {k: inside[-1][k] - inside[0][k] for k in ("statements", "commits")}

    lat = sorted(ms for _, _, ms in each)
    return {
        "folder": str(folder),
        "paced_latency_ms": {
            "p50": round(lat[len(lat) // 2], 1),
            "p99": round(lat[int(len(lat) * 0.99)], 1),
            "max": round(lat[-1], 1),
        },
        "slow_ms": slow_ms,
        "slow": {"n": len(slow), "first_deliveries": sum(1 for s in slow if s[2])},
        "slow_periods_s": [[round(a - t0, 3), round(b - t0, 3)] for a, b in periods],
        "loop_stalls": {
            "n": len(stalls),
            "ms": round(sum(s["ms"] for s in stalls), 1),
            "own_cpu_ms": round(sum(s["cpu_ms"] for s in stalls), 1),
            "runqueue_ms": round(sum(s["runqueue_ms"] for s in stalls), 1),
            "in_slow_periods": sum(1 for s in stalls if _inside(s["stall"], periods)),
            "longest": [
                {
                    "at_s": round(s["stall"] - t0, 3),
                    "ms": s["ms"],
                    "cpu_ms": s["cpu_ms"],
                    "runqueue_ms": s["runqueue_ms"],
                    "gc": s["gc"],
                    "stack": s["stacks"][0][0].split(" | ")[-1] if s["stacks"] else "",
                }
                for s in sorted(stalls, key=lambda s: -s["ms"])[:5]
            ],
        },
        # All the server's statements (its relay's too) and explicit COMMITs: in the
        # paced window, and in it plus the second after (the relay's work left behind).
        "server_sql_in_window": sent(t0, end),
        "server_sql_to_1s_after": sent(t0, end + 1.0),
        "gc_over_1ms": [[round(g["t"] - t0, 3), g["gc"], g["ms"]] for g in gcs],
        "handler": {
            "first_in_slow": split(handled, "applied", True),
            "first_elsewhere": split(handled, "applied", False),
            "duplicate_in_slow": split(handled, "duplicate", True),
            "duplicate_elsewhere": split(handled, "duplicate", False),
        },
        "postgres_in_slow": _waits(d["activity"], periods, True),
        "postgres_elsewhere": _waits(d["activity"], periods, False),
        "cpu_in_slow": _cores(d["proc"], periods, True),
        "cpu_elsewhere": _cores([p for p in d["proc"] if t0 <= p[0] <= end], periods, False),
        "wal": {
            k: float(d["pg_after"]["pg_stat_wal"][k]) - float(d["pg_before"]["pg_stat_wal"][k])
            for k in ("wal_records", "wal_fpi", "wal_bytes", "wal_write", "wal_sync")
        },
        "checkpoints": {
            k: d["pg_after"]["pg_stat_bgwriter"][k] - d["pg_before"]["pg_stat_bgwriter"][k]
            for k in ("checkpoints_timed", "checkpoints_req", "buffers_checkpoint")
        },
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--slow-ms", type=float, default=50.0)
    a = p.parse_args()
    print(json.dumps(report(a.folder, a.slow_ms), indent=1))


if __name__ == "__main__":
    main()
