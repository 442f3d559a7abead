"""Prometheus metrics for the HTTP surface, in a registry per app (tests build many apps)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

from api.routing import Endpoint


@dataclass(frozen=True)
class HttpMetrics:
    """Request counts and latencies by route template, method and status."""

    registry: CollectorRegistry
    requests: Counter
    latency: Histogram

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
        self.requests.labels(endpoint.method, endpoint.path, str(status)).inc()
        self.latency.labels(endpoint.method, endpoint.path).observe(seconds)
