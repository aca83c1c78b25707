"""The console channel: the notification in the service's own log, so that a new user running
`enrichwatch serve` with nothing configured still sees every outcome."""

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
        problem=message.problem,
        results=message.results_url,
        dashboard=message.dashboard_url,
    )
