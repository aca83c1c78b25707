"""The request budget of one vendor account, enforced where requests leave: every call an
adapter makes to the vendor's API waits here for a place in the vendor's window.

The reconciler plans its status checks against a token bucket of its own, but results
fetches, submissions and actions call the vendor too, and so do a separate receiver process
and the CLI: the vendor counts them all. So the window and the vendor's pauses live in the
database (`BudgetLedger`), where every process on the file takes its places from one budget.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Protocol

from enrichwatch.models import VendorName

WINDOW = 60.0
"""Vendors state limits per minute over a sliding window."""
MARGIN = 1.0
"""Seconds added to the window: the vendor counts a request when it arrives, a little after
we sent it, and rounds its reset up to whole seconds."""
CHECK_EVERY = 1.0
"""Longest real sleep between looks at the window, so a clock that runs faster than real time
(the simulator's, sped up) is followed instead of slept past."""


class BudgetLedger(Protocol):
    """Where the places taken and the pauses are kept (the store)."""

    async def take_request_place(self, account: str, limit: int | None, span: float) -> float:
        """0 when a place was taken, else the seconds until one may be free."""
        ...

    async def pause_requests(self, account: str, seconds: float) -> None: ...


class RequestBudget:
    """A sliding window of `limit` requests per `WINDOW` seconds (None: no documented limit,
    only the vendor's own pauses), handed out in arrival order within a process."""

    def __init__(self, account: str, limit: int | None, ledger: BudgetLedger) -> None:
        self.account = account
        self.limit = limit
        self._ledger = ledger
        self._turn: asyncio.Lock | None = None

    async def acquire(self, max_wait: float) -> float:
        """Count one more request once it fits the window and no pause holds, waiting up to
        `max_wait` seconds for that; returns 0 when counted. A longer wait is returned
        instead, uncounted: the caller gives the call up for later rather than hold up the
        work queued behind it (a day's quota pause would stall every fetch)."""
        if self._turn is None:
            self._turn = asyncio.Lock()
        async with self._turn:
            # Polled, not awaited on an event: what frees a place is the clock moving on, or
            # another process's pause running out.
            while (wait := await self._take()) > 0:
                if wait > max_wait:
                    return wait
                await asyncio.sleep(min(wait, CHECK_EVERY))
            return 0.0

    async def _take(self) -> float:
        return await self._ledger.take_request_place(self.account, self.limit, WINDOW + MARGIN)

    async def pause(self, seconds: float) -> None:
        """The vendor said no requests for `seconds` (a 429's delay, or its count spent)."""
        await self._ledger.pause_requests(self.account, seconds)


class RequestBudgets:
    """One `RequestBudget` per vendor account, so every adapter built for the same account,
    however many, draws on the same window."""

    def __init__(self, ledger: BudgetLedger) -> None:
        self._ledger = ledger
        self._budgets: dict[str, RequestBudget] = {}

    def account(
        self, vendor: VendorName, base_url: str, api_key: str, limit: int | None
    ) -> RequestBudget:
        account = account_id(vendor, base_url, api_key)
        budget = self._budgets.get(account)
        if budget is None:
            budget = self._budgets[account] = RequestBudget(account, limit, self._ledger)
        return budget


def account_id(vendor: VendorName, base_url: str, api_key: str) -> str:
    """The name an account's budget is kept under: the same for every process that holds the
    same key, and useless to anyone who reads the database."""
    digest = hashlib.sha256(f"{vendor.value}\0{base_url}\0{api_key}".encode())
    return f"{vendor.value}:{digest.hexdigest()[:32]}"
