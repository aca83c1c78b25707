"""Sending one outbox row: find its targets (the job's own, else the configured ones), say
what happened, and hand it to its channel. Raises NotifyTransientError or
NotifyPermanentError; returns what to record about a delivery (never a secret)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

from enrichwatch import export
from enrichwatch.notify.console import send_console
from enrichwatch.notify.email import Attachment, send_email
from enrichwatch.notify.errors import NotifyPermanentError
from enrichwatch.notify.message import CheckTrouble, Message, build_message
from enrichwatch.notify.slack import send_slack
from enrichwatch.notify.webhook import send_webhook, shown_url
from enrichwatch.runtime import Services
from enrichwatch.store import WorkItem
from enrichwatch.store.notifications import JobTargets, Outcome, told_job

WallClock = Callable[[], float]
RESULTS_OUTCOMES = frozenset({Outcome.COMPLETED, Outcome.PARTIAL, Outcome.FAILED})


async def deliver(
    services: Services, item: WorkItem, *, wall_clock: WallClock = time.time
) -> dict[str, Any]:
    """Send `item` once. `wall_clock` stamps webhook attempts: the receiver checks them
    against its own clock, whatever clock the store keeps."""
    assert item.job_id is not None
    settings = services.settings
    notify = settings.notify
    # The job as it was when the outcome happened, whenever this send comes.
    job = told_job(await services.store.get_job(item.job_id), item.payload)
    targets = await services.store.job_targets(item.job_id)
    channel = item.payload["channel"]
    trouble = None
    if "failing_since" in item.payload:
        trouble = CheckTrouble(item.payload["failing_since"], item.payload["others"])
    message = build_message(
        job,
        Outcome(item.payload["outcome"]),
        base_url=await services.public_url(),
        at=item.payload["at"],
        detail=item.payload.get("detail"),
        trouble=trouble,
        max_job_age=settings.max_job_age,
    )
    webhook_id = item.payload["webhook_id"]
    match channel:
        case "console":
            send_console(message)
            return {}
        case "slack":
            url = targets.slack or _secret(notify.slack_webhook_url)
            if url is None:
                raise NotifyPermanentError(channel, "no Slack webhook URL configured")
            await send_slack(url, message, session=services.http, timeout_s=notify.timeout)
            return {"host": urlsplit(url).hostname}
        case "email":
            recipients = targets.email or notify.email_to
            if not recipients:
                raise NotifyPermanentError(channel, "no recipients configured")
            attachment = await _attachment(services, message)
            sent = await send_email(
                settings.smtp,
                recipients,
                message,
                attachment,
                message_id=webhook_id,
                timeout_s=notify.timeout,
            )
            return {
                "to": [recipient for recipient in recipients if recipient not in sent.refused],
                "attached": sent.attached,
            } | ({"refused": sent.refused} if sent.refused else {})
        case "webhook":
            return await _webhook(services, targets, message, webhook_id, wall_clock)
    raise NotifyPermanentError(channel, "unknown channel")


async def _webhook(
    services: Services,
    targets: JobTargets,
    message: Message,
    webhook_id: str,
    wall_clock: WallClock,
) -> dict[str, Any]:
    notify = services.settings.notify
    url = targets.webhook or (str(notify.webhook_url) if notify.webhook_url else None)
    secret = _secret(notify.webhook_secret)
    if url is None:
        raise NotifyPermanentError("webhook", "no webhook URL configured")
    if secret is None:
        raise NotifyPermanentError("webhook", "no webhook secret configured to sign with")
    await send_webhook(
        url,
        secret,
        message,
        webhook_id=webhook_id,
        timestamp=int(wall_clock()),
        session=services.http,
        timeout_s=notify.timeout,
    )
    return {"url": shown_url(url), "webhook_id": webhook_id}


async def _attachment(services: Services, message: Message) -> Attachment | None:
    """The results as CSV for outcomes that bring results (a failed job's, those it finished),
    if they fit under the limit."""
    if message.outcome not in RESULTS_OUTCOMES or not message.results_stored:
        return None
    limit = services.settings.notify.attach_limit_bytes
    data = await read_at_most(export.csv_rows(services.store, message.job_id), limit)
    return Attachment(data, limit)


async def read_at_most(chunks: AsyncIterator[bytes], limit: int) -> bytes | None:
    """All of `chunks` if they come to at most `limit` bytes, else None (reading stops as
    soon as the limit is passed, so a huge result set is never held in memory)."""
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
            return None
        parts.append(chunk)
    return b"".join(parts)


def _secret(value: Any) -> str | None:
    return None if value is None else str(value.get_secret_value())
