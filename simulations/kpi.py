"""The KPI maths of a run. Pure: numbers in, numbers out.

Definitions (docs/simulation.md explains them for readers of the report):

- *percentiles* are nearest-rank: the smallest sample with at least p % of the samples at
  or below it (so p50 of [1, 2, 3, 4] is 2 and every percentile is an observed value);
- the *Gini coefficient* of non-negative amounts is the mean absolute difference between
  all pairs over twice the mean (0: all equal; (n-1)/n: one has everything);
- a quantile of a Prometheus histogram is interpolated linearly inside its bucket, as
  PromQL's ``histogram_quantile`` does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

PS = (50.0, 90.0, 99.0)


def percentile(samples: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile ``p`` (0 < p <= 100) of ``samples``; None if empty."""
    if not 0 < p <= 100:
        raise ValueError("p must be in (0, 100]")
    if not samples:
        return None
    data = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(data)))
    return float(data[rank - 1])


def summary(samples: Sequence[float], ps: Iterable[float] = PS, digits: int = 1) -> dict[str, Any]:
    """``{"n", "mean", "p50", ..., "max"}`` of the samples (n = 0 and nulls if empty)."""
    out: dict[str, Any] = {"n": len(samples)}
    out["mean"] = round(sum(samples) / len(samples), digits) if samples else None
    for p in ps:
        v = percentile(samples, p)
        out[f"p{p:g}"] = round(v, digits) if v is not None else None
    out["max"] = round(max(samples), digits) if samples else None
    return out


def gini(amounts: Sequence[float]) -> float:
    """The Gini coefficient of non-negative amounts (0 for none, or all zero)."""
    if any(a < 0 for a in amounts):
        raise ValueError("gini needs non-negative amounts")
    n, total = len(amounts), float(sum(amounts))
    if n == 0 or total == 0:
        return 0.0
    ranked = sorted(amounts)
    weighted = sum((i + 1) * a for i, a in enumerate(ranked))
    return 2 * weighted / (n * total) - (n + 1) / n


def lorenz(amounts: Sequence[float]) -> tuple[list[float], list[float]]:
    """The Lorenz curve: share of people (x) against their share of the total (y)."""
    n, total = len(amounts), float(sum(amounts))
    xs, ys, acc = [0.0], [0.0], 0.0
    for i, a in enumerate(sorted(amounts)):
        acc += a
        xs.append((i + 1) / n)
        ys.append(acc / total if total else (i + 1) / n)
    return xs, ys


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Quantile ``q`` (0..1) from cumulative ``(upper bound, count)`` buckets, ``+Inf``
    last; None if empty. In the ``+Inf`` bucket the answer is the last finite bound."""
    if not 0 <= q <= 1:
        raise ValueError("q must be in [0, 1]")
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower


def overlap_s(intervals: Iterable[tuple[float, float]], window: tuple[float, float]) -> float:
    """Seconds of ``intervals`` (assumed disjoint) inside ``window``."""
    a, b = window
    return sum(max(0.0, min(e, b) - max(s, a)) for s, e in intervals)


# --- a run's records -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderOutcome:
    """One order as the server's records (and the customer's socket) tell it. Times are
    wall seconds after the run started; None if it never happened."""

    id: int
    kind: str  # instant | scheduled
    status: str
    worker_id: int | None
    price_minor: int
    booked: float
    assigned: float | None = None
    en_route: float | None = None
    arrived: float | None = None
    completed: float | None = None
    cancelled: float | None = None
    failed: float | None = None
    cancelled_by_customer: bool = False
    window_start: float | None = None
    window_end: float | None = None
    first_decision: float | None = None
    eta_at: float | None = None  # when the customer first saw an ETA after departure
    eta_p50_s: float | None = None
    eta_p90_s: float | None = None


@dataclass(frozen=True, slots=True)
class WorkerOutcome:
    """One worker's run, from the simulator's own account (ground truth)."""

    id: int
    shifts: tuple[tuple[float, float], ...]  # on shift (wall seconds)
    holding: tuple[tuple[float, float], ...]  # holding a job: accepted → done or taken away
    km_on_jobs: float
    completed: int
    earnings_minor: int


@dataclass
class Samples:
    """Latencies measured by the simulator's clients (milliseconds) and counters."""

    fix_to_ack_ms: list[float] = field(default_factory=list)
    fanout_ms: list[float] = field(default_factory=list)
    fixes_sent: int = 0
    fixes_acked: int = 0
    rejected: dict[str, int] = field(default_factory=dict)


