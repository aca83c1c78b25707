"""The console channel: the notification in the service's own log, so that a new user running
`enrichwatch serve` with nothing configured still sees every outcome, with the same facts the
other channels give."""

from __future__ import annotations

import structlog

from enrichwatch.notify.message import Message

log = structlog.get_logger("enrichwatch.notify")


def send_console(message: Message) -> None:
    log.info(
        "notification",
        title=message.title,
        outcome=message.outcome.value,
        job_id=message.job_id,
        vendor=message.vendor,
        vendor_job_id=message.vendor_job_id,
        enriched=message.enriched,
        failed=message.failed,
        total=message.total,
        results_stored=message.results_stored,
        duration=message.duration_text,
        vendor_calls=message.vendor_calls_text,
        problem=message.problem,
        results=message.results_url,
        dashboard=message.dashboard_url,
    )
