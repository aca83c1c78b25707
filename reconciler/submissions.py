"""Sending the batch parts that were kept back (the vendor's concurrency cap was hit, or a
transient failure created nothing)."""

from __future__ import annotations

import structlog

from enrichwatch.errors import EnrichwatchError, VendorError
from enrichwatch.runtime import Services
from enrichwatch.store.holders import gone_holders
from enrichwatch.store.submissions import SUBMIT_WORK
from enrichwatch.submission import SendInterruptedError, attempt_submit, settle_interrupted_send
from enrichwatch.vendors.base import SubmitRequest

log = structlog.get_logger("enrichwatch.reconciler")

LEASE_S = 300.0
BATCH = 20
SEND_GIVE_UP_S = 900.0
"""A part reserved or a submit call begun this long ago with no outcome recorded was cut off
by a stop: longer than any one call, its retries included, can take (in this process or
another). A part whose process is gone is known to be cut off at once (`Store.reserve_job`'s
and `Store.begin_send`'s owner)."""


async def send_queued_submissions(services: Services, owner: str) -> int:
    """One pass over the due parts; returns how many were sent.

    Each pass first settles the parts a stop cut off mid-send, so one sent directly (by the
    API or the CLI, with no work item) is reported soon after it could no longer be under way."""
    await settle_interrupted_sends(services)
    sent = 0
    for item in await services.store.claim_work(
        SUBMIT_WORK, owner=owner, lease_s=LEASE_S, limit=BATCH
    ):
        assert item.job_id is not None
        job = await services.store.get_job(item.job_id)
        structlog.contextvars.bind_contextvars(job_id=job.id, vendor=job.vendor.value)
        part = SubmitRequest.model_validate(item.payload["request"])
        try:
            job, queued = await attempt_submit(
                services, job, part, transient_failures=item.payload.get("transient_failures", 0)
            )
        except EnrichwatchError as exc:
            log.warning("queued_submission_failed", error=str(exc))
            continue
        finally:
            structlog.contextvars.unbind_contextvars("job_id", "vendor")
        if queued:
            log.info("queued_submission_deferred")
        else:
            sent += 1
            log.info("queued_submission_sent", vendor_job_id=job.vendor_job_id)
    return sent


async def settle_interrupted_sends(services: Services) -> int:
    """Parts whose submit a stop cut off, in any process: each is tracked, sent again or
    failed, notified, rather than wait for ever or be sent twice (see
    `settle_interrupted_send`). Returns how many were settled."""
    store = services.store
    marked = await store.sends_under_way()
    gone = gone_holders(store.path, {job.send_owner for job in marked if job.send_owner})
    started_before = store.clock() - SEND_GIVE_UP_S
    settled = 0
    for job in marked:
        started = job.created_at if job.send_started_at is None else job.send_started_at
        if job.send_owner not in gone and started >= started_before:
            continue
        try:
            taken = await settle_interrupted_send(services, job)
        except SendInterruptedError as exc:
            log.warning("interrupted_submission_failed", job_id=job.id, error=str(exc))
        except VendorError as exc:
            log.warning("interrupted_submission_unsettled", job_id=job.id, error=str(exc))
            continue
        else:
            outcome = "tracked" if taken is not None else "queued_again"
            log.info("interrupted_submission_settled", job_id=job.id, outcome=outcome)
        settled += 1
    return settled
