"""Submitting a batch: validate the whole input, split it into the vendor jobs it becomes,
and send each part only after its job row (and callback URL) exists, so that nothing sent is
ever untracked. A part refused by the vendor's concurrency cap, or not sent for want of a
place in the account's request budget, is kept and sent later; one whose send a stop cut
off is settled with the vendor where its job's id was known in time, else failed."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime

from enrichwatch.errors import (
    EnrichwatchError,
    VendorAmbiguousError,
    VendorBudgetSpentError,
    VendorConcurrencyLimitError,
    VendorError,
    VendorRejectedError,
    VendorTransientError,
)
from enrichwatch.models import EventSource, VendorName
from enrichwatch.runtime import CallTally, Services
from enrichwatch.store import JobRecord
from enrichwatch.store.notifications import JobTargets
from enrichwatch.vendors.base import SubmitRequest

CONCURRENCY_RETRY_S = 60.0
"""How long a part waits when the vendor gives no retry delay for its concurrency cap."""
TRANSIENT_RETRY_S = 30.0
MAX_TRANSIENT_ATTEMPTS = 5


class SubmissionError(EnrichwatchError):
    """A part failed; `jobs` are the parts sent (or queued) before it, still tracked, and
    `failed` is the part's own job, kept as `failed` with what the vendor said. `rejected`:
    the vendor refused the input itself (its 4xx), rather than failing to take it."""

    def __init__(
        self, message: str, jobs: list[JobRecord], failed: JobRecord, *, rejected: bool
    ) -> None:
        super().__init__(message)
        self.jobs = jobs
        self.failed = failed
        self.rejected = rejected


class SendInterruptedError(EnrichwatchError):
    """A part's earlier submit call was cut off by a stop, and the part is failed: the vendor
    may hold its job untold, or holds nothing of it and its rows were never kept here."""


@dataclass
class SubmissionOutcome:
    submitted: list[JobRecord] = field(default_factory=list)
    queued: list[JobRecord] = field(default_factory=list)

    @property
    def jobs(self) -> list[JobRecord]:
        return sorted(self.submitted + self.queued, key=lambda job: job.id)


async def submit_batch(
    services: Services,
    vendor: VendorName,
    request: SubmitRequest,
    *,
    public_url: str,
    source: EventSource = EventSource.API,
    notify: JobTargets | None = None,
) -> SubmissionOutcome:
    """Validate, split and submit; raises InputError before anything is sent. `notify`: the
    batch's own notification targets (every part's)."""
    adapter = services.adapter(vendor)
    adapter.validate(request)
    parts = adapter.split(request)
    outcome = SubmissionOutcome()
    for index, part in enumerate(parts, start=1):
        job = await services.store.reserve_job(
            vendor,
            part.name,
            rows=len(part.rows),
            source=source,
            owner=services.sender.owner(),
            notify=notify,
        )
        if adapter.supports_webhooks:
            part = part.model_copy(update={"callback_url": job.callback_url(public_url)})
        if outcome.queued:
            # The vendor is at its cap: later parts wait their turn without asking again.
            outcome.queued.append(
                await _queue(services, job, part, "waiting for earlier parts", 0, None, 0)
            )
            continue
        try:
            job, queued = await attempt_submit(services, job, part)
        except VendorError as exc:
            raise SubmissionError(
                f"part {index} of {len(parts)} failed: {exc}"
                + (f" ({len(outcome.jobs)} earlier part(s) are tracked)" if outcome.jobs else ""),
                outcome.jobs,
                await services.store.get_job(job.id),
                rejected=isinstance(exc, VendorRejectedError),
            ) from exc
        (outcome.queued if queued else outcome.submitted).append(job)
    return outcome


async def attempt_submit(
    services: Services, job: JobRecord, part: SubmitRequest, *, transient_failures: int = 0
) -> tuple[JobRecord, bool]:
    """Send one reserved part; returns the job and whether it was queued for later instead:
    at the vendor's concurrency cap or with the account's request budget spent (as often as
    it takes), or after a transient failure that
    provably created nothing (the adapters settle ambiguous ones first), up to
    MAX_TRANSIENT_ATTEMPTS of those; `transient_failures` counts the part's earlier ones.

    Any other vendor error marks the job failed (with what the vendor said) and is raised.
    """
    if job.send_started_at is not None and (taken := await settle_interrupted_send(services, job)):
        return taken, False
    tally = CallTally()
    adapter = services.adapter(
        job.vendor,
        on_call=tally,
        on_created=functools.partial(services.store.record_send_created, job.id),
    )
    await services.store.begin_send(job.id, owner=services.sender.owner())
    began = services.store.clock()
    try:
        (submitted,) = await adapter.submit(part)
    except (VendorConcurrencyLimitError, VendorBudgetSpentError) as exc:
        queued = await _queue(
            services, job, part, str(exc), tally.count, exc.retry_after, transient_failures
        )
        return queued, True
    except VendorTransientError as exc:
        failures = transient_failures + 1
        if isinstance(exc, VendorAmbiguousError):
            message = f"{exc}; {job.vendor.value} may have taken it: {_look_there(began)}"
            await services.store.fail_submission(job.id, message, vendor_calls=tally.count)
            raise
        if failures >= MAX_TRANSIENT_ATTEMPTS:
            await services.store.fail_submission(job.id, str(exc), vendor_calls=tally.count)
            raise
        delay = exc.retry_after or TRANSIENT_RETRY_S * failures
        return await _queue(services, job, part, str(exc), tally.count, delay, failures), True
    except VendorError as exc:
        await services.store.fail_submission(job.id, str(exc), vendor_calls=tally.count)
        raise
    recorded = await services.store.record_submitted(
        job.id,
        submitted.vendor_job_id,
        vendor_calls=tally.count,
        raw=submitted.raw,
        expects_callback=part.callback_url is not None,
    )
    return recorded, False


async def settle_interrupted_send(services: Services, job: JobRecord) -> JobRecord | None:
    """A submit call that the process stopped in the middle of, or before it began. Returns
    the job, tracked, when the vendor took the part whole; None when nothing of it is left at
    the vendor, so a part held back here may be sent again (one sent directly fails, its rows
    never kept).

    Where the call had not yet heard the vendor name its job, the vendor may have it and
    nothing here can tell (its list is matched only to a call made moments ago), so the part
    fails, notified, rather than be sent again and billed twice (SendInterruptedError). A
    vendor error leaves the call marked, to be settled on a later pass."""
    if job.send_started_at is None:
        # Reserved, and stopped before it was sent or queued: its rows were never kept here.
        message = f"the service stopped before sending this part to {job.vendor.value}, "
        message += "so nothing was sent: send these rows again"
        await services.store.fail_submission(job.id, message, vendor_calls=0)
        raise SendInterruptedError(message)
    stopped = f"the service stopped while sending this part to {job.vendor.value}"
    made = job.send_vendor_job_id
    if made is None:
        message = f"{stopped}, which may have taken it: {_look_there(job.send_started_at)}"
        hint, calls = await _untracked_lookalikes(services, job)
        await services.store.fail_submission(job.id, message + hint, vendor_calls=calls)
        raise SendInterruptedError(message + hint)
    tally = CallTally()
    adapter = services.adapter(job.vendor, on_call=tally)
    taken = await adapter.settle_cut_off_submit(made)
    if taken is not None:
        return await services.store.record_submitted(
            job.id,
            taken.vendor_job_id,
            vendor_calls=tally.count,
            raw=taken.raw,
            expects_callback=adapter.supports_webhooks,
        )
    nothing = f"{stopped}, and nothing of it runs there (job {made} is not there or is deleted)"
    if await services.store.resend_held_part(job.id, nothing, vendor_calls=tally.count):
        return None
    message = f"{nothing}: send these rows again"
    await services.store.fail_submission(job.id, message, vendor_calls=tally.count)
    raise SendInterruptedError(message)


async def _untracked_lookalikes(services: Services, job: JobRecord) -> tuple[str, int]:
    """Where the vendor lists its jobs: the ones made since the cut-off call began that no
    job here tracks, for the failure to name (one may be this part; nothing here can tell
    which, or that none is, so none is adopted). Returns that sentence, empty where the list
    cannot say, and the calls it took."""
    assert job.send_started_at is not None
    tally = CallTally()
    adapter = services.adapter(job.vendor, on_call=tally)
    try:
        listed = await adapter.listed_since(job.send_started_at, job.input_rows or 0)
    except VendorError:  # no list to read (ActionNotSupportedError), or it failed
        return "", tally.count  # the failure is reported without the hint, not held up
    tracked = await services.store.tracked(job.vendor, listed)
    untracked = [vendor_job_id for vendor_job_id in listed if vendor_job_id not in tracked]
    if not untracked:
        return "; its job list shows none made since then that is not tracked here", tally.count
    shown = ", ".join(untracked[:5]) + (", …" if len(untracked) > 5 else "")
    hint = f"; its job list shows {len(untracked)} made since then that no job here tracks "
    hint += f"({shown}): if one is this part, track it (enrichwatch track "
    hint += f"{job.vendor.value} ID) rather than send the rows again"
    return hint, tally.count


async def _queue(
    services: Services,
    job: JobRecord,
    part: SubmitRequest,
    reason: str,
    calls: int,
    retry_after: float | None,
    transient_failures: int,
) -> JobRecord:
    retry_at = services.store.clock() + (retry_after or CONCURRENCY_RETRY_S)
    return await services.store.queue_submission(
        job.id,
        part.model_dump(),
        retry_at=retry_at,
        reason=reason,
        vendor_calls=calls,
        transient_failures=transient_failures,
    )


def _look_there(sent_at: float) -> str:
    started = datetime.fromtimestamp(sent_at, UTC).isoformat(timespec="seconds")
    return f"look there for a job created at {started} before sending these rows again"
