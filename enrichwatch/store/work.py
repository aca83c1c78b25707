"""The `work` outbox: side effects as rows, created in the transaction of the event that
causes them, claimed with a lease, retried with backoff, dead-lettered visibly."""

from __future__ import annotations

import sqlite3
from typing import Any

from enrichwatch import jsontext
from enrichwatch.store.records import WorkItem


def enqueue(
    conn: sqlite3.Connection,
    *,
    kind: str,
    job_id: int | None,
    payload: dict[str, Any],
    unique_key: str,
    due_at: float,
    now: float,
    last_error: str | None = None,
) -> None:
    """Create the work item, or make a finished or waiting one with the same key pending again
    at `due_at` (a unique key never yields two rows)."""
    conn.execute(
        """INSERT INTO work (kind, job_id, payload, next_attempt_at, unique_key, last_error,
                             created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (unique_key) DO UPDATE SET
               state = 'pending', payload = excluded.payload,
               next_attempt_at = excluded.next_attempt_at, last_error = excluded.last_error,
               lease_owner = NULL, lease_expires_at = NULL, updated_at = excluded.updated_at""",
        (kind, job_id, jsontext.dumps(payload), due_at, unique_key, last_error, now, now),
    )


DUE_ITEM = """state = 'pending' AND next_attempt_at <= ?
    AND (lease_expires_at IS NULL OR lease_expires_at <= ?)"""
"""A pending work item whose attempt is due and that no live lease holds; `due_item_params`
fills it."""


def due_item_params(now: float) -> tuple[float, float]:
    return (now, now)


def claim(
    conn: sqlite3.Connection, *, kind: str, owner: str, now: float, lease_s: float, limit: int
) -> list[WorkItem]:
    """Lease up to `limit` due items of `kind`; an expired lease (a crashed owner) is fair game."""
    rows = conn.execute(
        f"""UPDATE work SET lease_owner = ?, lease_expires_at = ?, attempts = attempts + 1,
                            updated_at = ?
            WHERE id IN (SELECT id FROM work WHERE kind = ? AND {DUE_ITEM}
                          ORDER BY next_attempt_at LIMIT ?)
            RETURNING *""",  # noqa: S608 (a constant)
        (owner, now + lease_s, now, kind, *due_item_params(now), limit),
    ).fetchall()
    return [WorkItem.from_row(row) for row in rows]


def finish(conn: sqlite3.Connection, item_id: int, *, now: float, state: str = "done") -> None:
    conn.execute(
        """UPDATE work SET state = ?, lease_owner = NULL, lease_expires_at = NULL,
                           updated_at = ?
           WHERE id = ?""",
        (state, now, item_id),
    )


def retry_later(
    conn: sqlite3.Connection, item_id: int, *, due_at: float, error: str, now: float
) -> None:
    conn.execute(
        """UPDATE work SET next_attempt_at = ?, last_error = ?, lease_owner = NULL,
                           lease_expires_at = NULL, updated_at = ?
           WHERE id = ?""",
        (due_at, error, now, item_id),
    )


def postpone(conn: sqlite3.Connection, item_id: int, *, due_at: float, now: float) -> None:
    """Release a claimed item untried (nothing was done for it), due again at `due_at`; its
    claim does not count as an attempt."""
    conn.execute(
        """UPDATE work SET next_attempt_at = ?, attempts = max(attempts - 1, 0),
                           lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
           WHERE id = ? AND state = 'pending'""",
        (due_at, now, item_id),
    )
