"""Writes for the reconciler's checks: claiming due jobs, recording what a status call found
(event and projection in one transaction, state only ever moving forward), closing a job the
vendor no longer answers for, and an operator's actions on a job."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from enrichwatch.models import OPEN_STATES, EventSource, JobState, VendorName
from enrichwatch.store import fetches, notifications
from enrichwatch.store.notifications import NotifyRoutes, Outcome
from enrichwatch.store.records import JobRecord
from enrichwatch.store.rows import append_event, fetch_job
from enrichwatch.store.writer import Writer
from enrichwatch.vendors.base import StatusSnapshot

DUE_JOB = f"""next_check_at <= ? AND vendor_job_id IS NOT NULL
    AND state IN ({",".join("?" * len(OPEN_STATES))})
    AND (lease_expires_at IS NULL OR lease_expires_at <= ?)"""
"""An open job whose check is due and that no live lease holds; `due_job_params` fills it."""


def due_job_params(now: float) -> tuple[object, ...]:
    return (now, *OPEN_STATES, now)


NEXT_CHECK_IF_OPEN = f"""CASE WHEN state IN ({",".join("?" * len(OPEN_STATES))}) THEN ?
    ELSE next_check_at END"""
"""A next check that a write plans, which only an open job takes: a finished one is never
checked again. `next_check_if_open_params` fills it."""


def next_check_if_open_params(at: float) -> tuple[object, ...]:
    return (*OPEN_STATES, at)


_RANK = {
    JobState.SUBMITTED: 0,
    JobState.QUEUED: 1,
    JobState.RUNNING: 2,
    JobState.NEEDS_ACTION: 2,  # a pause and a run can follow each other
    JobState.COMPLETED: 3,
    JobState.FAILED: 3,
    JobState.EXPIRED: 3,
}


def moves_forward(current: JobState, seen: JobState) -> bool:
    """Whether a state the vendor reports may replace the job's: never out of a terminal
    state, never back to an earlier one (a late or reordered answer changes nothing)."""
    if current.is_terminal or seen is current:
        return False
    return _RANK[seen] >= _RANK[current]


@dataclass(frozen=True)
class CheckOutcome:
    """What one status call found, and when to look next (`next_check_at` None: never)."""

    snapshot: StatusSnapshot
    cost: float
    next_check_at: float | None
    late_webhook: bool = False


def _woken(claimed: JobRecord, current: JobRecord) -> bool:
    """Whether a callback or an operator's action made the job due while its lease's call was
    out: they move `next_check_at` (see `claim_due_jobs`). The answer, read before, may not
    show what they announce, so the job stays due for a call of its own."""
    return current.next_check_at != claimed.next_check_at


class CheckWrites:
    """Mixed into Store; the state is Store's."""

    _writer: Writer
    clock: Callable[[], float]
    notify_routes: NotifyRoutes

    async def claim_due_jobs(
        self, *, owner: str, lease_s: float, limit: int, vendor: VendorName | None = None
    ) -> list[JobRecord]:
        """Lease open jobs whose check is due (of one vendor, if given), soonest first; an
        expired lease is fair game.

        A leased job is due again when its lease ends, should its holder die. A callback or
        an action that makes it due meanwhile moves that time, which is how the holder learns
        of it (see `_woken`)."""
        now = self.clock()
        only = None if vendor is None else vendor.value

        def op(conn: sqlite3.Connection) -> list[JobRecord]:
            rows = conn.execute(
                f"""UPDATE jobs SET lease_owner = ?, lease_expires_at = ?, next_check_at = ?
                    WHERE id IN (
                        SELECT id FROM jobs WHERE {DUE_JOB} AND (? IS NULL OR vendor = ?)
                         ORDER BY next_check_at LIMIT ?)
                    RETURNING *""",  # noqa: S608 (placeholders only)
                (owner, now + lease_s, now + lease_s, *due_job_params(now), only, only, limit),
            ).fetchall()
            return sorted((JobRecord.from_row(row) for row in rows), key=lambda job: job.id)

        return await self._writer.run(op)

    async def claim_polled_jobs(
        self, vendor: VendorName, *, owner: str, lease_s: float, limit: int
    ) -> list[JobRecord]:
        """Lease a vendor's open jobs that wait for no callback and no live lease holds, due or
        not, soonest due first, for a list call that is being made anyway to report on. Their
        planned checks stay as they are: a holder that dies leaves them due as planned once
        its lease ends, and a callback meanwhile still shows (see `_woken`)."""
        now = self.clock()
        placeholders = ",".join("?" * len(OPEN_STATES))

        def op(conn: sqlite3.Connection) -> list[JobRecord]:
            rows = conn.execute(
                f"""UPDATE jobs SET lease_owner = ?, lease_expires_at = ?
                    WHERE id IN (
                        SELECT id FROM jobs
                         WHERE vendor = ? AND state IN ({placeholders})
                           AND vendor_job_id IS NOT NULL AND NOT expects_callback
                           AND (lease_expires_at IS NULL OR lease_expires_at <= ?)
                         ORDER BY next_check_at LIMIT ?)
                    RETURNING *""",  # noqa: S608 (placeholders only)
                (owner, now + lease_s, vendor.value, *OPEN_STATES, now, limit),
            ).fetchall()
            return sorted((JobRecord.from_row(row) for row in rows), key=lambda job: job.id)

        return await self._writer.run(op)

    async def release_jobs(self, job_ids: Collection[int], *, owner: str) -> None:
        """Give back leases taken without a call made for them; their plans stay."""

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany(
                """UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL
                   WHERE id = ? AND lease_owner = ?""",
                [(job_id, owner) for job_id in job_ids],
            )

        if job_ids:
            await self._writer.run(op)

    async def make_open_jobs_due(self) -> int:
        """Every open job due now, but for those a running holder has leased: the check after
        start-up."""
        now = self.clock()
        placeholders = ",".join("?" * len(OPEN_STATES))
        return await self._writer.run(
            lambda conn: (
                conn.execute(
                    f"""UPDATE jobs SET next_check_at = ?
                    WHERE state IN ({placeholders}) AND vendor_job_id IS NOT NULL
                      AND (lease_expires_at IS NULL OR lease_expires_at <= ?)""",  # noqa: S608
                    (now, *OPEN_STATES, now),
                ).rowcount
            )
        )

    async def release_leases(self, holders: Collection[str]) -> tuple[int, int]:
        """Free what `holders`, gone, had leased: their jobs are due now, their work items
        (results fetches, held-back submissions, notifications) free to claim. This is how a
        restarted reconciler resumes a killed one's work instead of waiting out its leases.
        Returns how many jobs and work items were freed."""
        now = self.clock()
        owners = sorted(holders)
        placeholders = ",".join("?" * len(owners))

        def op(conn: sqlite3.Connection) -> tuple[int, int]:
            jobs = conn.execute(
                f"""UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL,
                       next_check_at = CASE WHEN next_check_at IS NULL THEN NULL ELSE ? END
                     WHERE lease_owner IN ({placeholders})""",  # noqa: S608 (placeholders only)
                (now, *owners),
            ).rowcount
            items = conn.execute(
                f"""UPDATE work SET lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
                     WHERE state = 'pending' AND lease_owner IN ({placeholders})""",  # noqa: S608
                (now, *owners),
            ).rowcount
            return jobs, items

        if not owners:
            return 0, 0
        return await self._writer.run(op)

    async def make_stale_jobs_due(self, max_intervals: Mapping[VendorName, float]) -> int:
        """Open jobs unchecked for longer than their vendor's maximum interval, due now (but
        not one under a check)."""
        now = self.clock()
        placeholders = ",".join("?" * len(OPEN_STATES))

        def op(conn: sqlite3.Connection) -> int:
            stale = 0
            for vendor, max_interval in max_intervals.items():
                stale += conn.execute(
                    f"""UPDATE jobs SET next_check_at = ?
                        WHERE vendor = ? AND state IN ({placeholders})
                          AND vendor_job_id IS NOT NULL
                          AND COALESCE(last_checked_at, created_at) < ?
                          AND (next_check_at IS NULL OR next_check_at > ?)
                          AND (lease_expires_at IS NULL OR lease_expires_at <= ?)""",  # noqa: S608
                    (now, vendor.value, *OPEN_STATES, now - max_interval, now, now),
                ).rowcount
            return stale

        return await self._writer.run(op)

    async def record_check(self, claimed: JobRecord, outcome: CheckOutcome) -> JobRecord:
        """Apply one status call's findings and release the job's lease; `claimed` is the job
        as it was leased for the call."""
        now = self.clock()
        snap = outcome.snapshot
        routes = self.notify_routes
        job_id = claimed.id

        def op(conn: sqlite3.Connection) -> JobRecord:
            job = fetch_job(conn, job_id)
            if job.run_started_at != claimed.run_started_at:
                return _record_stale_answer(conn, job, outcome, now)
            polled = append_event(
                conn,
                job_id,
                "vendor.polled",
                EventSource.POLL,
                {"cost": outcome.cost, "vendor_status": snap.vendor_status, "state": snap.state},
                now=now,
            )
            assert polled is not None  # appended without a dedupe key, so always new
            state = job.state
            if moves_forward(job.state, snap.state):
                state = snap.state
                append_event(
                    conn,
                    job_id,
                    "job.state_changed",
                    EventSource.POLL,
                    {"from": job.state, "to": state, "vendor_status": snap.vendor_status},
                    now=now,
                )
            progress = (snap.done, snap.failed, snap.total)
            if progress != (job.progress_done, job.progress_failed, job.progress_total) and any(
                value is not None for value in progress
            ):
                append_event(
                    conn,
                    job_id,
                    "job.progressed",
                    EventSource.POLL,
                    {"done": snap.done, "failed": snap.failed, "total": snap.total},
                    now=now,
                )
            late = (
                outcome.late_webhook
                and job.late_webhook_at is None
                and job.last_callback_at is None
            )
            if late:
                append_event(conn, job_id, "webhook.late", EventSource.SYSTEM, {}, now=now)
            fetch = snap.results_available and (state.is_terminal or state is JobState.NEEDS_ACTION)
            # Once per state that brings results (a pause's partial set, then the final one;
            # again after a reprocess reopened the job). Each is a fetch of its own, keyed by
            # the check that found it, so its attempts count from zero and its first attempt
            # starts from this answer; and the results are pending again until it is done.
            fetch_now = fetch and (state is not job.state or job.results_state is None)
            # Results that grow while the job runs (BrightLocal) are fetched as they grow, one
            # fetch at a time: a check that finds more than is stored starts the next one.
            fetch_now = fetch_now or (
                snap.results_available
                and not fetch
                and (snap.done or 0) > job.results_count
                and job.results_state not in ("pending", "fetching")
            )
            if fetch_now:
                fetches.begin_fetch(conn, job_id, snap, polled=polled, now=now)
            next_check_at = outcome.next_check_at
            if state.is_terminal:
                next_check_at = None
            elif _woken(claimed, job):
                next_check_at = job.next_check_at
            paused_at, paused_seconds = job.pauses_after(state, now)
            conn.execute(
                """UPDATE jobs SET state = ?, vendor_status = ?, error = COALESCE(?, error),
                       paused_at = ?, paused_seconds = ?,
                       progress_done = COALESCE(?, progress_done),
                       progress_failed = COALESCE(?, progress_failed),
                       progress_total = COALESCE(?, progress_total),
                       vendor_calls = vendor_calls + ?, last_checked_at = ?, check_failures = 0,
                       failing_since = NULL,
                       retry_after = NULL, next_check_at = ?, lease_owner = NULL,
                       lease_expires_at = NULL, updated_at = ?,
                       finished_at = CASE WHEN ? THEN COALESCE(finished_at, ?) END,
                       late_webhook_at = CASE WHEN ? THEN ? ELSE late_webhook_at END,
                       results_state = CASE WHEN ? THEN 'pending' ELSE results_state END
                   WHERE id = ?""",
                (
                    state.value,
                    snap.vendor_status,
                    snap.error,
                    paused_at,
                    paused_seconds,
                    snap.done,
                    snap.failed,
                    snap.total,
                    outcome.cost,
                    now,
                    next_check_at,
                    now,
                    state.is_terminal,
                    now,
                    late,
                    now,
                    fetch_now,
                    job_id,
                ),
            )
            if state.is_terminal:
                fetches.settle_unfetched(conn, job_id, now)
            # Once the job's row holds what this answer made of it: the messages report it.
            if late:
                notifications.enqueue(conn, job_id, Outcome.WEBHOOK_LATE, routes, now=now)
            if state is not job.state:
                notifications.on_state_change(
                    conn, job_id, state, routes, results_coming=fetch, now=now
                )
            return fetch_job(conn, job_id)

        return await self._writer.run(op)

    async def record_check_failure(
        self,
        claimed: JobRecord,
        error: str,
        *,
        cost: float,
        retry_at: float,
        retry_after: float | None,
        notice: Outcome | None = None,
    ) -> JobRecord:
        """A status call failed: retry at `retry_at`, unless the job was woken meanwhile. A
        `notice` (checks refused, or failing too long) is sent once per run of failed checks,
        and to people once per vendor (see `notifications.enqueue`)."""
        now = self.clock()
        job_id = claimed.id
        routes = self.notify_routes

        def op(conn: sqlite3.Connection) -> JobRecord:
            append_event(
                conn, job_id, "vendor.poll_failed", EventSource.POLL, {"error": error}, now=now
            )
            job = fetch_job(conn, job_id)
            conn.execute(
                """UPDATE jobs SET check_failures = check_failures + 1, retry_after = ?,
                       failing_since = COALESCE(failing_since, ?),
                       vendor_calls = vendor_calls + ?, last_checked_at = ?, next_check_at = ?,
                       lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
                   WHERE id = ?""",
                (
                    retry_after,
                    now,
                    cost,
                    now,
                    job.next_check_at if _woken(claimed, job) else retry_at,
                    now,
                    job_id,
                ),
            )
            if notice is not None:
                notifications.enqueue(conn, job_id, notice, routes, now=now, detail=error)
            return fetch_job(conn, job_id)

        return await self._writer.run(op)

    async def defer_checks(self, job_ids: Sequence[int], until: float) -> None:
        """Release leases without a call, due again at `until`: the vendor's budget is spent
        until then, so a callback meanwhile is confirmed then too."""
        now = self.clock()

        def op(conn: sqlite3.Connection) -> None:
            # A job that ended meanwhile (another holder's answer) is not checked again.
            conn.executemany(
                f"""UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL, updated_at = ?,
                       next_check_at = {NEXT_CHECK_IF_OPEN}
                   WHERE id = ?""",  # noqa: S608 (a constant)
                [(now, *next_check_if_open_params(until), job_id) for job_id in job_ids],
            )

        await self._writer.run(op)

    async def plan_first_check(self, job: JobRecord, at: float) -> None:
        """Release a just-submitted job's lease without a call, its first check planned for
        `at` (unless a callback made it due since the claim, see `_woken`). Its
        `last_checked_at` becomes its creation, so it is not treated as fresh again."""
        now = self.clock()

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                """UPDATE jobs SET
                       next_check_at = CASE WHEN next_check_at IS ? THEN ? ELSE next_check_at END,
                       lease_owner = NULL, lease_expires_at = NULL, updated_at = ?,
                       last_checked_at = created_at
                   WHERE id = ?""",
                (job.next_check_at, at, now, job.id),
            )

        await self._writer.run(op)

    async def end_job(
        self, job_id: int, state: JobState, reason: str, *, vendor_calls: float = 0.0
    ) -> JobRecord:
        """Close a job the vendor cannot tell us about any more (expired, lost, refused);
        `vendor_calls` are those the finding cost."""
        now = self.clock()
        routes = self.notify_routes

        def op(conn: sqlite3.Connection) -> JobRecord:
            job = fetch_job(conn, job_id)
            if job.state.is_terminal:
                return job
            append_event(
                conn,
                job_id,
                "job.state_changed",
                EventSource.SYSTEM,
                {"from": job.state, "to": state, "reason": reason},
                now=now,
            )
            paused_at, paused_seconds = job.pauses_after(state, now)
            conn.execute(
                """UPDATE jobs SET state = ?, error = ?, finished_at = ?, next_check_at = NULL,
                       lease_owner = NULL, lease_expires_at = NULL, updated_at = ?,
                       vendor_calls = vendor_calls + ?, paused_at = ?, paused_seconds = ?,
                       last_checked_at = CASE WHEN ? > 0 THEN ? ELSE last_checked_at END
                   WHERE id = ?""",
                (
                    state.value,
                    reason,
                    now,
                    now,
                    vendor_calls,
                    paused_at,
                    paused_seconds,
                    vendor_calls,
                    now,
                    job_id,
                ),
            )
            fetches.settle_unfetched(conn, job_id, now)
            # Once the job's row holds its end and the calls it cost: the messages report it.
            notifications.on_state_change(
                conn, job_id, state, routes, results_coming=False, now=now
            )
            return fetch_job(conn, job_id)

        return await self._writer.run(op)

    async def record_action(
        self,
        job_id: int,
        event_type: str,
        payload: dict[str, object],
        *,
        vendor_calls: int,
        reopen: bool = False,
    ) -> JobRecord:
        """An operator's action (a check, resume, reprocess): the job is due for a check now.
        `reopen` (a reprocess, a resumed failed run) returns a finished job to running as a
        new run and drops its results, which the vendor will produce anew. An expired job
        comes back to running with its results kept: enrichwatch gave up asking, not the
        vendor, and a person asking again gives it a new maximum age from now."""
        now = self.clock()

        def op(conn: sqlite3.Connection) -> JobRecord:
            before = fetch_job(conn, job_id)
            append_event(conn, job_id, event_type, EventSource.API, payload, now=now)
            action = event_type.removeprefix("job.").removesuffix("_requested")
            if reopen or before.state is JobState.EXPIRED:
                if before.state is not JobState.RUNNING:
                    change = {"from": before.state, "to": JobState.RUNNING, "reason": action}
                    append_event(
                        conn, job_id, "job.state_changed", EventSource.API, change, now=now
                    )
                conn.execute(
                    """UPDATE jobs SET state = 'running', finished_at = NULL, error = NULL,
                           run_started_at = ?, paused_at = NULL, paused_seconds = 0
                       WHERE id = ?""",
                    (now, job_id),
                )
            if reopen:
                conn.execute("DELETE FROM results WHERE job_id = ?", (job_id,))
                conn.execute(
                    "UPDATE jobs SET results_state = NULL, results_count = 0 WHERE id = ?",
                    (job_id,),
                )
                # A fetch of the earlier run, waiting or under way, ends here: its pages and
                # its end must not land in the new run (see `store_results`, `finish_fetch`).
                fetches.end_fetches(conn, job_id, "superseded by a reprocess", now)
            _due_now(conn, job_id, now, vendor_calls=vendor_calls)
            return fetch_job(conn, job_id)

        return await self._writer.run(op)

    async def request_vendor_checks(self, vendor: VendorName) -> list[JobRecord]:
        """An operator asks the vendor about every open job of ours there now: once a refused
        key is mended at the vendor, say, rather than when each job's next check comes."""
        now = self.clock()
        placeholders = ",".join("?" * len(OPEN_STATES))

        def op(conn: sqlite3.Connection) -> list[JobRecord]:
            rows = conn.execute(
                f"""SELECT id FROM jobs WHERE vendor = ? AND state IN ({placeholders})
                      AND vendor_job_id IS NOT NULL ORDER BY id""",  # noqa: S608
                (vendor.value, *OPEN_STATES),
            ).fetchall()
            jobs = []
            for (job_id,) in rows:
                payload = {"scope": "vendor"}
                append_event(conn, job_id, "job.check_requested", EventSource.API, payload, now=now)
                _due_now(conn, job_id, now, vendor_calls=0)
                jobs.append(fetch_job(conn, job_id))
            return jobs

        return await self._writer.run(op)

    async def claim_job(self, job_id: int, *, owner: str, lease_s: float) -> JobRecord | None:
        """Lease one open job for an immediate check; None if it is finished or leased. As
        with `claim_due_jobs`, it is due again when the lease ends."""
        now = self.clock()
        placeholders = ",".join("?" * len(OPEN_STATES))

        def op(conn: sqlite3.Connection) -> JobRecord | None:
            row = conn.execute(
                f"""UPDATE jobs SET lease_owner = ?, lease_expires_at = ?, next_check_at = ?
                    WHERE id = ? AND state IN ({placeholders}) AND vendor_job_id IS NOT NULL
                      AND (lease_expires_at IS NULL OR lease_expires_at <= ?)
                    RETURNING *""",  # noqa: S608 (placeholders only)
                (owner, now + lease_s, now + lease_s, job_id, *OPEN_STATES, now),
            ).fetchone()
            return None if row is None else JobRecord.from_row(row)

        return await self._writer.run(op)


