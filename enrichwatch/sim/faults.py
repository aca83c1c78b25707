"""Runtime fault injection, per vendor, so tests can prove a client survives a bad day.

Counted faults (`rate_limit`, `server_errors`, `slow_count`, `truncate_gzip`,
`latin1_results`, `links_missing`) are consumed one per matching request and then stop;
`expire_links` holds until cleared. Use vendor `"storage"` to fault the Crustdata download
host itself.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

from enrichwatch.sim.config import VENDORS

FaultKind = Literal[
    "rate_limit", "server_errors", "slow_count", "truncate_gzip", "latin1_results", "links_missing"
]
FAULT_TARGETS: tuple[str, ...] = (*VENDORS, "storage")


@dataclass
class FaultPlan:
    rate_limit: int = 0
    """The next N requests answer 429 with the vendor's rate-limit headers."""
    retry_after: int = 30
    """Seconds advertised by an injected 429 (Retry-After or x-ratelimit-reset)."""
    server_errors: int = 0
    server_error_status: int = 503
    slow_count: int = 0
    slow_seconds: float = 0.0
    """Real seconds the next `slow_count` requests are held before being answered."""
    slow_after_answer: bool = False
    """Hold a slow request after its answer is made (latency on the way back), so the answer
    is what the vendor knew when the request arrived."""
    truncate_gzip: int = 0
    """Crustdata/storage: the next N downloads stop mid-stream with no gzip trailer."""
    latin1_results: int = 0
    """influencers.club: the next N results bodies are Latin-1 text, not UTF-8, with their
    accented letters unescaped (bytes a UTF-8 reader cannot decode)."""
    links_missing: int = 0
    """Crustdata: the next N status answers say "completed" without their download links yet."""
    expire_links: bool = False
    """Crustdata/storage: every pre-signed link is treated as expired."""
    endpoint: str | list[str] | None = None
    """Restrict counted faults to one endpoint label, e.g. "GET /batch/{id}", or to any of
    a list of them."""


class FaultInjector:
    def __init__(self) -> None:
        self._plans: dict[str, FaultPlan] = {}

    def set(self, target: str, **settings: object) -> FaultPlan:
        """Replace `target`'s plan; unknown setting names raise TypeError."""
        if target not in FAULT_TARGETS:
            raise KeyError(f"unknown fault target {target!r}")
        names = {f.name for f in fields(FaultPlan)}
        unknown = set(settings) - names
        if unknown:
            raise TypeError(f"unknown fault settings: {sorted(unknown)}")
        plan = FaultPlan(**settings)  # type: ignore[arg-type]
        self._plans[target] = plan
        return plan

    def clear(self, target: str | None = None) -> None:
        if target is None:
            self._plans.clear()
        else:
            self._plans.pop(target, None)

    def plan(self, target: str) -> FaultPlan:
        return self._plans.get(target) or FaultPlan()

    def take(self, target: str, endpoint: str, kind: FaultKind) -> bool:
        """Consume one fault of `kind` for this request, if any is left."""
        plan = self._plans.get(target)
        if plan is None or getattr(plan, kind) <= 0:
            return False
        if plan.endpoint is not None and endpoint not in _labels(plan.endpoint):
            return False
        setattr(plan, kind, getattr(plan, kind) - 1)
        return True


def _labels(endpoint: str | list[str]) -> list[str]:
    return [endpoint] if isinstance(endpoint, str) else endpoint
