"""Writes for the vendor accounts' request budgets (see `enrichwatch.vendors.budget`).

Taking a place is a read and a write in one IMMEDIATE transaction, so two processes never
both take the last place in a window.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable

from enrichwatch.store.writer import Writer


class RequestBudgetWrites:
    """Mixed into Store; the state is Store's."""

    _writer: Writer
    clock: Callable[[], float]

    async def take_request_place(self, account: str, limit: int | None, span: float) -> float:
        """Count one request for `account` if fewer than `limit` (None: no limit) were sent in
        the last `span` seconds and no pause holds; returns 0 when counted, else the seconds
        until a place may be free (nothing counted)."""
        clock = self.clock

        def op(conn: sqlite3.Connection) -> float:
            # Read here, not when queued: the group may wait on another process's lock.
            now = clock()
            conn.execute(
                "DELETE FROM request_sends WHERE account = ? AND sent_at <= ?",
                (account, now - span),
            )
            row = conn.execute(
                "SELECT until FROM request_pauses WHERE account = ?", (account,)
            ).fetchone()
            wait = -math.inf if row is None else row[0] - now
            if limit is not None:
                row = conn.execute(
                    "SELECT sent_at FROM request_sends WHERE account = ? "
                    "ORDER BY sent_at DESC LIMIT 1 OFFSET ?",
                    (account, limit - 1),
                ).fetchone()
                if row is not None:
                    wait = max(wait, row[0] + span - now)
            if wait > 0:
                return wait
            if limit is not None:  # counted only where there is a count to keep
                conn.execute(
                    "INSERT INTO request_sends (account, sent_at) VALUES (?, ?)", (account, now)
                )
            return 0.0

        return await self._writer.run(op)

    async def pause_requests(self, account: str, seconds: float) -> None:
        """No request for `account` in the next `seconds`, from any process."""
        until = self.clock() + seconds

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO request_pauses (account, until) VALUES (?, ?) "
                "ON CONFLICT (account) DO UPDATE SET until = max(until, excluded.until)",
                (account, until),
            )

        await self._writer.run(op)
