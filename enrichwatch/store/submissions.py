"""Writes for submitting batches: a job row exists (with its callback token) before anything
is sent, so a callback URL can be given to the vendor and a crash mid-submit leaves a trace."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from enrichwatch.models import EventSource, JobState, VendorName
from enrichwatch.store import notifications, work
from enrichwatch.store.notifications import JobTargets, NotifyRoutes, write_job_targets
from enrichwatch.store.records import JobRecord
from enrichwatch.store.rows import append_event, fetch_job, insert_job
from enrichwatch.store.writer import Writer

SUBMIT_WORK = "submit"


class SubmissionWrites:
    """Mixed into Store; the state is Store's."""

    _writer: Writer
    clock: Callable[[], float]
    notify_routes: NotifyRoutes

    async def reserve_job(
        self,
        vendor: VendorName,
        name: str | None,
        *,
        rows: int,
        source: EventSource,
        owner: str,
        notify: JobTargets | None = None,
    ) -> JobRecord:
        """A job for one part of a batch, before it is sent (its vendor_job_id is unknown),
        with its own notification targets if it has any.

        The part is `owner`'s (the lease holder of the process about to send or queue it)
        until its send begins or it is queued: a stop in between, with nothing sent, is then
        found and settled like a send cut off (`begin_send`) rather than left open for ever."""
        now = self.clock()

        def op(conn: sqlite3.Connection) -> JobRecord:
            job = insert_job(conn, vendor, None, name, now=now, due_at=None)
            write_job_targets(conn, job.id, notify)
            conn.execute(
                "UPDATE jobs SET input_rows = ?, send_owner = ? WHERE id = ?",
                (rows, owner, job.id),
            )
            append_event(conn, job.id, "submit.requested", source, {"rows": rows}, now=now)
            return fetch_job(conn, job.id)

        return await self._writer.run(op)

    async def begin_send(self, job_id: int, *, owner: str) -> None:
        """Record that the part's submit call is going out, from the process whose lease
        holder is `owner`, before it does. Its outcome clears the mark (`record_submitted`,
        `queue_submission`, `fail_submission`); a mark still set once that process is gone,
        or long after, means it stopped mid-call and the vendor may have the job."""
        now = self.clock()

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE jobs SET send_started_at = ?, send_owner = ?, send_vendor_job_id = NULL "
                "WHERE id = ?",
                (now, owner, job_id),
            )
            append_event(conn, job_id, "submit.sending", EventSource.SYSTEM, {}, now=now)

        await self._writer.run(op)

    async def record_send_created(self, job_id: int, vendor_job_id: str) -> None:
        """The id of the vendor's job the submit call under way makes is known before the call
        is done: a stop from here on leaves it on record, so the job can be settled (tracked,
        or found absent or deleted) rather than left at the vendor untracked."""
        now = self.clock()

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE jobs SET send_vendor_job_id = ? WHERE id = ?", (vendor_job_id, job_id)
            )
            append_event(
                conn,
                job_id,
                "submit.created",
                EventSource.SYSTEM,
                {"vendor_job_id": vendor_job_id},
                now=now,
            )

        await self._writer.run(op)

    async def resend_held_part(self, job_id: int, reason: str, *, vendor_calls: int) -> bool:
        """A submit call cut off by a stop left nothing at the vendor: if the part is held
        here (a submit work item keeps its rows), it is due to be sent again at once, and
        True; else (sent directly, its rows never kept) False, and nothing changes."""
        now = self.clock()

        def op(conn: sqlite3.Connection) -> bool:
            # Its lease stays: the lane sending it holds it, or the reconciler frees a gone
            # holder's.
            held = conn.execute(
                """UPDATE work SET next_attempt_at = ?, last_error = ?, updated_at = ?
                   WHERE unique_key = ? AND state = 'pending'""",
                (now, reason, now, f"{SUBMIT_WORK}:{job_id}"),
            ).rowcount
            if not held:
                return False
            _queued(conn, job_id, reason, now, vendor_calls, now)
            return True

        return await self._writer.run(op)

    async def record_submitted(
        self,
        job_id: int,
        vendor_job_id: str,
        *,
        vendor_calls: int,
        raw: dict[str, Any],
        expects_callback: bool = False,
    ) -> JobRecord:
        """The vendor took the part: the job now has its id and is due for its first check.

        If the vendor's id is already tracked (an ambiguous submit adopted an earlier job),
        this reservation fails pointing at that job, and that job is returned.
        """
        now = self.clock()

        def op(conn: sqlite3.Connection) -> JobRecord:
            job = fetch_job(conn, job_id)
            existing = conn.execute(
                "SELECT id FROM jobs WHERE vendor = ? AND vendor_job_id = ?",
                (job.vendor.value, vendor_job_id),
            ).fetchone()
            _finish_submit_work(conn, job_id, now)
            if existing is not None and existing["id"] != job_id:
                _fail(
                    conn,
                    job_id,
                    f"the vendor job is already tracked as job {existing['id']}",
                    0,
                    now,
                )
                return fetch_job(conn, existing["id"])
            conn.execute(
                """UPDATE jobs SET vendor_job_id = ?, next_check_at = ?, updated_at = ?,
                                   vendor_calls = vendor_calls + ?, expects_callback = ?,
                                   send_started_at = NULL, send_owner = NULL,
                                   send_vendor_job_id = NULL
                   WHERE id = ?""",
                (vendor_job_id, now, now, vendor_calls, expects_callback, job_id),
            )
            append_event(
                conn,
                job_id,
                "job.submitted",
                EventSource.API,
                {"vendor_job_id": vendor_job_id, "vendor_status": raw.get("status")},
                now=now,
            )
            return fetch_job(conn, job_id)

        return await self._writer.run(op)

    async def queue_submission(
        self,
        job_id: int,
        request: dict[str, Any],
        *,
        retry_at: float,
        reason: str,
        vendor_calls: int,
        transient_failures: int = 0,
    ) -> JobRecord:
        """Keep the part locally and send it later (the vendor's concurrency cap was hit, or
        a transient failure created nothing; `transient_failures` counts those so far)."""
        now = self.clock()

        def op(conn: sqlite3.Connection) -> JobRecord:
            work.enqueue(
                conn,
                kind=SUBMIT_WORK,
                job_id=job_id,
                payload={"request": request, "transient_failures": transient_failures},
                unique_key=f"{SUBMIT_WORK}:{job_id}",
                due_at=retry_at,
                now=now,
                last_error=reason,
            )
            _queued(conn, job_id, reason, retry_at, vendor_calls, now)
            return fetch_job(conn, job_id)

        return await self._writer.run(op)

    async def fail_submission(self, job_id: int, error: str, *, vendor_calls: int) -> JobRecord:
        """The vendor would not take the job: it fails, and is notified as any failure is (a
        held-back part was acknowledged long before, so this may be the only word of it)."""
        now = self.clock()
        routes = self.notify_routes

        def op(conn: sqlite3.Connection) -> JobRecord:
            _finish_submit_work(conn, job_id, now, state="dead")
            _fail(conn, job_id, error, vendor_calls, now)
            notifications.on_state_change(
                conn, job_id, JobState.FAILED, routes, results_coming=False, now=now
            )
            return fetch_job(conn, job_id)

        return await self._writer.run(op)


