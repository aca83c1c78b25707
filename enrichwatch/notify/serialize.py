"""The JSON shape of a notification, shared by the API and the CLI's --json."""

from __future__ import annotations

from typing import Any

from enrichwatch.serialize import iso
from enrichwatch.store.notifications import NotificationRecord


def notification_json(record: NotificationRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "job_id": record.job_id,
        "outcome": record.outcome.value,
        "channel": record.channel,
        "state": record.state,
        "attempts": record.attempts,
        "next_attempt_at": iso(record.next_attempt_at) if record.state == "pending" else None,
        "last_error": record.last_error,
        "webhook_id": record.webhook_id,
        "leased": record.leased,
        "created_at": iso(record.created_at),
        "updated_at": iso(record.updated_at),
    }
