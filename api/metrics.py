"""Prometheus metrics for the HTTP surface, in a registry per app (tests build many apps)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from api.routing import Endpoint
from dispatch.engine import TickReport
from events import store as events_store
from jobs import store as jobs_store


@dataclass(frozen=True)
class HttpMetrics:
    """Request counts and latencies by route template, method and status."""

    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    # Each (method, route, status)'s labelled counter and histogram, looked up once
    # (``labels()`` took ~2 % of a payment notification's server CPU in a profile).
    children: dict[tuple[str, str, int], tuple[Any, Any]] = field(default_factory=dict)

    @classmethod
    def create(cls) -> HttpMetrics:
        """Fresh metrics in a fresh registry."""
        registry = CollectorRegistry()
        requests = Counter(
            "doorstep_http_requests",
            "HTTP requests handled",
            ["method", "route", "status"],
            registry=registry,
        )
        latency = Histogram(
            "doorstep_http_request_seconds",
            "HTTP request handling time",
            ["method", "route"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        return cls(registry, requests, latency)

    def observe(self, endpoint: Endpoint, status: int, seconds: float) -> None:
        """Count one handled request."""
        key = (endpoint.method, endpoint.path, status)
        found = self.children.get(key)
        if found is None:
            found = self.children[key] = (
                self.requests.labels(endpoint.method, endpoint.path, str(status)),
                self.latency.labels(endpoint.method, endpoint.path),
            )
        found[0].inc()
        found[1].observe(seconds)


@dataclass(frozen=True)
class DispatchMetrics:
    """How long the dispatch engine's ticks take and what they decide."""

    tick_seconds: Histogram
    decisions: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> DispatchMetrics:
        """The engine's metrics, in ``registry``."""
        tick_seconds = Histogram(
            "doorstep_dispatch_tick_seconds",
            "Dispatch tick time (expire, fail, read, decide, record, offer); "
            "decided: whether the tick decided any order",
            ["decided"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        decisions = Counter(
            "doorstep_dispatch_decisions",
            "Dispatch decisions by policy and outcome (worker chosen or none)",
            ["policy", "outcome"],
            registry=registry,
        )
        return cls(tick_seconds, decisions)

    def observe(self, report: TickReport) -> None:
        """Count one tick of the engine."""
        self.tick_seconds.labels("true" if report.decisions else "false").observe(report.seconds)
        for d in report.decisions:
            self.decisions.labels(d.policy, "worker" if d.worker_id is not None else "none").inc()


class TrackingCollector:
    """Every live-tracking stage on /metrics: received, rejected by reason, indexed,
    archived, delivered, dropped (read from the runtime's counters at scrape time)."""

    def __init__(self, app_state: Any) -> None:
        self._state = app_state

    def collect(self) -> Iterator[Metric]:
        tracking = getattr(self._state, "tracking", None)
        if tracking is None:
            return
        c = tracking.counters
        plain = {
            "doorstep_ws_frames": ("worker socket frames received", c.frames),
            "doorstep_fixes_received": ("location fixes received", c.fixes_received),
            "doorstep_fixes_accepted": ("location fixes accepted", c.fixes_accepted),
            "doorstep_fixes_clamped": (
                "stationary fixes collapsed onto the previous",
                c.fixes_clamped,
            ),
            "doorstep_ws_frames_throttled": (
                "frames refused by the rate limit",
                c.frames_throttled,
            ),
            "doorstep_ws_frames_shed": (
                "frames of fixes refused unread while overloaded",
                c.frames_shed,
            ),
            "doorstep_ingest_shed_episodes": (
                "times the ingest started shedding load",
                tracking.overload.episodes,
            ),
            "doorstep_ws_frame_errors": ("frames answered with an error", c.frame_errors),
            "doorstep_ws_sockets_replaced": (
                "worker sockets replaced by a newer one",
                c.sockets_replaced,
            ),
            "doorstep_workers_marked_stale": (
                "workers taken out of the index as stale",
                c.stale_marked,
            ),
            "doorstep_fixes_indexed": (
                "fixes written to the live index",
                tracking.writer.fixes_written,
            ),
            "doorstep_ingest_flushes": ("ingest batches written", tracking.writer.flushes),
            "doorstep_ingest_failures": ("ingest batches that failed", tracking.writer.failures),
            "doorstep_trail_archived": ("trail points archived", tracking.archiver.archived),
            "doorstep_trail_dropped": ("trail points dropped", tracking.archiver.dropped),
            "doorstep_live_delivered": ("live messages queued to sockets", tracking.hub.delivered),
            "doorstep_live_dropped": (
                "live messages dropped for slow sockets",
                tracking.hub.dropped,
            ),
            "doorstep_live_reconnects": ("pub/sub reconnects", tracking.hub.reconnects),
        }
        for name, (doc, value) in plain.items():
            yield CounterMetricFamily(name, doc, value=value)
        rejected = CounterMetricFamily(
            "doorstep_fixes_rejected", "location fixes rejected", labels=["reason"]
        )
        for reason, count in sorted(c.rejected.items()):
            rejected.add_metric([reason], count)
        yield rejected
        yield GaugeMetricFamily(
            "doorstep_ingest_shedding",
            "1 while frames of fixes are refused for overload",
            value=int(tracking.overload.shedding),
        )
        yield GaugeMetricFamily(
            "doorstep_trail_buffered",
            "trail points waiting for COPY",
            value=tracking.archiver.buffered,
        )


class BackboneCollector:
    """The event relay and the job queue on /metrics.

    Queue depths, lags and parked deliveries come from PostgreSQL: :meth:`refresh` reads
    them (the /metrics handler awaits it before rendering); the relay's own counters are
    this process's."""

    def __init__(self, app_state: Any) -> None:
        self._state = app_state
        self._jobs: jobs_store.QueueStats | None = None
        self._parked: dict[tuple[str, str], int] = {}
        self._cursors: dict[str, int] = {}
        self._head = 0
        self._unsequenced = 0

    async def refresh(self) -> None:
        """Read the queue's and the relay's state from PostgreSQL."""
        stores = getattr(self._state, "stores", None)
        if stores is None:
            return
        pool = stores.pool
        self._jobs = await jobs_store.stats(pool)
        self._parked = await events_store.counts(pool)
        self._cursors = await events_store.cursors(pool)
        self._head = await events_store.head(pool)
        self._unsequenced = await events_store.unsequenced(pool)

    def collect(self) -> Iterator[Metric]:
        relay = getattr(self._state, "relay", None)
        if relay is not None:
            handled = CounterMetricFamily(
                "doorstep_events_handled", "events handled by consumers here", labels=["consumer"]
            )
            failed = CounterMetricFamily(
                "doorstep_events_failed", "failed deliveries here", labels=["consumer"]
            )
            lag = GaugeMetricFamily(
                "doorstep_events_lag_seconds",
                "from an event's commit to its handling, over the last handled (p50, p99, max)",
                labels=["consumer", "quantile"],
            )
            for name, stats in sorted(relay.stats.items()):
                handled.add_metric([name], stats.handled)
                failed.add_metric([name], stats.failed)
                if stats.lags_s:
                    ordered = sorted(stats.lags_s[-1000:])
                    for q, label in ((0.5, "0.5"), (0.99, "0.99"), (1.0, "1")):
                        lag.add_metric(
                            [name, label], ordered[min(len(ordered) - 1, int(q * len(ordered)))]
                        )
            yield handled
            yield failed
            yield lag
        yield GaugeMetricFamily(
            "doorstep_events_head",
            "the highest sequence number given to an event",
            value=self._head,
        )
        yield GaugeMetricFamily(
            "doorstep_events_unsequenced",
            "committed events waiting for a sequence number",
            value=self._unsequenced,
        )
        behind = GaugeMetricFamily(
            "doorstep_events_behind", "events a consumer has yet to read", labels=["consumer"]
        )
        for name, position in sorted(self._cursors.items()):
            behind.add_metric([name], max(0, self._head - position))
        yield behind
        parked = GaugeMetricFamily(
            "doorstep_events_parked",
            "failed deliveries: pending (retrying) and dead (an admin replays)",
            labels=["consumer", "state"],
        )
        for (name, state), n in sorted(self._parked.items()):
            parked.add_metric([name, state], n)
        yield parked
        if self._jobs is not None:
            depth = GaugeMetricFamily(
                "doorstep_jobs", "background jobs by queue and status", labels=["queue", "status"]
            )
            for (queue, status), n in sorted(self._jobs.by_status.items()):
                depth.add_metric([queue, status], n)
            yield depth
            late = GaugeMetricFamily(
                "doorstep_jobs_lag_seconds",
                "how long the oldest ready job has waited",
                labels=["queue"],
            )
            for queue, seconds in sorted(self._jobs.oldest_ready_s.items()):
                late.add_metric([queue], seconds)
            yield late
        runner = getattr(self._state, "jobs", None)
        if runner is not None:
            yield CounterMetricFamily(
                "doorstep_job_worker_restarts",
                "times this process's job worker was started again after it stopped",
                value=runner.restarts,
            )


class GcCollector:
    """The garbage collector's pauses by generation and what the freeze policy did."""

    def __init__(self, app_state: Any) -> None:
        self._state = app_state

    def collect(self) -> Iterator[Metric]:
        policy = getattr(self._state, "gc", None)
        if policy is None:
            return
        s = policy.stats
        count = CounterMetricFamily(
            "doorstep_gc_collections", "cyclic GC collections", labels=["generation"]
        )
        total = CounterMetricFamily(
            "doorstep_gc_pause_seconds", "time spent in cyclic GC", labels=["generation"]
        )
        longest = GaugeMetricFamily(
            "doorstep_gc_pause_max_seconds", "longest GC pause", labels=["generation"]
        )
        for gen in range(3):
            count.add_metric([str(gen)], s.pauses[gen])
            total.add_metric([str(gen)], s.pause_s[gen])
            longest.add_metric([str(gen)], s.max_pause_s[gen])
        yield count
        yield total
        yield longest
        yield CounterMetricFamily("doorstep_gc_freezes", "gc.freeze() calls", value=s.freezes)
        yield CounterMetricFamily(
            "doorstep_gc_sweeps", "full sweeps of frozen objects", value=s.sweeps
        )
        yield CounterMetricFamily(
            "doorstep_gc_swept_objects",
            "unreachable objects found by sweeps (cycles that died while frozen)",
            value=s.swept_objects,
        )
        yield GaugeMetricFamily(
            "doorstep_gc_last_sweep_seconds", "duration of the last sweep", value=s.last_sweep_s
        )
        yield GaugeMetricFamily(
            "doorstep_gc_frozen_objects",
            "objects in the permanent generation after the last sweep",
            value=s.frozen_after_sweep,
        )
