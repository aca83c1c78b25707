"""The JSON shape of jobs and events, shared by the API and the CLI's --json."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from enrichwatch.store import EventRecord, JobRecord


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def results_state(job: JobRecord) -> str | None:
    """Where the job's results stand, for readers: `stored` only once no more will come.
    What was stored of a job still open (a paused job's partial set, a BrightLocal batch's
    finished part) is `partial`; the store keeps it as `stored` until the job moves on."""
    if job.results_state == "stored" and not job.state.is_terminal:
        return "partial"
    return job.results_state


def job_json(job: JobRecord, public_url: str) -> dict[str, Any]:
    return {
        "id": job.id,
        "vendor": job.vendor.value,
        "vendor_job_id": job.vendor_job_id,
        "name": job.name,
        "state": job.state.value,
        "vendor_status": job.vendor_status,
        "error": job.error,
        "progress": {
            "done": job.progress_done,
            "failed": job.progress_failed,
            "total": job.progress_total,
        },
        "results": {"state": results_state(job), "count": job.results_count},
        "vendor_calls": job.vendor_calls,
        "callbacks_received": job.callbacks_received,
        "callback_url": job.callback_url(public_url),
        "next_check_at": iso(job.next_check_at),
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
        "last_checked_at": iso(job.last_checked_at),
        "check_failures": job.check_failures,
        "failing_since": iso(job.failing_since),
        "paused_at": iso(job.paused_at),
        "finished_at": iso(job.finished_at),
    }


def event_json(event: EventRecord) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "job_id": event.job_id,
        "type": event.type,
        "source": event.source.value,
        "payload": {key: _time_as_iso(key, value) for key, value in event.payload.items()},
        "created_at": iso(event.created_at),
    }


def _time_as_iso(key: str, value: Any) -> Any:
    """A payload's times (`retry_at`…) are stored as Unix seconds, and read as every other
    time in the API is: ISO 8601 in UTC."""
    if key.endswith("_at") and isinstance(value, int | float) and not isinstance(value, bool):
        return iso(value)
    return value
