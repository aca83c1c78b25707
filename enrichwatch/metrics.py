"""Prometheus metrics, held in one registry per process (passed down, not a module global),
so tests and several in-process services never share counters."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.callbacks = Counter(
            "enrichwatch_callbacks",
            "Vendor callbacks stored, by outcome (accepted or duplicate).",
            ["vendor", "outcome"],
            registry=self.registry,
        )
        self.callback_rejections = Counter(
            "enrichwatch_callback_rejections",
            "Vendor callbacks refused and not stored, by reason.",
            ["vendor", "reason"],
            registry=self.registry,
        )
        self.http_requests = Counter(
            "enrichwatch_http_requests",
            "HTTP requests served, by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "enrichwatch_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )

        self.vendor_calls = Counter(
            "enrichwatch_vendor_calls",
            "HTTP requests made to vendors, by vendor and endpoint.",
            ["vendor", "endpoint"],
            registry=self.registry,
        )
        self.vendor_call_failures = Counter(
            "enrichwatch_vendor_call_failures",
            "Vendor requests that failed, by what came back: the HTTP status, network (no "
            "answer) or unreadable (an answer that made no sense).",
            ["vendor", "endpoint", "answer"],
            registry=self.registry,
        )

        self.notifications = Counter(
            "enrichwatch_notifications",
            "Notification sends, by channel and result (sent, failed: will retry, dead: "
            "dead-lettered).",
            ["channel", "result"],
            registry=self.registry,
        )

        self._requests = _Children(self.http_requests)
        self._latencies = _Children(self.http_latency)
        self._callbacks = _Children(self.callbacks)

    def request_served(self, method: str, route: str, status: int, seconds: float) -> None:
        self._requests.get(method, route, str(status)).inc()
        self._latencies.get(method, route).observe(seconds)

    def callback_stored(self, vendor: str, duplicate: bool) -> None:
        self._callbacks.get(vendor, "duplicate" if duplicate else "accepted").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Children:
    """A metric's labelled children, looked up once per label set: `labels()` takes a lock and
    re-validates its arguments on every call, a cost each request paid twice over."""

    def __init__(self, metric: MetricWrapperBase) -> None:
        self._metric = metric
        self._known: dict[tuple[str, ...], Any] = {}

    def get(self, *values: str) -> Any:
        child = self._known.get(values)
        if child is None:
            child = self._known[values] = self._metric.labels(*values)
        return child
