"""A sliding-window request limiter on the simulated clock, as Crustdata documents its own."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset: int
    """Whole seconds until the oldest counted request leaves the window."""


class SlidingWindow:
    """Counts accepted requests per key over the last `window` seconds."""

    def __init__(self, window: float = 60.0) -> None:
        self.window = window
        self._hits: dict[str, deque[float]] = {}

    def check(self, key: str, limit: int, now: float) -> Verdict:
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        allowed = len(hits) < limit
        if allowed:
            hits.append(now)
        reset = math.ceil(hits[0] + self.window - now) if hits else 0
        return Verdict(allowed, limit, max(0, limit - len(hits)), max(0, reset))

    def peek(self, key: str, limit: int, now: float) -> Verdict:
        """The window as it stands, without counting a request."""
        hits = self._hits.get(key, deque())
        live = [h for h in hits if h > now - self.window]
        reset = math.ceil(live[0] + self.window - now) if live else 0
        return Verdict(len(live) < limit, limit, max(0, limit - len(live)), max(0, reset))