def _due_now(conn: sqlite3.Connection, job_id: int, now: float, *, vendor_calls: int) -> None:
    """Due for a check now, at an operator's word: even a job sent moments ago is no longer
    fresh (see `plan_first_check`), so its check makes the call. A finished job is never
    checked again, so it gets no next check."""
    conn.execute(
        f"""UPDATE jobs SET vendor_calls = vendor_calls + ?, updated_at = ?,
               next_check_at = {NEXT_CHECK_IF_OPEN},
               last_checked_at = COALESCE(last_checked_at, created_at)
           WHERE id = ?""",  # noqa: S608 (a constant)
        (vendor_calls, now, *next_check_if_open_params(now), job_id),
    )


def _record_stale_answer(
    conn: sqlite3.Connection, job: JobRecord, outcome: CheckOutcome, now: float
) -> JobRecord:
    """The job was reprocessed while the call was out, so the answer is about the run before:
    its cost is counted and nothing else is taken from it. The reprocess left the job due."""
    append_event(
        conn,
        job.id,
        "vendor.polled",
        EventSource.POLL,
        {
            "cost": outcome.cost,
            "vendor_status": outcome.snapshot.vendor_status,
            "state": outcome.snapshot.state,
            "stale": "answered for the run before a reprocess",
        },
        now=now,
    )
    conn.execute(
        """UPDATE jobs SET vendor_calls = vendor_calls + ?, last_checked_at = ?,
               lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
           WHERE id = ?""",
        (outcome.cost, now, now, job.id),
    )
    return fetch_job(conn, job.id)
