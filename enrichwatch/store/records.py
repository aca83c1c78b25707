"""Rows of the event log as typed, read-only records."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from pydantic import BaseModel, ConfigDict

from enrichwatch.models import EventSource, JobState, VendorName


class Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class JobRecord(Record):
    id: int
    vendor: VendorName
    vendor_job_id: str | None
    name: str | None
    state: JobState
    vendor_status: str | None
    error: str | None
    progress_done: int | None
    progress_failed: int | None
    progress_total: int | None
    callback_token: str
    next_check_at: float | None
    vendor_calls: float
    callbacks_received: int
    expects_callback: bool
    last_callback_at: float | None
    late_webhook_at: float | None
    check_failures: int
    failing_since: float | None
    """When the current run of failed status checks began; None while checks succeed."""
    retry_after: float | None
    input_rows: int | None
    results_state: str | None
    results_count: int
    created_at: float
    updated_at: float
    last_checked_at: float | None
    finished_at: float | None
    run_started_at: float | None
    """When the latest reprocess began the vendor's current run; None: the submission did."""
    paused_at: float | None
    """When the job was found paused, waiting on a person; None while it is not paused."""
    paused_seconds: float
    """How long the current run's ended pauses lasted: no part of its age or duration."""
    send_started_at: float | None
    """A submit call under way since then, or cut off by a stop (see `Store.begin_send`)."""
    send_owner: str | None
    """The lease holder of the process making that call, or of the one that reserved the part
    and has not yet sent or queued it (see `Store.reserve_job`)."""
    send_vendor_job_id: str | None
    """The vendor's id for the job that call makes, known before the call is done (see
    `Store.record_send_created`)."""

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> JobRecord:
        return cls.model_validate({key: row[key] for key in cls.model_fields})

    @property
    def run_start(self) -> float:
        """When the vendor's current run of the job began (its age counts from here)."""
        return self.created_at if self.run_started_at is None else self.run_started_at

    @property
    def age_start(self) -> float:
        """Where the current run's age counts from: its start, moved on by its ended pauses."""
        return self.run_start + self.paused_seconds

    def pauses_after(self, state: JobState, now: float) -> tuple[float | None, float]:
        """(`paused_at`, `paused_seconds`) once the job is in `state` at `now`: a pause
        begins when the job is found needing action, and ends when it is found otherwise."""
        if state is JobState.NEEDS_ACTION:
            return (now if self.paused_at is None else self.paused_at), self.paused_seconds
        if self.paused_at is None:
            return None, self.paused_seconds
        return None, self.paused_seconds + max(now - self.paused_at, 0.0)

    def callback_url(self, public_url: str) -> str:
        """The URL to register with the vendor for this job's callbacks."""
        return f"{public_url}/hooks/{self.vendor.value}/{self.callback_token}"


class EventRecord(Record):
    seq: int
    job_id: int
    type: str
    source: EventSource
    payload: dict[str, Any]
    created_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> EventRecord:
        return cls(
            seq=row["seq"],
            job_id=row["job_id"],
            type=row["type"],
            source=row["source"],
            payload=json.loads(row["payload"]),
            created_at=row["created_at"],
        )


class InboxRecord(Record):
    id: int
    vendor: VendorName
    job_id: int
    received_at: float
    method: str
    headers: dict[str, str]
    content_type: str | None
    body: bytes
    verification: str
    dedupe_key: str
    duplicate_of: int | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> InboxRecord:
        values = {key: row[key] for key in cls.model_fields}
        values["headers"] = json.loads(row["headers"])
        return cls.model_validate(values)


class WorkItem(Record):
    id: int
    kind: str
    job_id: int | None
    payload: dict[str, Any]
    state: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    unique_key: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> WorkItem:
        values = {key: row[key] for key in cls.model_fields}
        values["payload"] = json.loads(row["payload"])
        return cls.model_validate(values)
