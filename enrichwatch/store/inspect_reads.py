"""Reads for looking into the log from the CLI: one stored callback, a job's latest events,
the per-job timeline the vendor statistics are computed from, and pending work."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from typing import Any

from pydantic import BaseModel, ConfigDict

from enrichwatch.errors import UnknownInboxError
from enrichwatch.models import TERMINAL_STATES, JobState, VendorName
from enrichwatch.store.records import EventRecord, InboxRecord

_TERMINAL = tuple(state.value for state in TERMINAL_STATES)
_PLACEHOLDERS = ",".join("?" * len(_TERMINAL))

# One row per job: what its events say about when it started, ended and was heard from.
# The end is the first move to a final state (a reprocessed job keeps its first run's end);
# it was detected when a status call saw it (not when the job was refused or given up on).
_TIMELINES = f"""
WITH marks AS (
    SELECT job_id,
           MIN(created_at) AS started_at,
           MIN(CASE WHEN (type = 'job.state_changed'
                          AND json_extract(payload, '$.to') IN ({_PLACEHOLDERS}))
                         OR type = 'submit.failed'
                    THEN created_at END) AS ended_at,
           MIN(CASE WHEN type = 'job.state_changed' AND source = 'poll'
                          AND json_extract(payload, '$.to') IN ({_PLACEHOLDERS})
                    THEN created_at END) AS detected_at,
           MIN(CASE WHEN type = 'webhook.received' THEN created_at END) AS first_callback_at,
           MAX(type = 'webhook.late') AS late
      FROM events GROUP BY job_id)
SELECT jobs.id, jobs.vendor, jobs.state, jobs.vendor_calls, jobs.expects_callback,
       marks.started_at, marks.ended_at, marks.detected_at, marks.first_callback_at,
       marks.late,
       (SELECT MAX(polled.created_at) FROM events AS polled
         WHERE polled.job_id = jobs.id AND polled.type = 'vendor.polled'
           AND json_extract(polled.payload, '$.state') NOT IN ({_PLACEHOLDERS})
           AND polled.created_at <= marks.detected_at) AS last_seen_open_at
  FROM jobs JOIN marks ON marks.job_id = jobs.id
"""  # noqa: S608 (placeholders only)


class JobTimeline(BaseModel):
    """One job as the event log tells it; times are clock seconds, None where the log has
    no such event."""

    model_config = ConfigDict(frozen=True)

    job_id: int
    vendor: VendorName
    state: JobState
    vendor_calls: float
    expects_callback: bool
    started_at: float
    ended_at: float | None
    detected_at: float | None
    """When a status call first saw the job in a final state."""
    first_callback_at: float | None
    last_seen_open_at: float | None
    late_webhook: bool


class InspectReads:
    """Mixed into Store, which supplies the read connection."""

    async def _fetchone(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Row | None:
        raise NotImplementedError

    async def _fetchall(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        raise NotImplementedError

    async def get_inbox(self, inbox_id: int) -> InboxRecord:
        """One stored callback, as it arrived."""
        row = await self._fetchone("SELECT * FROM inbox WHERE id = ?", (inbox_id,))
        if row is None:
            raise UnknownInboxError(inbox_id)
        return InboxRecord.from_row(row)

    async def latest_events(self, job_id: int, limit: int) -> list[EventRecord]:
        """The job's last `limit` events, oldest first."""
        rows = await self._fetchall(
            "SELECT * FROM events WHERE job_id = ? ORDER BY seq DESC LIMIT ?", (job_id, limit)
        )
        return [EventRecord.from_row(row) for row in reversed(rows)]

    async def job_timelines(self) -> list[JobTimeline]:
        """Every job's timeline, oldest job first."""
        rows = await self._fetchall(
            _TIMELINES + " ORDER BY jobs.id", (*_TERMINAL, *_TERMINAL, *_TERMINAL)
        )
        return [
            JobTimeline(
                job_id=row["id"],
                vendor=row["vendor"],
                state=row["state"],
                vendor_calls=row["vendor_calls"],
                expects_callback=bool(row["expects_callback"]),
                started_at=row["started_at"],
                ended_at=row["ended_at"],
                detected_at=row["detected_at"],
                first_callback_at=row["first_callback_at"],
                last_seen_open_at=row["last_seen_open_at"],
                late_webhook=bool(row["late"]),
            )
            for row in rows
        ]

    async def pending_work(self, job_ids: Collection[int]) -> int:
        """How many side effects (results fetches, notifications…) of these jobs are still to
        be done; dead-lettered ones are not counted."""
        if not job_ids:
            return 0
        marks = ",".join("?" * len(job_ids))
        row = await self._fetchone(
            f"SELECT COUNT(*) FROM work WHERE state = 'pending' AND job_id IN ({marks})",  # noqa: S608
            tuple(job_ids),
        )
        return 0 if row is None else int(row[0])
