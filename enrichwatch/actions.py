"""Operator actions at the vendor: resume a paused job, reprocess a Reprompt batch. Each is
recorded as an event and makes the job due, so the next check sees what the vendor did."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from enrichwatch.errors import EnrichwatchError
from enrichwatch.runtime import CallTally, Services
from enrichwatch.store import JobRecord


class ActionError(EnrichwatchError):
    """The action cannot be taken on this job."""


async def resume(services: Services, job_id: int) -> JobRecord:
    job = await _sent_job(services, job_id)
    calls = CallTally()
    await services.adapter(job.vendor, on_call=calls).resume(job.vendor_job_id or "")
    return await services.store.record_action(
        job.id, "job.resume_requested", {}, vendor_calls=calls.count
    )


async def reprocess(services: Services, job_id: int, options: Mapping[str, Any]) -> JobRecord:
    job = await _sent_job(services, job_id)
    calls = CallTally()
    await services.adapter(job.vendor, on_call=calls).reprocess(job.vendor_job_id or "", options)
    return await services.store.record_action(
        job.id, "job.reprocess_requested", dict(options), vendor_calls=calls.count, reopen=True
    )


async def _sent_job(services: Services, job_id: int) -> JobRecord:
    job = await services.store.get_job(job_id)
    if job.vendor_job_id is None:
        raise ActionError(f"job {job_id} has not been sent to {job.vendor.value} yet")
    return job
