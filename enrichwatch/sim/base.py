"""What every simulated vendor shares: its context, auth hook, limiter and error shapes.

The server's middleware drives these hooks in a fixed order (count → injected faults →
auth → rate limit → handler), so each vendor module only describes how *its* API words
each answer.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from aiohttp import web

from enrichwatch.sim.callbacks import CallbackDispatcher
from enrichwatch.sim.clock import SimClock
from enrichwatch.sim.config import SimConfig, VendorConfig
from enrichwatch.sim.faults import FaultInjector
from enrichwatch.sim.jobs import JobPlan, SimJob, job_rng, rng_uuid
from enrichwatch.sim.limits import SlidingWindow, Verdict
from enrichwatch.sim.stats import SimStats, Violation, ViolationKind
from enrichwatch.sim.storage import StorageServer

VERDICT_KEY = web.RequestKey("sim_verdict", Verdict)
PARAMS_KEY = web.RequestKey("sim_params", dict[str, str])


@dataclass
class SimContext:
    clock: SimClock
    config: SimConfig
    stats: SimStats
    faults: FaultInjector
    callbacks: CallbackDispatcher
    storage: StorageServer


@dataclass(frozen=True)
class JobView:
    """A vendor-neutral look at one simulated job, for tests comparing counts."""

    job_id: str
    vendor_status: str
    total: int
    processed: int
    succeeded: int
    failed: int


def json_response(body: Any, status: int = 200, **headers: str) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(body, separators=(",", ":")),
        content_type="application/json",
        headers=headers,
    )


def bearer_token(request: web.Request, scheme: str = "Bearer") -> str | None:
    value = request.headers.get("Authorization", "")
    prefix = f"{scheme} "
    if value[: len(prefix)].lower() != prefix.lower():
        return None
    return value[len(prefix) :].strip()


async def read_json(request: web.Request) -> Any:
    """The JSON body, or None when it is missing or not JSON."""
    try:
        return json.loads(await request.read() or b"null")
    except ValueError:
        return None


class VendorSim(ABC):
    name: ClassVar[str]

    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        self.limiter = SlidingWindow(60.0)
        self._created = 0

    @property
    def config(self) -> VendorConfig:
        return self.ctx.config.vendor(self.name)

    @property
    def now(self) -> float:
        return self.ctx.clock.now()

    @abstractmethod
    def add_routes(self, router: web.UrlDispatcher, prefix: str) -> None: ...

    @abstractmethod
    async def authenticate(self, request: web.Request) -> web.StreamResponse | None:
        """None when the caller may proceed, else the vendor's rejection."""

    @abstractmethod
    def throttled(self, retry_after: int, verdict: Verdict | None) -> web.Response:
        """The vendor's 429, both for a real limit and an injected one."""

    @abstractmethod
    def not_found(self) -> web.Response: ...

    @abstractmethod
    def views(self) -> list[JobView]:
        """Every job the vendor holds, oldest first."""

    def method_not_allowed(self) -> web.Response:
        return self.not_found()

    def server_error(self, status: int) -> web.Response:
        reasons = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
        return web.Response(status=status, text=reasons.get(status, "Server Error"))

    def response_headers(self, request: web.Request) -> dict[str, str]:
        """Headers added to every response of this vendor (rate-limit headers, say)."""
        return {}

    def check_limit(self, request: web.Request, endpoint: str) -> web.Response | None:
        limit = self.config.rpm
        if limit is None:
            return None
        verdict = self.limiter.check(self.name, limit, self.now)
        request[VERDICT_KEY] = verdict
        if verdict.allowed:
            return None
        self.record_violation(endpoint, "rate_limit")
        return self.throttled(max(1, verdict.reset), verdict)

    def record_violation(self, endpoint: str, kind: ViolationKind) -> None:
        self.ctx.stats.violations.append(Violation(self.name, endpoint, kind, self.now))

    def new_job(
        self, total: int, *, granularity: int = 1, stop_on_failure: bool = False
    ) -> tuple[SimJob, str]:
        """A fresh job with its plan drawn from this vendor's n-th seeded stream.

        Returns the job and a uuid drawn from the same stream, so ids are stable per seed.
        """
        index = self._created
        self._created += 1
        rng = job_rng(self.ctx.config.seed, self.name, index)
        job_id = rng_uuid(rng)
        plan = JobPlan.draw(self.config.profile, total, rng)
        job = SimJob(
            f"{self.ctx.config.seed}:{self.name}:{job_id}",
            total,
            plan,
            self.now,
            granularity=granularity,
            stop_on_failure=stop_on_failure,
        )
        return job, job_id
