"""The request budget of one vendor account, and how long to wait after a failed call.

Every job of a vendor account draws on one budget, so a burst of due jobs cannot trip the
vendor's limit; when the vendor says stop (429, `Retry-After`, `x-ratelimit-reset`), the whole
account waits, not just the job that heard it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

WINDOW = 60.0
"""Vendors state limits per minute over a sliding window."""


@dataclass
class TokenBucket:
    """A token bucket that hands out reservations instead of refusals.

    `rate` is tokens per second (None: the vendor documents no limit, so only a vendor's own
    429 slows us down) and `capacity` the burst. Reservations may run into debt: each one is
    granted the time at which the bucket will have paid for it, so callers queue in order.
    Not thread-safe: one reconciler loop owns each bucket.
    """

    rate: float | None
    capacity: float = 1.0
    tokens: float = field(default=math.nan)
    updated_at: float = -math.inf
    blocked_until: float = -math.inf

    def __post_init__(self) -> None:
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be positive")
        if self.capacity < 1:
            raise ValueError("capacity must be at least one token")
        if math.isnan(self.tokens):
            self.tokens = self.capacity

    @classmethod
    def per_minute(cls, limit: float | None) -> TokenBucket:
        """A bucket that cannot exceed `limit` calls in any 60 s sliding window: a burst of a
        tenth of the limit, then a steady rate for the rest (at most `capacity` plus
        `rate * 60` calls fit in any window)."""
        if limit is None:
            return cls(rate=None)
        capacity = max(1.0, math.floor(limit / 10))
        return cls(rate=max(limit - capacity, 1.0) / WINDOW, capacity=capacity)

    def available_at(self, now: float) -> float:
        """The earliest time a call could be made, without reserving it."""
        if self.rate is None:
            return max(now, self.blocked_until)
        tokens = self._tokens_at(now)
        wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
        return max(now + wait, self.blocked_until)

    def reserve(self, now: float) -> float:
        """Reserve one call; returns when it may be made (`now` if at once). The token is
        spent either way, so a caller told to wait must make its call then, not re-reserve."""
        at = self.available_at(now)
        if self.rate is not None:
            self.tokens = self._tokens_at(now) - 1
            self.updated_at = now
        return at

    def block_until(self, until: float) -> None:
        """The vendor said no calls before `until` (429 `Retry-After`, `x-ratelimit-reset`)."""
        self.blocked_until = max(self.blocked_until, until)

    def observe(self, now: float, remaining: int | None, reset: float | None) -> None:
        """Align with the vendor's own count (`x-ratelimit-remaining`, `x-ratelimit-reset` in
        seconds from now): never believe we have more than it says we have."""
        if remaining is None:
            return
        if remaining <= 0 and reset is not None:
            self.block_until(now + reset)
        if self.rate is not None:
            self.tokens = min(self._tokens_at(now), float(remaining))
            self.updated_at = now

    def _tokens_at(self, now: float) -> float:
        assert self.rate is not None
        elapsed = max(0.0, now - self.updated_at)
        return min(self.capacity, self.tokens + elapsed * self.rate)


def backoff(
    attempt: int,
    rng: random.Random,
    *,
    base: float = 2.0,
    cap: float = 300.0,
    retry_after: float | None = None,
) -> float:
    """Seconds to wait before retrying after the `attempt`-th consecutive failure (1 = first).

    Exponential with "equal jitter": half the step is fixed, so a retry never comes right back
    at once, half is random, so jobs that failed together do not retry together. A vendor's
    `retry_after` (seconds) is a floor, never shortened; only a little jitter is added on top.
    """
    if attempt < 1:
        raise ValueError("attempt counts failures and starts at 1")
    step = min(cap, base * 2.0 ** min(attempt - 1, 60))
    delay = step / 2 + rng.uniform(0, step / 2)
    if retry_after is None:
        return delay
    return max(retry_after, 0.0) + rng.uniform(0, min(base, step / 2))
