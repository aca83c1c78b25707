"""The SQLite event log: jobs, events, inbox, work and results in one file."""

from __future__ import annotations

from enrichwatch.store.records import EventRecord, InboxRecord, JobRecord
from enrichwatch.store.store import CallbackOutcome, InboundDelivery, Store, append_event

__all__ = [
    "CallbackOutcome",
    "EventRecord",
    "InboundDelivery",
    "InboxRecord",
    "JobRecord",
    "Store",
    "append_event",
]
