"""Writes for fetching a job's results: a fetch is a work item, begun by the check that finds
results to take and ended by the first of storing them all, failing for good, or a later
state (or a reprocess) superseding it. Each write checks that its fetch is still the job's,
so a superseded fetch stops at its next page instead of mixing two runs' results."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence

from enrichwatch.errors import FetchSupersededError, ResultsStateError
from enrichwatch.models import EventSource, JobState
from enrichwatch.store import notifications, work
from enrichwatch.store.notifications import NotifyRoutes, Outcome
from enrichwatch.store.records import JobRecord
from enrichwatch.store.rows import append_event, fetch_job
from enrichwatch.store.writer import Writer
from enrichwatch.vendors.base import ResultRecord, StatusSnapshot

FETCH_WORK = "fetch"


def begin_fetch(
    conn: sqlite3.Connection, job_id: int, snapshot: StatusSnapshot, *, polled: int, now: float
) -> None:
    """Queue a fetch of the results `snapshot` announces, found by the check whose event is
    `polled`. A fetch of an earlier state (a pause's partial set) ends here: this one stores
    the rest, and its end speaks for the job as it is now."""
    end_fetches(conn, job_id, "superseded by the fetch of a later state", now)
    work.enqueue(
        conn,
        kind=FETCH_WORK,
        job_id=job_id,
        # The fetch starts from this answer (its links, inline results) rather than paying
        # for another status call.
        payload={"snapshot": snapshot.model_dump(mode="json")},
        unique_key=f"{FETCH_WORK}:{job_id}:{polled}",
        due_at=now,
        now=now,
    )


def end_fetches(conn: sqlite3.Connection, job_id: int, reason: str, now: float) -> None:
    """End the job's pending fetches, waiting or under way: each stops at its next write
    (`_still_pending`). The pages it stored stay unless the caller drops them."""
    conn.execute(
        """UPDATE work SET state = 'done', last_error = ?, lease_owner = NULL,
               lease_expires_at = NULL, updated_at = ?
           WHERE job_id = ? AND kind = ? AND state = 'pending'""",
        (reason, now, job_id, FETCH_WORK),
    )


def settle_unfetched(conn: sqlite3.Connection, job_id: int, now: float) -> None:
    """Results are pending on a finished job only while a fetch is queued for them: no later
    state will bring one. A withdrawn fetch (a pause's partial set, gone once the job ran
    again) leaves them pending on the next state; if that state is the last and brings no
    results, what is stored is all there will be: recorded as stored (a partial set), or
    none at all."""
    job = fetch_job(conn, job_id)
    if not job.state.is_terminal or job.results_state != "pending":
        return
    queued = conn.execute(
        "SELECT 1 FROM work WHERE job_id = ? AND kind = ? AND state = 'pending'",
        (job_id, FETCH_WORK),
    ).fetchone()
    if queued is not None:
        return
    settled = "stored" if job.results_count else None
    if settled:
        append_event(
            conn,
            job_id,
            "results.stored",
            EventSource.SYSTEM,
            {"count": job.results_count, "partial": True},
            now=now,
        )
    conn.execute("UPDATE jobs SET results_state = ? WHERE id = ?", (settled, job_id))


class FetchWrites:
    """Mixed into Store; the state is Store's."""

    _writer: Writer
    clock: Callable[[], float]
    notify_routes: NotifyRoutes

    async def start_fetch(self, job_id: int, *, item_id: int) -> int:
        """Mark the results as being fetched by `item_id`; returns the position to resume
        from (FetchSupersededError if a reprocess ended the fetch)."""
        now = self.clock()

        def op(conn: sqlite3.Connection) -> int:
            _still_pending(conn, job_id, item_id)
            conn.execute(
                "UPDATE jobs SET results_state = 'fetching', updated_at = ? WHERE id = ?",
                (now, job_id),
            )
            row = conn.execute(
                "SELECT MAX(position) FROM results WHERE job_id = ?", (job_id,)
            ).fetchone()
            return 0 if row[0] is None else int(row[0]) + 1

        return await self._writer.run(op)

    async def store_results(
        self, job_id: int, records: Sequence[ResultRecord], *, item_id: int, lease_s: float
    ) -> int:
        """Insert a page of fetch `item_id`; positions already stored are skipped, so a retried
        page is harmless. Returns how many were new; raises FetchSupersededError if a reprocess
        ended the fetch. Each page renews the fetch's lease for `lease_s`: a download that
        keeps coming is alive however long it takes, and no other reconciler takes it up.

        The rows are built before the write is queued, so the write (which may run twice, see
        `Writer.run`) is SQLite alone; each record arrives as its JSON text, stored as is."""
        rows = [(job_id, r.position, r.input_id, r.status, r.data_json) for r in records]
        lease_until = self.clock() + lease_s

        def op(conn: sqlite3.Connection) -> int:
            _still_pending(conn, job_id, item_id)
            conn.execute(
                "UPDATE work SET lease_expires_at = ? WHERE id = ?", (lease_until, item_id)
            )
            cursor = conn.executemany(
                """INSERT INTO results (job_id, position, input_id, status, data)
                   VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING""",
                rows,
            )
            conn.execute(
                "UPDATE jobs SET results_count = results_count + ? WHERE id = ?",
                (cursor.rowcount, job_id),
            )
            return cursor.rowcount

        return await self._writer.run(op)

    async def charge_calls(self, job_id: int, calls: float) -> None:
        """Add vendor calls made for a job outside a status check (fetching its results)."""
        if calls:
            await self._writer.run(
                lambda conn: conn.execute(
                    "UPDATE jobs SET vendor_calls = vendor_calls + ? WHERE id = ?", (calls, job_id)
                )
            )

    async def finish_fetch(self, job_id: int, item_id: int) -> JobRecord:
        """Mark the results stored, unless a reprocess ended this fetch (FetchSupersededError:
        the job is left to the fetch of its new run). An earlier fetch's failure (a paused
        job's partial set) set the job's error; these results replace what it failed to
        get, so that error goes, and any other (the vendor's own) stays."""
        now = self.clock()
        routes = self.notify_routes

        def op(conn: sqlite3.Connection) -> JobRecord:
            _still_pending(conn, job_id, item_id)
            job = fetch_job(conn, job_id)
            append_event(
                conn,
                job_id,
                "results.stored",
                EventSource.SYSTEM,
                {"count": job.results_count, "partial": job.state is not JobState.COMPLETED},
                now=now,
            )
            notifications.on_results_stored(conn, job_id, job.state, routes, now=now)
            failure = conn.execute(
                """SELECT json_extract(payload, '$.error') FROM events
                    WHERE job_id = ? AND type = 'results.fetch_failed'
                    ORDER BY seq DESC LIMIT 1""",
                (job_id,),
            ).fetchone()
            conn.execute(
                """UPDATE jobs SET results_state = 'stored', updated_at = ?,
                       error = CASE WHEN error = ? THEN NULL ELSE error END
                   WHERE id = ?""",
                (now, None if failure is None else failure[0], job_id),
            )
            work.finish(conn, item_id, now=now)
            return fetch_job(conn, job_id)

        return await self._writer.run(op)

    async def retry_fetch(self, item_id: int, job_id: int, *, due_at: float, error: str) -> None:
        """Try the fetch again at `due_at`, unless a reprocess or a later state ended it
        (FetchSupersededError): its failure is no news about the job's results then."""
        now = self.clock()

        def op(conn: sqlite3.Connection) -> None:
            _still_pending(conn, job_id, item_id)
            append_event(
                conn, job_id, "results.fetch_retry", EventSource.SYSTEM, {"error": error}, now=now
            )
            work.retry_later(conn, item_id, due_at=due_at, error=error, now=now)

        await self._writer.run(op)

    async def fail_fetch(self, item_id: int, job_id: int, error: str) -> JobRecord:
        now = self.clock()
        routes = self.notify_routes

        def op(conn: sqlite3.Connection) -> JobRecord:
            _still_pending(conn, job_id, item_id)
            append_event(
                conn, job_id, "results.fetch_failed", EventSource.SYSTEM, {"error": error}, now=now
            )
            notifications.enqueue(conn, job_id, Outcome.FETCH_FAILED, routes, now=now)
            conn.execute(
                "UPDATE jobs SET results_state = 'fetch_failed', error = ?, updated_at = ? "
                "WHERE id = ?",
                (error, now, job_id),
            )
            work.finish(conn, item_id, now=now, state="dead")
            return fetch_job(conn, job_id)

        return await self._writer.run(op)

    async def withdraw_fetch(self, item_id: int, job_id: int, reason: str) -> JobRecord:
        """End a fetch of results the vendor no longer serves as they were (a paused job's
        partial set, once the job runs again). It is no failure: the job's next state brings
        a fetch of its own, so the results are pending again, and the job is due now so that
        its check learns the state that will (unless it has ended: `settle_unfetched`)."""
        now = self.clock()

        def op(conn: sqlite3.Connection) -> JobRecord:
            _still_pending(conn, job_id, item_id)
            append_event(
                conn,
                job_id,
                "results.fetch_withdrawn",
                EventSource.SYSTEM,
                {"reason": reason},
                now=now,
            )
            conn.execute(
                """UPDATE jobs SET results_state = 'pending', updated_at = ?,
                       next_check_at = CASE WHEN next_check_at IS NULL THEN NULL
                                            ELSE MIN(next_check_at, ?) END
                   WHERE id = ?""",
                (now, now, job_id),
            )
            work.finish(conn, item_id, now=now)
            settle_unfetched(conn, job_id, now)
            return fetch_job(conn, job_id)

        return await self._writer.run(op)

    async def refetch(self, job_id: int) -> JobRecord:
        """Fetch the results again after the fetch failed for good (its tries spent on an
        outage, say), while the vendor still serves them: a new fetch of the answer the last
        one had, resuming at the first position not stored (expired links are renewed as
        ever). Refused (ResultsStateError) unless the results are `fetch_failed`."""
        now = self.clock()

        def op(conn: sqlite3.Connection) -> JobRecord:
            job = fetch_job(conn, job_id)
            if job.results_state != "fetch_failed":
                raise ResultsStateError(
                    f"job {job_id}'s results are {job.results_state or 'none'}: only a "
                    "fetch that failed is fetched again"
                )
            (answer,) = conn.execute(
                "SELECT payload FROM work WHERE job_id = ? AND kind = ? ORDER BY id DESC LIMIT 1",
                (job_id, FETCH_WORK),
            ).fetchone()
            requested = append_event(
                conn, job_id, "results.fetch_requested", EventSource.API, {}, now=now
            )
            work.enqueue(
                conn,
                kind=FETCH_WORK,
                job_id=job_id,
                payload=json.loads(answer),
                unique_key=f"{FETCH_WORK}:{job_id}:{requested}",
                due_at=now,
                now=now,
            )
            conn.execute(
                "UPDATE jobs SET results_state = 'pending', updated_at = ? WHERE id = ?",
                (now, job_id),
            )
            return fetch_job(conn, job_id)

        return await self._writer.run(op)


def _still_pending(conn: sqlite3.Connection, job_id: int, item_id: int) -> None:
    row = conn.execute("SELECT state FROM work WHERE id = ?", (item_id,)).fetchone()
    if row is None or row[0] != "pending":
        raise FetchSupersededError(job_id, item_id)
