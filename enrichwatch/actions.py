"""Operator actions: resume a paused job, reprocess a Reprompt batch (each at the vendor), or
fetch results again after their fetch failed. Each is recorded as an event and makes the
work due, so the next pass sees what the vendor did."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, model_validator

from enrichwatch.errors import EnrichwatchError, ResultsStateError, VendorRejectedError
from enrichwatch.models import ENDED_STATES, JobState
from enrichwatch.runtime import CallTally, Services
from enrichwatch.store import JobRecord
from enrichwatch.vendors import VendorAdapter, adapter_class


class ActionError(EnrichwatchError):
    """The action cannot be taken on this job."""


FOUND_RUNNING_AGAIN = "found_running_again"
"""In an action's event: the vendor was not asked, as it already ran the job again."""


class ReprocessOptions(BaseModel):
    """Reprompt's reprocess options, checked before the vendor is asked (API and CLI)."""

    # The rule below, in the API document too, so clients and fuzzers know it.
    model_config = ConfigDict(
        extra="forbid",
        # 0 or "yes" is not the boolean the API document promises to take.
        strict=True,
        json_schema_extra={
            "not": {
                "properties": {
                    "attributes": {"type": "array"},
                    "attribute_set": {"type": "string"},
                },
                "required": ["attributes", "attribute_set"],
            }
        },
    )

    failed_only: bool | None = None
    incomplete_only: bool | None = None
    refresh: bool | None = None
    attributes: list[str] | None = None
    attribute_set: Literal["open_closed", "core", "all"] | None = None

    @model_validator(mode="after")
    def _one_way_to_name_attributes(self) -> Self:
        # Reprompt refuses both (409), but only after a call; submit checks the same.
        if self.attributes is not None and self.attribute_set is not None:
            raise ValueError("give attribute_set or attributes, not both")
        return self


async def resume(services: Services, job_id: int) -> JobRecord:
    """A paused job goes on, even one that expired waiting (the vendor still holds it); so
    does one that failed mid-run where the vendor resumes those (influencers.club), which
    reopens it as a new run, like a reprocess."""
    job = await _sent_job(services, job_id)
    failed_run = job.state is JobState.FAILED and adapter_class(job.vendor).resumes_failed_runs
    if job.state in ENDED_STATES and not failed_run:
        # The vendor might resume (and bill) it, but a finished job is never looked at again.
        raise ActionError(f"job {job_id} is {job.state.value}; there is nothing to resume")
    calls = CallTally()
    adapter = services.adapter(job.vendor, on_call=calls)
    payload: dict[str, Any] = {}
    if failed_run and await _runs_again_there(adapter, job):
        payload[FOUND_RUNNING_AGAIN] = True
    else:
        try:
            await adapter.resume(job.vendor_job_id or "")
        except VendorRejectedError as exc:
            if job.state is not JobState.NEEDS_ACTION:
                raise
            # Its state here is the last check's: a resume the vendor took already (a second
            # `resume` before that check) is refused as if the job had never been paused.
            raise VendorRejectedError(
                job.vendor.value,
                f"job {job.id} was paused when last checked but is not paused there any more: "
                f"most likely it was resumed already. `enrichwatch check {job.id}` (or POST "
                f"/api/jobs/{job.id}/check) shows its state now. The refusal: {exc.message}",
                status=exc.status,
            ) from exc
    return await services.store.record_action(
        job.id, "job.resume_requested", payload, vendor_calls=calls.count, reopen=failed_run
    )


async def reprocess(services: Services, job_id: int, options: Mapping[str, Any]) -> JobRecord:
    job = await _sent_job(services, job_id)
    calls = CallTally()
    adapter = services.adapter(job.vendor, on_call=calls)
    payload = dict(options)
    finished = job.state in ENDED_STATES
    if adapter.offers_reprocess and finished and await _runs_again_there(adapter, job):
        payload[FOUND_RUNNING_AGAIN] = True
    else:
        await adapter.reprocess(job.vendor_job_id or "", options)
    return await services.store.record_action(
        job.id, "job.reprocess_requested", payload, vendor_calls=calls.count, reopen=True
    )


async def fetch_again(services: Services, job_id: int) -> JobRecord:
    """Fetch a job's results again after its fetch failed for good; nothing is asked of the
    vendor here (the fetcher does that)."""
    try:
        return await services.store.refetch(job_id)
    except ResultsStateError as exc:
        raise ActionError(str(exc)) from None


async def _runs_again_there(adapter: VendorAdapter, job: JobRecord) -> bool:
    """Whether the vendor says something else of a job that completed or failed here (which
    it leaves only by an action): it runs it again, at an earlier request of this action
    that a stop cut off before it was recorded (or from the vendor's own console). That run
    is then recorded rather than asked for again: the vendor would refuse to resume a batch
    that no longer failed (leaving the job failed here for ever, its new results never
    fetched), or reprocess it twice."""
    snapshot = await adapter.status(job.vendor_job_id or "")
    return snapshot.state is not job.state


async def _sent_job(services: Services, job_id: int) -> JobRecord:
    job = await services.store.get_job(job_id)
    if job.vendor_job_id is None:
        raise ActionError(f"job {job_id} has not been sent to {job.vendor.value} yet")
    return job
