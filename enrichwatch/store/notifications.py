"""Notifications as rows of the `work` outbox (kind `notify`).

A row is created in the transaction of the event that causes it (results stored, job failed,
paused, expired, fetch failed, callback late), once per (job, outcome, channel): its unique key
is exactly that triple and creation is INSERT … ON CONFLICT DO NOTHING, so a duplicate callback,
a second check, a replay or a restart never makes a second message, and a sent one is never
made pending again. The `work` table already gives leases, attempts, backoff times and a dead
state, so a separate table would only duplicate them; what is particular to notifications is
here: which channels a job notifies, the events a delivery appends, listing and manual retry.

Targets (webhook URLs, addresses) are not copied into the row: a Slack URL is a secret, and
the row names only its channel, resolved when it is sent from the job's own targets or the
settings. What the message reports of the job (its state, counts, results stored, vendor calls)
is copied, as it stands when the outcome happens: a message sent late, or sent again, tells the
same as one sent at once, not what a later fetch, check or reprocess made of the job."""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from enrichwatch import jsontext
from enrichwatch.errors import StoreError
from enrichwatch.models import OPEN_STATES, EventSource, JobState
from enrichwatch.store import work
from enrichwatch.store.records import JobRecord, Record, WorkItem
from enrichwatch.store.rows import append_event, fetch_job
from enrichwatch.store.writer import Writer

NOTIFY_WORK = "notify"
CHANNELS = ("slack", "email", "webhook", "console")


class Outcome(StrEnum):
    """What a notification tells; one message per job, outcome and channel."""

    COMPLETED = "completed"
    PARTIAL = "partial"  # results stored while the job is paused
    FAILED = "failed"
    NEEDS_ACTION = "needs_action"
    FETCH_FAILED = "fetch_failed"
    EXPIRED = "expired"
    WEBHOOK_LATE = "webhook_late"
    CHECKS_REFUSED = "checks_refused"  # the vendor refuses our checks until someone acts
    CHECKS_FAILING = "checks_failing"  # the vendor has not answered for longer than the safety net


CHECK_TROUBLE = frozenset({Outcome.CHECKS_REFUSED, Outcome.CHECKS_FAILING})
"""Outcomes about the vendor's account or API more than the job: every open job there meets
them at once. Each is news once per run of failed checks (not once per run of the job), and
people are told once for all the vendor's jobs (see `_covered`); a system listening on the
webhook gets every job's event, to act on each."""
PEOPLE = frozenset({"slack", "email", "console"})
_OPEN = f"state IN ({','.join('?' * len(OPEN_STATES))})"


class JobTargets(BaseModel):
    """A job's own notification targets; each one given replaces the configured channel."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    slack: str | None = None
    email: list[str] | None = None
    webhook: str | None = None

    @property
    def channels(self) -> frozenset[str]:
        return frozenset(
            name for name in ("slack", "email", "webhook") if getattr(self, name) is not None
        )

    def is_empty(self) -> bool:
        return not self.channels

    def shown(self) -> dict[str, str | list[str]]:
        """The targets fit to show: addresses as they are, and of a URL only where it goes.
        A Slack webhook's path is its secret, and a webhook's may hold a token too."""
        shown: dict[str, str | list[str]] = {}
        if self.slack is not None:
            shown["slack"] = _where(self.slack)
        if self.email is not None:
            shown["email"] = list(self.email)
        if self.webhook is not None:
            shown["webhook"] = _where(self.webhook)
        return shown


def _where(url: str) -> str:
    """`https://host/…`: where a URL goes, without its path, query or credentials."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/…"


@dataclass(frozen=True)
class NotifyRoutes:
    """The configured channels every job notifies, and whether late callbacks notify; set on
    the store from the settings when services open (console only until then)."""

    channels: frozenset[str] = frozenset({"console"})
    late_webhooks: bool = False


