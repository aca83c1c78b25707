"""What the sim saw: requests per vendor and endpoint, and every limit a client overstepped.

Tests assert on these to prove a client stayed inside a vendor's limits and spent as few
calls as it claims.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ViolationKind = Literal["rate_limit", "concurrency", "quota"]


@dataclass(frozen=True)
class Violation:
    vendor: str
    endpoint: str
    kind: ViolationKind
    at: float
    """Simulated time of the rejected request."""


@dataclass
class SimStats:
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    violations: list[Violation] = field(default_factory=list)
    injected: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Responses replaced by an injected fault, per (vendor, fault kind)."""

    def count(self, vendor: str | None = None, endpoint: str | None = None) -> int:
        return sum(
            n
            for (v, e), n in self.requests.items()
            if (vendor is None or v == vendor) and (endpoint is None or e == endpoint)
        )

    def by_endpoint(self, vendor: str) -> dict[str, int]:
        return {e: n for (v, e), n in sorted(self.requests.items()) if v == vendor}

    def rate_limit_violations(
        self, vendor: str | None = None, kind: ViolationKind | None = None
    ) -> list[Violation]:
        return [
            v
            for v in self.violations
            if (vendor is None or v.vendor == vendor) and (kind is None or v.kind == kind)
        ]

    def reset(self) -> None:
        self.requests.clear()
        self.violations.clear()
        self.injected.clear()

    def as_json(self) -> dict[str, Any]:
        vendors: dict[str, dict[str, int]] = {}
        for (vendor, endpoint), n in sorted(self.requests.items()):
            vendors.setdefault(vendor, {})[endpoint] = n
        injected: dict[str, dict[str, int]] = {}
        for (vendor, kind), n in sorted(self.injected.items()):
            injected.setdefault(vendor, {})[kind] = n
        return {
            "requests": vendors,
            "total": sum(self.requests.values()),
            "violations": [asdict(v) for v in self.violations],
            "injected_faults": injected,
        }
