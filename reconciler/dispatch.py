"""Sending notifications from the outbox: claim due rows under a lease, send each over its
channel, then record the outcome (sent, retry later with backoff and jitter, or dead-letter)
in the row and the job's event log.

Delivery is at least once (see `enrichwatch.notify`): a row is marked sent only after its
channel accepted it, so a process killed mid-send leaves it leased; a reconciler then frees
the leases of holders that are gone (`Store.release_leases`) and sends it again. Webhook
receivers dedupe on the unchanged `webhook-id`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from enrichwatch.notify import NotifyPermanentError, NotifyTransientError
from enrichwatch.notify.deliver import WallClock, deliver
from enrichwatch.polling import backoff
from enrichwatch.store import WorkItem
from reconciler.state import Reconciler

log = structlog.get_logger("enrichwatch.notify")

BATCH = 20


async def dispatch_due_notifications(rc: Reconciler, *, wall_clock: WallClock = time.time) -> int:
    """One pass over due notifications, sent side by side; returns how many were delivered."""
    settings = rc.services.settings.notify
    # `timeout` bounds each step of a send (an HTTP request, an SMTP command); a server that
    # answers every step just in time could still hold a send for minutes, so the whole send
    # is cut off after twice that. The lease outlasts the cut, so a live send is never taken
    # up by another pass and sent twice.
    limit_s = settings.timeout * 2
    items = await rc.services.store.claim_notifications(
        owner=rc.owner, lease_s=limit_s + 60, limit=BATCH
    )
    sent = await asyncio.gather(*(_send(rc, item, wall_clock, limit_s) for item in items))
    return sum(sent)


async def _send(rc: Reconciler, item: WorkItem, wall_clock: WallClock, limit_s: float) -> bool:
    store, metrics = rc.services.store, rc.services.metrics
    channel = item.payload["channel"]
    bound = log.bind(
        notification_id=item.id,
        job_id=item.job_id,
        channel=channel,
        outcome=item.payload["outcome"],
        attempt=item.attempts,
    )
    try:
        detail = await _deliver_within(limit_s, rc, item, wall_clock)
    except NotifyPermanentError as exc:
        bound.error("notification_dead", error=str(exc))
        metrics.notifications.labels(channel, "dead").inc()
        await store.notification_failed(item, str(exc), retry_at=None)
        return False
    except NotifyTransientError as exc:
        await _retry_or_give_up(rc, item, str(exc), exc.retry_after)
        return False
    except Exception as exc:
        # A fault of ours must not leave the row leased forever: it counts as an attempt.
        bound.exception("notification_error")
        await _retry_or_give_up(rc, item, f"internal error: {exc!r}", None)
        return False
    metrics.notifications.labels(channel, "sent").inc()
    await store.notification_sent(item, detail)
    bound.info("notification_sent")
    return True


async def _deliver_within(
    limit_s: float, rc: Reconciler, item: WorkItem, wall_clock: WallClock
) -> dict[str, Any]:
    """`deliver`, cut off after `limit_s` as a transient failure (retried later)."""
    try:
        async with asyncio.timeout(limit_s):
            return await deliver(rc.services, item, wall_clock=wall_clock)
    except TimeoutError:
        raise NotifyTransientError(
            item.payload["channel"], f"the send took longer than {limit_s:g} s; cut off"
        ) from None


async def _retry_or_give_up(
    rc: Reconciler, item: WorkItem, error: str, retry_after: float | None
) -> None:
    settings = rc.services.settings.notify
    metrics = rc.services.metrics
    channel = item.payload["channel"]
    if item.attempts >= settings.max_attempts:
        error = f"gave up after {item.attempts} attempts: {error}"
        log.error("notification_dead", notification_id=item.id, channel=channel, error=error)
        metrics.notifications.labels(channel, "dead").inc()
        await rc.services.store.notification_failed(item, error, retry_at=None)
        return
    delay = backoff(
        item.attempts,
        rc.rng,
        base=settings.retry_base,
        cap=settings.retry_cap,
        retry_after=retry_after,
    )
    log.warning(
        "notification_retry", notification_id=item.id, channel=channel, error=error, in_s=delay
    )
    metrics.notifications.labels(channel, "failed").inc()
    await rc.services.store.notification_failed(item, error, retry_at=rc.now() + delay)
