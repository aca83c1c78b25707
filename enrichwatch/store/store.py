"""The store API that the receiver, the reconciler and the CLI all use.

Writes are small synchronous functions run by the single writer inside one transaction, so an
event and its change to the `jobs` projection always commit together. Reads use a separate
connection and never wait for the writer (WAL).
"""

from __future__ import annotations

import hmac
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from enrichwatch import jsontext
from enrichwatch.errors import AlreadyTrackedError, StoreError, UnknownJobError
from enrichwatch.models import OPEN_STATES, EventSource, JobState, VendorName
from enrichwatch.store import work
from enrichwatch.store.checks import DUE_JOB, CheckWrites, due_job_params
from enrichwatch.store.connection import BUSY_TIMEOUT_MS, as_store_error, latest_version
from enrichwatch.store.dashboard_reads import DashboardReads
from enrichwatch.store.fetches import FetchWrites
from enrichwatch.store.inspect_reads import InspectReads
from enrichwatch.store.notifications import (
    JobTargets,
    NotificationWrites,
    job_targets,
    write_job_targets,
)
from enrichwatch.store.records import EventRecord, InboxRecord, JobRecord, WorkItem
from enrichwatch.store.request_budget import RequestBudgetWrites
from enrichwatch.store.rows import append_event, insert_job, sha256_int64, token_digest
from enrichwatch.store.submissions import SubmissionWrites
from enrichwatch.store.writer import Writer

Clock = Callable[[], float]
_INSERT_INBOX = """INSERT INTO inbox (vendor, job_id, received_at, method, headers, content_type,
                                    body, verification, dedupe_key, dedupe_hash, duplicate_of)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
_API_TOKEN_KEY = "api_token_sha256"  # noqa: S105 (a meta key, not a secret)
_SERVICE_URL_KEY = "service_url"


@dataclass(frozen=True)
class InboundDelivery:
    """A vendor callback as it arrived, after signature checks."""

    method: str
    headers: dict[str, str]
    content_type: str | None
    body: bytes
    verification: str
    dedupe_key: str
    replay_of: int | None = None
    """Set when an operator replays a stored callback: the inbox id it repeats."""


@dataclass(frozen=True)
class DueWork:
    """What is due now and free to take: the vendors with jobs to check, the kinds of work
    items to run."""

    vendors: frozenset[VendorName]
    kinds: frozenset[str]


@dataclass(frozen=True)
class CallbackOutcome:
    job_id: int
    inbox_id: int
    duplicate: bool


@dataclass(frozen=True)
class OpenJobs:
    """A vendor's open jobs in one state (what `/metrics` reports of them)."""

    vendor: VendorName
    state: JobState
    count: int
    failing: int
    """Of them, those whose latest status check failed."""
    failing_since: float | None
    """When the oldest of those runs of failed checks began."""


