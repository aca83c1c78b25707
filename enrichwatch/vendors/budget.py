"""The request budget of one vendor account, enforced where requests leave: every call an
adapter makes to the vendor's API waits here for a place in the vendor's window.

The reconciler plans its status checks against a token bucket of its own, but results
fetches, submissions and actions call the vendor too, and the vendor counts them all: only a
gate on the HTTP road itself keeps the account under its documented limit whoever calls.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable

from enrichwatch.models import VendorName

Clock = Callable[[], float]

WINDOW = 60.0
"""Vendors state limits per minute over a sliding window."""
MARGIN = 1.0
"""Seconds added to the window: the vendor counts a request when it arrives, a little after
we sent it, and rounds its reset up to whole seconds."""
CHECK_EVERY = 1.0
"""Longest real sleep between looks at the clock, so a clock that runs faster than real time
(the simulator's, sped up) is followed instead of slept past."""


class RequestBudget:
    """A sliding window of `limit` requests per `WINDOW` seconds (None: no documented limit,
    only the vendor's own pauses), handed out in arrival order."""

    def __init__(self, limit: int | None, clock: Clock) -> None:
        self.limit = limit
        self._clock = clock
        self._sent: deque[float] = deque()
        self._paused_until = -math.inf
        self._turn: asyncio.Lock | None = None

    async def acquire(self, max_wait: float) -> float:
        """Count one more request once it fits the window and no pause holds, waiting up to
        `max_wait` seconds for that; returns 0 when counted. A longer wait is returned
        instead, uncounted: the caller gives the call up for later rather than hold up the
        work queued behind it (a day's quota pause would stall every fetch)."""
        if self._turn is None:
            self._turn = asyncio.Lock()
        async with self._turn:
            # Polled, not awaited on an event: what frees a place is the clock moving on.
            while (wait := self.wait(self._clock())) > 0:
                if wait > max_wait:
                    return wait
                await asyncio.sleep(min(wait, CHECK_EVERY))
            self._sent.append(self._clock())
            return 0.0

    def wait(self, now: float) -> float:
        """Seconds until a request may be sent; 0 or less means now."""
        while self._sent and self._sent[0] <= now - WINDOW - MARGIN:
            self._sent.popleft()
        wait = self._paused_until - now
        if self.limit is not None and len(self._sent) >= self.limit:
            wait = max(wait, self._sent[-self.limit] + WINDOW + MARGIN - now)
        return wait

    def pause(self, seconds: float) -> None:
        """The vendor said no requests for `seconds` (a 429's delay, or its count spent)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)


class RequestBudgets:
    """One `RequestBudget` per vendor account, so every adapter built for the same account,
    however many, draws on the same window."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._budgets: dict[tuple[VendorName, str, str], RequestBudget] = {}

    def account(
        self, vendor: VendorName, base_url: str, api_key: str, limit: int | None
    ) -> RequestBudget:
        key = (vendor, base_url, api_key)
        budget = self._budgets.get(key)
        if budget is None:
            budget = self._budgets[key] = RequestBudget(limit, self._clock)
        return budget