def _rate(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


def late_after_instant(orders: Sequence[OrderOutcome]) -> list[int]:
    """Scheduled orders that arrived after their window while their worker had taken an
    instant job between the booking and the arrival: made late by instant dispatch."""
    instant_by_worker: dict[int, list[float]] = {}
    for o in orders:
        if o.kind == "instant" and o.worker_id is not None and o.assigned is not None:
            instant_by_worker.setdefault(o.worker_id, []).append(o.assigned)
    out = []
    for o in orders:
        if o.kind != "scheduled" or None in (o.arrived, o.window_end, o.worker_id):
            continue
        assert o.arrived is not None
        assert o.window_end is not None
        assert o.worker_id is not None
        if o.arrived > o.window_end and any(
            o.booked <= t <= o.arrived for t in instant_by_worker.get(o.worker_id, [])
        ):
            out.append(o.id)
    return out


def eta_coverage_by_hour(
    orders: Sequence[OrderOutcome], hour_of: Callable[[float], int]
) -> dict[str, dict[str, Any]]:
    """Per hour (``hour_of`` maps a run time to the simulated hour, 0-23) of the first ETA
    shown after departure: how many arrivals, and the share that came by the ETA's p90."""
    counts: dict[int, list[int]] = {}
    for o in orders:
        if None in (o.arrived, o.eta_at, o.eta_p90_s):
            continue
        assert o.arrived is not None
        assert o.eta_at is not None
        assert o.eta_p90_s is not None
        n_by = counts.setdefault(hour_of(o.eta_at), [0, 0])
        n_by[0] += 1
        n_by[1] += o.arrived - o.eta_at <= o.eta_p90_s
    return {
        f"{h:02d}": {"n": n, "by_p90_share": _rate(by, n)} for h, (n, by) in sorted(counts.items())
    }


def order_kpis(
    orders: Sequence[OrderOutcome], hour_of: Callable[[float], int] | None = None
) -> dict[str, Any]:
    """Counts, fulfilment, time to assign, waits and ETA quality (per simulated hour too,
    given ``hour_of``)."""
    created = len(orders)
    served = [o for o in orders if o.status == "completed"]
    failed = [o for o in orders if o.status == "failed"]
    cancelled = [o for o in orders if o.status == "cancelled"]
    unfinished = created - len(served) - len(failed) - len(cancelled)
    instant = [o for o in orders if o.kind == "instant"]
    to_assign = [o.assigned - o.booked for o in instant if o.assigned is not None]
    wait = [o.arrived - o.booked for o in instant if o.arrived is not None]
    decided = [o.first_decision - o.booked for o in orders if o.first_decision is not None]
    errors, early, inside, late = [], 0, 0, 0
    for o in orders:
        if None in (o.arrived, o.eta_at, o.eta_p50_s, o.eta_p90_s):
            continue
        assert o.arrived is not None
        assert o.eta_at is not None
        assert o.eta_p50_s is not None
        assert o.eta_p90_s is not None
        actual = o.arrived - o.eta_at
        errors.append(actual - o.eta_p50_s)
        if actual < o.eta_p50_s:
            early += 1
        elif actual <= o.eta_p90_s:
            inside += 1
        else:
            late += 1
    lateness, in_window = [], 0
    for o in orders:
        if o.kind == "scheduled" and o.arrived is not None and o.window_start is not None:
            lateness.append(o.arrived - o.window_start)
            in_window += o.window_end is not None and o.arrived <= o.window_end
    n_eta = len(errors)
    return {
        "created": created,
        "served": len(served),
        "failed": len(failed),
        "cancelled": len(cancelled),
        "cancelled_by_customer": sum(1 for o in cancelled if o.cancelled_by_customer),
        "unfinished": unfinished,
        "instant": len(instant),
        "scheduled": created - len(instant),
        # served over everything the customer did not withdraw
        "fulfilment": _rate(len(served), created - len(cancelled)),
        "time_to_assign_s": summary(to_assign),
        "wait_to_arrival_s": summary(wait),
        "first_decision_s": summary(decided, digits=2),
        "eta_error_s": summary([abs(e) for e in errors]),
        "eta_signed_error_s": summary(errors),
        "eta_samples": n_eta,
        "eta_early_share": _rate(early, n_eta),
        "eta_in_range_share": _rate(inside, n_eta),
        "eta_late_share": _rate(late, n_eta),
        "eta_by_p90_share": _rate(early + inside, n_eta),
        "scheduled_arrived": len(lateness),
        "scheduled_lateness_s": summary(lateness),
        "scheduled_in_window_share": _rate(in_window, len(lateness)),
        "scheduled_late": sum(
            1
            for o in orders
            if o.kind == "scheduled"
            and o.arrived is not None
            and o.window_end is not None
            and o.arrived > o.window_end
        ),
        "scheduled_late_after_instant": len(late_after_instant(orders)),
        "eta_by_p90_by_hour": eta_coverage_by_hour(orders, hour_of) if hour_of else {},
    }


def worker_kpis(workers: Sequence[WorkerOutcome], window: tuple[float, float]) -> dict[str, Any]:
    """Utilization, km per job and fairness over the workers on shift within ``window``."""
    on = [w for w in workers if overlap_s(w.shifts, window) > 0]
    util = []
    for w in on:
        shift = overlap_s(w.shifts, window)
        util.append(min(1.0, overlap_s(w.holding, window) / shift))
    jobs = sum(w.completed for w in on)
    km = sum(w.km_on_jobs for w in on)
    return {
        "on_shift": len(on),
        "utilization": round(sum(util) / len(util), 4) if util else None,
        "utilization_by_worker": summary(util, digits=3),
        "km_per_job": round(km / jobs, 3) if jobs else None,
        "km_total": round(km, 2),
        "jobs_per_worker": summary([float(w.completed) for w in on], digits=2),
        "gini_jobs": round(gini([float(w.completed) for w in on]), 4),
        "gini_earnings": round(gini([float(w.earnings_minor) for w in on]), 4),
    }


def latency_kpis(samples: Samples, seconds: float) -> dict[str, Any]:
    """Fix-to-index (send → ack) and fan-out lag (fix time → watcher), ingest from acks."""
    return {
        "fix_to_index_ms": summary(samples.fix_to_ack_ms),
        "fanout_lag_ms": summary(samples.fanout_ms),
        "fixes_sent": samples.fixes_sent,
        "fixes_acked": samples.fixes_acked,
        "fixes_rejected": dict(sorted(samples.rejected.items())),
        "acked_per_s": round(samples.fixes_acked / seconds, 2) if seconds > 0 else None,
    }
