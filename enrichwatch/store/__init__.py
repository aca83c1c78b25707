"""The SQLite event log: jobs, events, inbox, work and results in one file."""

from __future__ import annotations

from enrichwatch.store.checks import CheckOutcome
from enrichwatch.store.records import EventRecord, InboxRecord, JobRecord, WorkItem
from enrichwatch.store.rows import append_event
from enrichwatch.store.store import CallbackOutcome, InboundDelivery, OpenJobs, Store

__all__ = [
    "CallbackOutcome",
    "CheckOutcome",
    "EventRecord",
    "InboundDelivery",
    "InboxRecord",
    "JobRecord",
    "OpenJobs",
    "Store",
    "WorkItem",
    "append_event",
]