class Store(
    SubmissionWrites,
    CheckWrites,
    FetchWrites,
    DashboardReads,
    NotificationWrites,
    InspectReads,
    RequestBudgetWrites,
):
    def __init__(self, path: Path, *, clock: Clock = time.time, upgrade: bool = True) -> None:
        """`upgrade`: migrate a file an older version wrote (the services do), or refuse it
        (a one-off command, see `connection.migrate`)."""
        self.path = path
        self.clock = clock
        self._writer = Writer(path, upgrade=upgrade)
        self._reader: aiosqlite.Connection | None = None

    @classmethod
    @asynccontextmanager
    async def open(cls, path: Path, *, clock: Clock = time.time) -> AsyncIterator[Store]:
        store = cls(path, clock=clock)
        await store.start()
        try:
            yield store
        finally:
            await store.close()

    async def start(self) -> list[int]:
        """Open the file and apply pending migrations; returns the migrations applied.

        A path that cannot hold the database is a StoreError naming it. Its directory must
        exist: one made here would be a mistyped path's, holding a new, empty database."""
        parent = self.path.parent
        if not parent.is_dir():
            what = "is not a directory" if parent.exists() else "does not exist"
            raise StoreError(f"cannot create the database {self.path}: {parent} {what}")
        try:
            applied = await self._writer.start()
        except BaseException:
            await self._writer.close()
            raise
        self._reader = await aiosqlite.connect(self.path)
        self._reader.row_factory = sqlite3.Row
        await self._reader.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        return applied

    async def close(self) -> None:
        await self._writer.close()
        if self._reader is not None:
            await self._reader.close()
            self._reader = None

    # -- writes -------------------------------------------------------------------------------

    async def track_job(
        self,
        vendor: VendorName,
        vendor_job_id: str,
        name: str | None,
        *,
        source: EventSource = EventSource.API,
        notify: JobTargets | None = None,
    ) -> tuple[JobRecord, bool]:
        """Start tracking a vendor job; tracking the same one again returns it unchanged.
        `notify`: the job's own notification targets, stored with it; asking for others than
        an already tracked job has is an AlreadyTrackedError (none asked for is no conflict).

        The job is due at once, so its first status check happens on the next reconcile.
        """
        now = self.clock()

        def op(conn: sqlite3.Connection) -> tuple[JobRecord, bool, JobTargets]:
            existing = conn.execute(
                "SELECT * FROM jobs WHERE vendor = ? AND vendor_job_id = ?",
                (vendor.value, vendor_job_id),
            ).fetchone()
            if existing is not None:
                record = JobRecord.from_row(existing)
                return record, False, job_targets(conn, record.id)
            job = insert_job(conn, vendor, vendor_job_id, name, now=now, due_at=now)
            job_id = job.id
            write_job_targets(conn, job_id, notify)
            append_event(
                conn,
                job_id,
                "job.tracked",
                source,
                {"vendor": vendor.value, "vendor_job_id": vendor_job_id, "name": name},
                now=now,
            )
            return job, True, notify or JobTargets()

        job, created, targets = await self._writer.run(op)
        if notify is not None and not notify.is_empty() and targets != notify:
            raise AlreadyTrackedError(job.id, vendor.value, vendor_job_id)
        return job, created

    async def record_callback(
        self,
        vendor: VendorName,
        token: str,
        delivery: InboundDelivery,
        *,
        vendor_sends_callbacks: bool,
    ) -> CallbackOutcome | None:
        """Store a callback and mark its job due, in one transaction; None if no job has that
        vendor and token (and then nothing is written).

        A repeat of a delivery already stored is kept and flagged, but wakes nothing. A job
        at a vendor that sends callbacks expects more of them from then on (it is no longer
        polled while it waits); at one that sends none, a stray request only makes it due.
        """
        now = self.clock()
        dedupe_hash = sha256_int64(delivery.dedupe_key)

        def op(conn: sqlite3.Connection) -> CallbackOutcome | None:
            # The job and, if this delivery was seen before, its first inbox row, in one query.
            row = conn.execute(
                """SELECT id, callback_token, state,
                          (SELECT inbox.id FROM inbox
                            WHERE inbox.job_id = jobs.id AND inbox.dedupe_hash = ?
                              AND inbox.dedupe_key = ? AND inbox.duplicate_of IS NULL
                            LIMIT 1) AS first_delivery
                     FROM jobs WHERE callback_key = ? AND vendor = ?""",
                (dedupe_hash, delivery.dedupe_key, token_digest(token), vendor.value),
            ).fetchone()
            if not _has_token(row, token):
                return None
            job_id, duplicate_of = row["id"], row["first_delivery"]
            inbox_row = (
                vendor.value,
                job_id,
                now,
                delivery.method,
                jsontext.dumps(delivery.headers),
                delivery.content_type,
                delivery.body,
                delivery.verification,
                delivery.dedupe_key,
                dedupe_hash,
                duplicate_of,
            )
            inbox_id = conn.execute(_INSERT_INBOX, inbox_row).lastrowid
            assert inbox_id is not None
            replay = {} if delivery.replay_of is None else {"replay_of": delivery.replay_of}
            if duplicate_of is not None:
                append_event(
                    conn,
                    job_id,
                    "webhook.duplicate",
                    EventSource.WEBHOOK,
                    {"inbox_id": inbox_id, "duplicate_of": duplicate_of} | replay,
                    now=now,
                )
            else:
                append_event(
                    conn,
                    job_id,
                    "webhook.received",
                    EventSource.WEBHOOK,
                    {
                        "inbox_id": inbox_id,
                        "verification": delivery.verification,
                        "content_type": delivery.content_type,
                        "bytes": len(delivery.body),
                    }
                    | replay,
                    now=now,
                )
                # A callback is only a hint: it makes the job due, it never sets its state.
                due = None if JobState(row["state"]).is_terminal else now
                conn.execute(
                    """UPDATE jobs SET callbacks_received = callbacks_received + 1,
                           next_check_at = COALESCE(?, next_check_at), updated_at = ?,
                           last_callback_at = ?, expects_callback = expects_callback OR ?
                       WHERE id = ?""",
                    (due, now, now, vendor_sends_callbacks, job_id),
                )
            return CallbackOutcome(job_id, inbox_id, duplicate_of is not None)

        return await self._writer.run(op)

    async def knows_callback_url(self, vendor: VendorName, token: str) -> bool:
        """Whether a job has this vendor and callback token: a callback refused before it
        is stored is told apart as one for no job (a guessed URL) or one that failed its
        checks (a wrong secret, a forgery)."""
        row = await self._fetchone(
            "SELECT callback_token FROM jobs WHERE callback_key = ? AND vendor = ?",
            (token_digest(token), vendor.value),
        )
        return _has_token(row, token)

    async def claim_work(
        self, kind: str, *, owner: str, lease_s: float, limit: int
    ) -> list[WorkItem]:
        """Lease up to `limit` due work items of `kind` (see `store.work.claim`)."""
        now = self.clock()
        return await self._writer.run(
            lambda conn: work.claim(
                conn, kind=kind, owner=owner, now=now, lease_s=lease_s, limit=limit
            )
        )

    async def postpone_work(self, item_id: int, *, due_at: float) -> None:
        """Release a claimed work item untried, due at `due_at` (see `store.work.postpone`)."""
        now = self.clock()
        await self._writer.run(lambda conn: work.postpone(conn, item_id, due_at=due_at, now=now))

    async def ensure_api_token(self, candidate: str) -> bool:
        """Store `candidate`'s hash as the API token unless one is stored; True if stored.

        Only the hash is kept, so the database never holds a usable token.
        """

        def op(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                (_API_TOKEN_KEY, token_digest(candidate)),
            )
            return cursor.rowcount == 1

        return await self._writer.run(op)

    async def record_service_url(self, url: str) -> None:
        """The base URL the receiver serving this file listens at, for the processes that
        share the file and have no public URL configured (see `Services.public_url`)."""
        await self._set_meta(_SERVICE_URL_KEY, url)

    async def service_url(self) -> str | None:
        return await self._meta(_SERVICE_URL_KEY)

    async def probe_writable(self) -> None:
        """Take the write lock and write one row; raises if the file cannot be written."""
        await self._set_meta("ready_probe", str(self.clock()))

    async def _set_meta(self, key: str, value: str) -> None:
        await self._writer.run(
            lambda conn: conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
        )

    async def _meta(self, key: str) -> str | None:
        row = await self._fetchone("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row["value"])

    # -- reads --------------------------------------------------------------------------------

    async def api_token_digest(self) -> str | None:
        return await self._meta(_API_TOKEN_KEY)

    async def schema_version(self) -> int:
        row = await self._fetchone("PRAGMA user_version", ())
        assert row is not None
        version: int = row[0]
        return version

    async def is_migrated(self) -> bool:
        return await self.schema_version() == latest_version()

    async def get_job(self, job_id: int) -> JobRecord:
        row = await self._fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if row is None:
            raise UnknownJobError(job_id)
        return JobRecord.from_row(row)

    async def list_jobs(
        self,
        *,
        vendor: VendorName | None = None,
        state: JobState | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[JobRecord]:
        """Newest first; pass the last id seen as `before_id` for the next page."""
        clauses, params = ["1 = 1"], []
        for column, value in (("vendor", vendor), ("state", state)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value.value)
        if before_id is not None:
            clauses.append("id < ?")
            params.append(str(before_id))
        rows = await self._fetchall(
            f"SELECT * FROM jobs WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT ?",  # noqa: S608
            (*params, limit),
        )
        return [JobRecord.from_row(row) for row in rows]

    async def list_events(
        self, job_id: int, *, after_seq: int = 0, limit: int = 500
    ) -> list[EventRecord]:
        await self.get_job(job_id)
        rows = await self._fetchall(
            "SELECT * FROM events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (job_id, after_seq, limit),
        )
        return [EventRecord.from_row(row) for row in rows]

    async def lease_holders(self) -> set[str]:
        """Everyone named on a lease of a job or of a pending work item, lapsed or not."""
        rows = await self._fetchall(
            """SELECT lease_owner FROM jobs WHERE lease_owner IS NOT NULL
               UNION
               SELECT lease_owner FROM work WHERE state = 'pending' AND lease_owner IS NOT NULL""",
            (),
        )
        return {row["lease_owner"] for row in rows}

    async def tracked(self, vendor: VendorName, vendor_job_ids: Collection[str]) -> set[str]:
        """Which of these of the vendor's jobs a job here tracks."""
        marks = ",".join("?" * len(vendor_job_ids))
        rows = await self._fetchall(
            f"SELECT vendor_job_id FROM jobs WHERE vendor = ? AND vendor_job_id IN ({marks})",  # noqa: S608
            (vendor.value, *vendor_job_ids),
        )
        return {row["vendor_job_id"] for row in rows}

    async def open_jobs(self) -> list[OpenJobs]:
        """Open jobs by vendor and state, with how many of them fail their checks."""
        rows = await self._fetchall(
            f"""SELECT vendor, state, count(*) AS jobs, count(failing_since) AS failing,
                       min(failing_since) AS failing_since
                  FROM jobs WHERE state IN ({",".join("?" * len(OPEN_STATES))})
                 GROUP BY vendor, state""",  # noqa: S608 (placeholders only)
            OPEN_STATES,
        )
        return [
            OpenJobs(
                VendorName(row["vendor"]),
                JobState(row["state"]),
                row["jobs"],
                row["failing"],
                row["failing_since"],
            )
            for row in rows
        ]

    async def unfinished_work(self) -> dict[tuple[str, str], int]:
        """Outbox rows (fetches, notifications, held-back submissions) waiting or
        dead-lettered, by (kind, state)."""
        rows = await self._fetchall(
            """SELECT kind, state, count(*) AS items FROM work
                WHERE state IN ('pending', 'dead') GROUP BY kind, state""",
            (),
        )
        return {(row["kind"], row["state"]): row["items"] for row in rows}

    async def known_job(self, vendor: VendorName, *, besides: int) -> JobRecord | None:
        """Another of the vendor's jobs that it has known under our key (sent by us, or
        answered for): open ones first, then those whose last check was answered, the most
        recently checked first. Expired ones are left out, as the vendor may have dropped
        them."""
        rows = await self._fetchall(
            """SELECT * FROM jobs
                WHERE vendor = ? AND id != ? AND vendor_job_id IS NOT NULL AND state != ?
                  AND (input_rows IS NOT NULL OR vendor_status IS NOT NULL)
                ORDER BY state IN (?, ?), check_failures > 0,
                         COALESCE(last_checked_at, created_at) DESC
                LIMIT 1""",
            (
                vendor.value,
                besides,
                JobState.EXPIRED.value,
                JobState.COMPLETED.value,
                JobState.FAILED.value,
            ),
        )
        return JobRecord.from_row(rows[0]) if rows else None

    async def sends_under_way(self) -> list[JobRecord]:
        """Parts reserved or sent whose submit has recorded no end (see `reserve_job` and
        `begin_send`): under way, or cut off by a stop."""
        rows = await self._fetchall("SELECT * FROM jobs WHERE send_owner IS NOT NULL", ())
        return [JobRecord.from_row(row) for row in rows]

    async def progress_samples(
        self, job: JobRecord, *, limit: int = 20
    ) -> list[tuple[float, int, int]]:
        """The job's latest progress counts in its current run (a reprocess counts anew) as
        (time, done, total), oldest first. Counts from before its latest pause ended are left
        out: the pause would read as a stretch of slow work."""
        since = job.run_start
        if job.paused_seconds:
            row = await self._fetchone(
                """SELECT MAX(created_at) FROM events
                    WHERE job_id = ? AND type = 'job.state_changed'
                      AND json_extract(payload, '$.from') = 'needs_action'""",
                (job.id,),
            )
            assert row is not None  # an aggregate always gives a row
            since = max(since, row[0] or since)
        rows = await self._fetchall(
            """SELECT created_at, payload FROM events
                WHERE job_id = ? AND type = 'job.progressed' AND created_at >= ?
                ORDER BY seq DESC LIMIT ?""",
            (job.id, since, limit),
        )
        samples = []
        for row in reversed(rows):
            payload = json.loads(row["payload"])
            if payload.get("done") is not None and payload.get("total"):
                samples.append((row["created_at"], payload["done"], payload["total"]))
        return samples

    async def durations(
        self, vendor: VendorName, limit: int = 500
    ) -> list[tuple[int | None, float]]:
        """(size, seconds from the start of its latest run to completion, less its pauses) of
        the vendor's latest completed jobs: a reprocessed job's run starts at the reprocess."""
        rows = await self._fetchall(
            """SELECT COALESCE(progress_total, input_rows) AS size,
                      finished_at - COALESCE(run_started_at, created_at) - paused_seconds
                          AS duration
                 FROM jobs WHERE vendor = ? AND state = 'completed' AND finished_at IS NOT NULL
                ORDER BY finished_at DESC LIMIT ?""",
            (vendor.value, limit),
        )
        return [(row["size"], row["duration"]) for row in rows]

    async def results(
        self, job_id: int, *, after: int = -1, limit: int = 1000
    ) -> list[sqlite3.Row]:
        """A page of stored results, by position."""
        return await self._fetchall(
            """SELECT position, input_id, status, data FROM results
                WHERE job_id = ? AND position > ? ORDER BY position LIMIT ?""",
            (job_id, after, limit),
        )

    async def due_work(self) -> DueWork:
        """What a reconciler's passes would take now, looked up the way they claim it (the
        `jobs_due` and `work_due` indexes), without taking it."""
        now = self.clock()
        vendors = await self._fetchall(
            f"SELECT DISTINCT vendor FROM jobs WHERE {DUE_JOB}",  # noqa: S608 (a constant)
            due_job_params(now),
        )
        kinds = await self._fetchall(
            f"SELECT DISTINCT kind FROM work WHERE {work.DUE_ITEM}",  # noqa: S608 (a constant)
            work.due_item_params(now),
        )
        return DueWork(
            frozenset(VendorName(row["vendor"]) for row in vendors),
            frozenset(str(row["kind"]) for row in kinds),
        )

    async def list_inbox(self, job_id: int) -> list[InboxRecord]:
        rows = await self._fetchall("SELECT * FROM inbox WHERE job_id = ? ORDER BY id", (job_id,))
        return [InboxRecord.from_row(row) for row in rows]

    async def _fetchone(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Row | None:
        assert self._reader is not None, "store is not open"
        try:
            async with self._reader.execute(sql, params) as cursor:
                row: sqlite3.Row | None = await cursor.fetchone()
                return row
        except sqlite3.Error as exc:
            raise as_store_error(exc, "read") from exc

    async def _fetchall(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        assert self._reader is not None, "store is not open"
        try:
            async with self._reader.execute(sql, params) as cursor:
                return list(await cursor.fetchall())
        except sqlite3.Error as exc:
            raise as_store_error(exc, "read") from exc


def _has_token(row: sqlite3.Row | None, token: str) -> bool:
    """Whether the job found by the token's digest really has this token, compared in
    constant time (a digest match alone is not proof)."""
    return row is not None and hmac.compare_digest(row["callback_token"].encode(), token.encode())
