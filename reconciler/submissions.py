"""Sending the batch parts that were kept back (the vendor's concurrency cap was hit, or a
transient failure created nothing)."""

from __future__ import annotations

import structlog

from enrichwatch.errors import EnrichwatchError
from enrichwatch.runtime import Services
from enrichwatch.store.submissions import SUBMIT_WORK
from enrichwatch.submission import attempt_submit
from enrichwatch.vendors.base import SubmitRequest

log = structlog.get_logger("enrichwatch.reconciler")

LEASE_S = 300.0
BATCH = 20


async def send_queued_submissions(services: Services, owner: str) -> int:
    """One pass over the due parts; returns how many were sent."""
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