class NotificationRecord(Record):
    id: int
    job_id: int
    outcome: Outcome
    channel: str
    state: str  # pending | sent | dead
    attempts: int
    next_attempt_at: float
    last_error: str | None
    webhook_id: str
    leased: bool
    created_at: float
    updated_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> NotificationRecord:
        payload = json.loads(row["payload"])
        return cls(
            id=row["id"],
            job_id=row["job_id"],
            outcome=payload["outcome"],
            channel=payload["channel"],
            state="sent" if row["state"] == "done" else row["state"],
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"],
            last_error=row["last_error"],
            webhook_id=payload["webhook_id"],
            leased=row["lease_owner"] is not None,
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    @classmethod
    def from_item(cls, item: WorkItem, *, leased: bool = True) -> NotificationRecord:
        assert item.job_id is not None
        return cls(
            id=item.id,
            job_id=item.job_id,
            outcome=item.payload["outcome"],
            channel=item.payload["channel"],
            state="sent" if item.state == "done" else item.state,
            attempts=item.attempts,
            next_attempt_at=item.next_attempt_at,
            last_error=item.last_error,
            webhook_id=item.payload["webhook_id"],
            leased=leased,
            created_at=item.payload["at"],
            updated_at=item.payload["at"],
        )


class NotificationStateError(StoreError):
    """The notification cannot be retried in its state (it was delivered)."""


class UnknownNotificationError(StoreError):
    def __init__(self, notification_id: int) -> None:
        super().__init__(f"no notification with id {notification_id}")
        self.notification_id = notification_id


# -- inside other writes' transactions ------------------------------------------------------


def write_job_targets(conn: sqlite3.Connection, job_id: int, targets: JobTargets | None) -> None:
    """Record a job's own targets, in the transaction that creates the job."""
    if targets is not None and not targets.is_empty():
        conn.execute(
            "UPDATE jobs SET notify = ? WHERE id = ?",
            (targets.model_dump_json(exclude_none=True), job_id),
        )


def job_targets(conn: sqlite3.Connection, job_id: int) -> JobTargets:
    row = conn.execute("SELECT notify FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None or row["notify"] is None:
        return JobTargets()
    return JobTargets.model_validate_json(row["notify"])


def enqueue(
    conn: sqlite3.Connection,
    job_id: int,
    outcome: Outcome,
    routes: NotifyRoutes,
    *,
    now: float,
    detail: str | None = None,
    results_state: str | None = None,
) -> int:
    """Create the outcome's rows, one per channel, unless they exist; returns how many were
    new. Runs inside the caller's transaction, beside the event that causes them, once the
    job's row holds what the message reports (see `told_job`). `detail` is what the message
    says went wrong, where the job's own fields do not say it; `results_state` what the
    transaction makes of the job's results, where it writes that only after.

    Once per outcome and channel for each run of the job: a reprocess (or a resumed failed
    run) starts a new one, whose end is news again. Check trouble is once per run of failed
    checks instead (see `CHECK_TROUBLE`).

    A fetch that fails for good ends the wait of a failure whose results it was fetching
    (see `on_state_change`): the failure is told then, before the fetch's own failure."""
    if outcome is Outcome.WEBHOOK_LATE and not routes.late_webhooks:
        return 0
    job = fetch_job(conn, job_id)
    created = 0
    if outcome is Outcome.FETCH_FAILED:
        results_state = "fetch_failed"
        if job.state is JobState.FAILED:
            created += _enqueue(conn, job, Outcome.FAILED, routes, now, None, results_state)
    return created + _enqueue(conn, job, outcome, routes, now, detail, results_state)


def _enqueue(
    conn: sqlite3.Connection,
    job: JobRecord,
    outcome: Outcome,
    routes: NotifyRoutes,
    now: float,
    detail: str | None,
    results_state: str | None,
) -> int:
    job_id = job.id
    targets = job_targets(conn, job_id)
    if outcome in CHECK_TROUBLE:
        assert job.failing_since is not None, "check trouble is told while checks fail"
        episode = _failing_run(job.failing_since)
    else:
        # The first run keeps the key it always had, so an upgrade never sends twice.
        episode = "" if job.run_started_at is None else f":run:{job.run_started_at!r}"
    facts = {name: getattr(job, name) for name in TOLD_FACTS}
    if results_state is not None:
        facts["results_state"] = results_state
    created = 0
    for channel in sorted(routes.channels | targets.channels):
        key = _unique_key(job_id, outcome, channel, episode)
        if (
            outcome in CHECK_TROUBLE
            and channel in PEOPLE
            and _covered(conn, job, outcome, channel, targets, key, now)
        ):
            continue
        payload: dict[str, Any] = {
            "outcome": outcome.value,
            "channel": channel,
            "at": now,
            # The Standard Webhooks idempotency key: fixed now, the same on every retry.
            "webhook_id": "msg_" + secrets.token_urlsafe(18),
            "job": facts,
        }
        if detail is not None:
            payload["detail"] = detail
        if outcome in CHECK_TROUBLE:
            payload |= {"failing_since": job.failing_since, "others": _open_jobs_besides(conn, job)}
        created += conn.execute(
            """INSERT INTO work (kind, job_id, payload, next_attempt_at, unique_key,
                                 created_at, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (unique_key) DO NOTHING""",
            (
                NOTIFY_WORK,
                job_id,
                jsontext.dumps(payload),
                now,
                key,
                now,
                now,
            ),
        ).rowcount
    return created


TOLD_FACTS = (
    "state",
    "progress_done",
    "progress_failed",
    "progress_total",
    "results_count",
    "results_state",
    "vendor_calls",
    "finished_at",
)
"""What a message reports of the job that later events change: copied into its row when the
outcome happens (see `told_job`)."""


def told_job(job: JobRecord, payload: dict[str, Any]) -> JobRecord:
    """`job` as its notification found it when the outcome happened. A row made before the
    facts were copied into rows has none, and reports the job as it is."""
    facts = payload.get("job")
    if not facts:
        return job
    return JobRecord.model_validate(job.model_dump() | facts)


def _unique_key(job_id: int, outcome: Outcome, channel: str, episode: str) -> str:
    return f"{NOTIFY_WORK}:{job_id}:{outcome.value}:{channel}{episode}"


def _failing_run(failing_since: float) -> str:
    return f":failing:{failing_since!r}"


def _covered(
    conn: sqlite3.Connection,
    job: JobRecord,
    outcome: Outcome,
    channel: str,
    targets: JobTargets,
    key: str,
    now: float,
) -> bool:
    """Whether another open job of the vendor, whose checks are failing now, told the same
    `channel` target of `outcome` in its own run of failures: its message is the one these
    people need, so this job's would repeat it. If so, the job's log says which job, once
    per run of failures (under `key`).

    Every failed check of the run asks again, so the job that covered the last one is asked
    about first, and the others are read only if it no longer does."""
    covered_before = conn.execute(
        "SELECT json_extract(payload, '$.by_job') FROM events WHERE job_id = ? AND dedupe_key = ?",
        (job.id, key),
    ).fetchone()
    rows = conn.execute(
        f"""SELECT id, notify, failing_since FROM jobs
             WHERE vendor = ? AND id != ? AND failing_since IS NOT NULL AND {_OPEN}
             ORDER BY id IS ? DESC""",  # noqa: S608
        (job.vendor.value, job.id, *OPEN_STATES, covered_before and covered_before[0]),
    )
    mine = getattr(targets, channel, None)
    for row in rows:
        theirs = JobTargets.model_validate_json(row["notify"]) if row["notify"] else JobTargets()
        if getattr(theirs, channel, None) != mine:
            continue
        told = _unique_key(row["id"], outcome, channel, _failing_run(row["failing_since"]))
        if conn.execute("SELECT 1 FROM work WHERE unique_key = ?", (told,)).fetchone():
            payload = {"outcome": outcome.value, "channel": channel, "by_job": row["id"]}
            append_event(
                conn,
                job.id,
                "notification.covered",
                EventSource.SYSTEM,
                payload,
                now=now,
                dedupe_key=key,
            )
            return True
    return False


def _open_jobs_besides(conn: sqlite3.Connection, job: JobRecord) -> int:
    """How many other open jobs the vendor has: the trouble is theirs too."""
    (count,) = conn.execute(
        f"SELECT count(*) FROM jobs WHERE vendor = ? AND id != ? AND {_OPEN}",  # noqa: S608
        (job.vendor.value, job.id, *OPEN_STATES),
    ).fetchone()
    return int(count)


# -- the store's own writes and reads ---------------------------------------------------------


class NotificationWrites:
    """Mixed into Store; the state is Store's."""

    _writer: Writer
    clock: Callable[[], float]
    notify_routes: NotifyRoutes = NotifyRoutes()

    async def claim_notifications(
        self, *, owner: str, lease_s: float, limit: int
    ) -> list[WorkItem]:
        now = self.clock()
        return await self._writer.run(
            lambda conn: work.claim(
                conn, kind=NOTIFY_WORK, owner=owner, now=now, lease_s=lease_s, limit=limit
            )
        )

    async def notification_sent(self, item: WorkItem, detail: dict[str, Any]) -> None:
        """The channel accepted the message: the row is done and the job's log says so."""
        now = self.clock()
        assert item.job_id is not None
        job_id = item.job_id

        def op(conn: sqlite3.Connection) -> None:
            work.finish(conn, item.id, now=now)
            append_event(
                conn,
                job_id,
                "notification.sent",
                EventSource.SYSTEM,
                {**_describe(item), **detail},
                now=now,
            )

        await self._writer.run(op)

    async def notification_failed(
        self, item: WorkItem, error: str, *, retry_at: float | None
    ) -> None:
        """A failed attempt: due again at `retry_at`, or dead-lettered (None) with its error."""
        now = self.clock()
        assert item.job_id is not None
        job_id = item.job_id

        def op(conn: sqlite3.Connection) -> None:
            if retry_at is None:
                conn.execute("UPDATE work SET last_error = ? WHERE id = ?", (error, item.id))
                work.finish(conn, item.id, now=now, state="dead")
            else:
                work.retry_later(conn, item.id, due_at=retry_at, error=error, now=now)
            append_event(
                conn,
                job_id,
                "notification.failed",
                EventSource.SYSTEM,
                {**_describe(item), "error": error, "dead": retry_at is None, "retry_at": retry_at},
                now=now,
            )

        await self._writer.run(op)

    async def retry_notification(self, notification_id: int) -> NotificationRecord:
        """Make a dead-lettered (or waiting) notification due now with fresh attempts; a
        delivered one, or one being sent, is refused."""
        now = self.clock()

        def op(conn: sqlite3.Connection) -> NotificationRecord:
            row = _notification_row(conn, notification_id)
            if row["state"] == "done":
                raise NotificationStateError(
                    f"notification {notification_id} was already delivered"
                )
            if row["lease_owner"] is not None and (row["lease_expires_at"] or 0) > now:
                raise NotificationStateError(
                    f"notification {notification_id} is being sent right now"
                )
            conn.execute(
                """UPDATE work SET state = 'pending', attempts = 0, next_attempt_at = ?,
                                   lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
                   WHERE id = ?""",
                (now, now, notification_id),
            )
            job = fetch_job(conn, row["job_id"])
            payload = json.loads(row["payload"])
            append_event(
                conn,
                job.id,
                "notification.retry_requested",
                EventSource.API,
                {"notification_id": notification_id, "channel": payload["channel"]},
                now=now,
            )
            return NotificationRecord.from_row(_notification_row(conn, notification_id))

        return await self._writer.run(op)

    async def list_notifications(
        self,
        *,
        state: str | None = None,
        job_id: int | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[NotificationRecord]:
        """Newest first; `state` is pending, sent or dead."""
        clauses, params = ["kind = ?"], list[object]([NOTIFY_WORK])
        if state is not None:
            clauses.append("state = ?")
            params.append(STATE_VALUES[state])
        if job_id is not None:
            clauses.append("job_id = ?")
            params.append(job_id)
        if before_id is not None:
            clauses.append("id < ?")
            params.append(before_id)
        sql = f"SELECT * FROM work WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT ?"  # noqa: S608
        rows = await self._fetchall(sql, (*params, limit))
        return [NotificationRecord.from_row(row) for row in rows]

    async def job_targets(self, job_id: int) -> JobTargets:
        """The job's own notification targets (empty when it uses the configured ones)."""
        rows = await self._fetchall("SELECT notify FROM jobs WHERE id = ?", (job_id,))
        if not rows or rows[0]["notify"] is None:
            return JobTargets()
        return JobTargets.model_validate_json(rows[0]["notify"])

    async def get_notification(self, notification_id: int) -> NotificationRecord:
        rows = await self._fetchall(
            "SELECT * FROM work WHERE id = ? AND kind = ?", (notification_id, NOTIFY_WORK)
        )
        if not rows:
            raise UnknownNotificationError(notification_id)
        return NotificationRecord.from_row(rows[0])

    async def _fetchall(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        raise NotImplementedError  # Store's reader


STATE_VALUES = {"pending": "pending", "sent": "done", "dead": "dead"}


def _notification_row(conn: sqlite3.Connection, notification_id: int) -> sqlite3.Row:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM work WHERE id = ? AND kind = ?", (notification_id, NOTIFY_WORK)
    ).fetchone()
    if row is None:
        raise UnknownNotificationError(notification_id)
    return row


def _describe(item: WorkItem) -> dict[str, Any]:
    return {
        "notification_id": item.id,
        "channel": item.payload["channel"],
        "outcome": item.payload["outcome"],
        "attempt": item.attempts,
    }


def on_state_change(
    conn: sqlite3.Connection,
    job_id: int,
    state: JobState,
    routes: NotifyRoutes,
    *,
    results_coming: bool,
    now: float,
) -> None:
    """The notifications a job's new state causes. An end whose results are being fetched
    (a completed job's, or the records a failed one finished) is told of once the fetch
    ends, so that the message says what is stored: a completed job once they are stored
    (`on_results_stored`), a failed one then or once the fetch fails for good (`enqueue`)."""
    outcome = {
        JobState.FAILED: None if results_coming else Outcome.FAILED,
        JobState.EXPIRED: Outcome.EXPIRED,
        JobState.NEEDS_ACTION: Outcome.NEEDS_ACTION,
        JobState.COMPLETED: None if results_coming else Outcome.COMPLETED,
    }.get(state)
    if outcome is not None:
        enqueue(conn, job_id, outcome, routes, now=now)


def on_results_stored(
    conn: sqlite3.Connection, job_id: int, state: JobState, routes: NotifyRoutes, *, now: float
) -> None:
    """Results are in: the whole set of a completed job, the records a failed one finished,
    or a paused job's partial set. Called before the job's row says they are stored."""
    outcome = {
        JobState.COMPLETED: Outcome.COMPLETED,
        JobState.FAILED: Outcome.FAILED,
        JobState.NEEDS_ACTION: Outcome.PARTIAL,
    }
    if state in outcome:
        enqueue(conn, job_id, outcome[state], routes, now=now, results_state="stored")
