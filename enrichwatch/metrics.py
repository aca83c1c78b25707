"""Prometheus metrics, held in one registry per process (passed down, not a module global),
so tests and several in-process services never share counters."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from enrichwatch.models import OPEN_STATES, VendorName
from enrichwatch.store import OpenJobs
from enrichwatch.store.fetches import FETCH_WORK
from enrichwatch.store.notifications import NOTIFY_WORK
from enrichwatch.store.submissions import SUBMIT_WORK

WORK_KINDS = (FETCH_WORK, NOTIFY_WORK, SUBMIT_WORK)


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

        # Read from the database at each scrape (see `observe_backlog`).
        self.database_up = Gauge(
            "enrichwatch_database_up",
            "1 when this scrape read the open jobs and the outbox from the database; 0 when it "
            "could not, and their gauges are left out.",
            registry=self.registry,
        )
        self.open_jobs = Gauge(
            "enrichwatch_open_jobs",
            "Jobs not finished yet, by vendor and state.",
            ["vendor", "state"],
            registry=self.registry,
        )
        self.jobs_failing_checks = Gauge(
            "enrichwatch_jobs_failing_checks",
            "Open jobs whose latest status check failed, by vendor.",
            ["vendor"],
            registry=self.registry,
        )
        self.checks_failing_seconds = Gauge(
            "enrichwatch_checks_failing_seconds",
            "How long the oldest run of failed status checks at the vendor has lasted; 0 "
            "while every open job's latest check was answered.",
            ["vendor"],
            registry=self.registry,
        )
        self.work_items = Gauge(
            "enrichwatch_work_items",
            "Outbox rows (fetch, notify, submit) waiting (pending) or dead-lettered (dead).",
            ["kind", "state"],
            registry=self.registry,
        )
        self._backlog = (
            self.open_jobs,
            self.jobs_failing_checks,
            self.checks_failing_seconds,
            self.work_items,
        )

        self._requests = _Children(self.http_requests)
        self._latencies = _Children(self.http_latency)
        self._callbacks = _Children(self.callbacks)

    def request_served(self, method: str, route: str, status: int, seconds: float) -> None:
        self._requests.get(method, route, str(status)).inc()
        self._latencies.get(method, route).observe(seconds)

    def callback_stored(self, vendor: str, duplicate: bool) -> None:
        self._callbacks.get(vendor, "duplicate" if duplicate else "accepted").inc()

    def observe_backlog(
        self, jobs: list[OpenJobs], work: dict[tuple[str, str], int], now: float
    ) -> None:
        """Set the gauges to the database as it is now. Every vendor, state and kind has its
        series, 0 when there is nothing, so an alert or a graph never sees one vanish."""
        self.database_up.set(1)
        for vendor in VendorName:
            for state in OPEN_STATES:
                self.open_jobs.labels(vendor.value, state.value).set(0)
            self.jobs_failing_checks.labels(vendor.value).set(0)
            self.checks_failing_seconds.labels(vendor.value).set(0)
        oldest: dict[VendorName, float] = {}
        for group in jobs:
            self.open_jobs.labels(group.vendor.value, group.state.value).set(group.count)
            self.jobs_failing_checks.labels(group.vendor.value).inc(group.failing)
            if group.failing_since is not None:
                oldest[group.vendor] = min(oldest.get(group.vendor, now), group.failing_since)
        for vendor, since in oldest.items():
            self.checks_failing_seconds.labels(vendor.value).set(max(now - since, 0.0))
        for kind in WORK_KINDS:
            for waiting in ("pending", "dead"):
                self.work_items.labels(kind, waiting).set(work.get((kind, waiting), 0))

    def database_unreadable(self) -> None:
        """Leave the backlog out rather than serve the last scrape's figures as today's."""
        self.database_up.set(0)
        for gauge in self._backlog:
            gauge.clear()

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
