"""Reads for the dashboard: a job's latest events, finished jobs to chart, and the callbacks
that came late or never. Kept apart from the reads every surface shares, so the dashboard's
questions stay in one place."""

from __future__ import annotations

import sqlite3
from typing import Any

from enrichwatch.models import JobState, VendorName
from enrichwatch.store.records import EventRecord, JobRecord


class DashboardReads:
    """Mixed into Store, which supplies the read connection."""

    async def _fetchall(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        raise NotImplementedError

    async def _fetchone(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Row | None:
        raise NotImplementedError

    async def recent_events(self, job_id: int, *, limit: int) -> tuple[list[EventRecord], int]:
        """The job's latest `limit` events, oldest first, and how many it has in all."""
        rows = await self._fetchall(
            "SELECT * FROM events WHERE job_id = ? ORDER BY seq DESC LIMIT ?", (job_id, limit)
        )
        total = await self._fetchone("SELECT COUNT(*) FROM events WHERE job_id = ?", (job_id,))
        assert total is not None
        return [EventRecord.from_row(row) for row in reversed(rows)], int(total[0])

    async def finished_jobs(self, vendor: VendorName, *, limit: int = 200) -> list[JobRecord]:
        """The vendor's latest finished jobs, in the order they finished."""
        rows = await self._fetchall(
            """SELECT * FROM jobs WHERE vendor = ? AND finished_at IS NOT NULL
                ORDER BY finished_at DESC, id DESC LIMIT ?""",
            (vendor.value, limit),
        )
        return [JobRecord.from_row(row) for row in reversed(rows)]

    async def late_callback_jobs(self, vendor: VendorName, *, limit: int = 100) -> list[JobRecord]:
        """Jobs whose callback deadline passed (a `webhook.late` event), latest first."""
        rows = await self._fetchall(
            """SELECT * FROM jobs WHERE vendor = ? AND late_webhook_at IS NOT NULL
                ORDER BY late_webhook_at DESC, id DESC LIMIT ?""",
            (vendor.value, limit),
        )
        return [JobRecord.from_row(row) for row in rows]

    async def jobs_never_called_back(
        self, vendor: VendorName, *, limit: int = 100
    ) -> list[JobRecord]:
        """Completed jobs that gave the vendor a callback URL and never received a callback,
        latest first."""
        rows = await self._fetchall(
            """SELECT * FROM jobs WHERE vendor = ? AND state = ? AND expects_callback = 1
                  AND NOT EXISTS (SELECT 1 FROM events WHERE events.job_id = jobs.id
                                     AND events.type = 'webhook.received')
                ORDER BY finished_at DESC, id DESC LIMIT ?""",
            (vendor.value, JobState.COMPLETED.value, limit),
        )
        return [JobRecord.from_row(row) for row in rows]