def _finish_submit_work(
    conn: sqlite3.Connection, job_id: int, now: float, state: str = "done"
) -> None:
    conn.execute(
        "UPDATE work SET state = ?, lease_owner = NULL, lease_expires_at = NULL, updated_at = ? "
        "WHERE unique_key = ? AND state = 'pending'",
        (state, now, f"{SUBMIT_WORK}:{job_id}"),
    )


def _queued(
    conn: sqlite3.Connection,
    job_id: int,
    reason: str,
    retry_at: float,
    vendor_calls: int,
    now: float,
) -> None:
    """The part's send ended with it kept here, to be sent at `retry_at`."""
    conn.execute(
        """UPDATE jobs SET vendor_calls = vendor_calls + ?, updated_at = ?,
                           send_started_at = NULL, send_owner = NULL, send_vendor_job_id = NULL
           WHERE id = ?""",
        (vendor_calls, now, job_id),
    )
    append_event(
        conn,
        job_id,
        "submit.queued",
        EventSource.SYSTEM,
        {"reason": reason, "retry_at": retry_at},
        now=now,
    )


def _fail(conn: sqlite3.Connection, job_id: int, error: str, vendor_calls: int, now: float) -> None:
    conn.execute(
        """UPDATE jobs SET state = 'failed', error = ?, finished_at = ?, next_check_at = NULL,
                           vendor_calls = vendor_calls + ?, updated_at = ?,
                           send_started_at = NULL, send_owner = NULL,
                           send_vendor_job_id = NULL
           WHERE id = ?""",
        (error, now, vendor_calls, now, job_id),
    )
    append_event(conn, job_id, "submit.failed", EventSource.SYSTEM, {"error": error}, now=now)
