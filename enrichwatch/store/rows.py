"""SQL shared by the store's writes; every function runs inside the caller's transaction."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from typing import Any

from enrichwatch import jsontext
from enrichwatch.errors import UnknownJobError
from enrichwatch.models import EventSource, VendorName
from enrichwatch.store.records import JobRecord

MAX_ROW_ID = 2**63 - 1
"""Ids and sequence numbers are SQLite integers; nothing larger can name a row."""


def new_callback_token() -> str:
    """An unguessable per-job callback token (192 random bits)."""
    return secrets.token_urlsafe(24)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def sha256_int64(text: str) -> int:
    """The first 8 bytes of the text's SHA-256 as a signed integer, as SQLite stores one: the
    inbox's compact index key for a dedupe key."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


def insert_job(
    conn: sqlite3.Connection,
    vendor: VendorName,
    vendor_job_id: str | None,
    name: str | None,
    *,
    now: float,
    due_at: float | None,
) -> JobRecord:
    token = new_callback_token()
    job_id = conn.execute(
        """INSERT INTO jobs (vendor, vendor_job_id, name, callback_token, callback_key,
                             next_check_at, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        (vendor.value, vendor_job_id, name, token, token_digest(token), due_at, now, now),
    ).lastrowid
    assert job_id is not None
    return fetch_job(conn, job_id)


def fetch_job(conn: sqlite3.Connection, job_id: int) -> JobRecord:
    row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        raise UnknownJobError(job_id)
    return JobRecord.from_row(row)


def append_event(
    conn: sqlite3.Connection,
    job_id: int,
    event_type: str,
    source: EventSource,
    payload: dict[str, Any],
    *,
    now: float,
    dedupe_key: str | None = None,
) -> int | None:
    """Append an event inside the caller's transaction; None if `dedupe_key` was seen."""
    cursor = conn.execute(
        """INSERT INTO events (job_id, type, source, payload, dedupe_key, created_at)
           VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING""",
        (job_id, event_type, source.value, jsontext.dumps(payload), dedupe_key, now),
    )
    return cursor.lastrowid if cursor.rowcount == 1 else None
