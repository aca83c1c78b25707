"""Checking due jobs: claim them with a lease, ask each vendor (one list call for many jobs
where it has one), record what it said, and plan the next look with the polling policy.

Level-triggered: every check reads the vendor's current state and moves the job toward it,
so a check may run twice, late, or after a crash without harm."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass

import structlog

from enrichwatch.errors import (
    VendorAuthError,
    VendorBudgetSpentError,
    VendorError,
    VendorNotFoundError,
    VendorPaymentError,
)
from enrichwatch.models import JobState, VendorName
from enrichwatch.polling import (
    CheckReason,
    DurationModel,
    JobView,
    PastJob,
    ProgressSample,
    backoff,
    next_check,
)
from enrichwatch.runtime import CallTally
from enrichwatch.store import CheckOutcome, JobRecord
from enrichwatch.store.notifications import Outcome
from enrichwatch.vendors.base import StatusSnapshot, VendorAdapter
from reconciler.state import Reconciler

log = structlog.get_logger("enrichwatch.reconciler")

LEASE_S = 120.0
BATCH = 200


@dataclass
class KeyWitness:
    """What one pass has learned of whether the vendor still knows our jobs under the
    configured key. A 404 for a job's status means the job is gone only while the vendor
    answers for other jobs of ours: a key of another account gets 404 for every job (eCore
    answers so for another user's jobs), as may a base URL that is not the vendor's, and
    taking that at its word would expire them all, results unfetched."""

    answered: bool = False
    """The vendor answered for one of our jobs in this pass."""
    unknown: tuple[JobRecord, JobRecord] | None = None
    """The job whose 404 raised the question, and a job the vendor knew before that it
    answered 404 for as well."""


async def check_due_jobs(rc: Reconciler, vendor: VendorName | None = None) -> int:
    """One pass over every job whose check is due (of one vendor, if given), each vendor's at
    the same time as the others'; returns how many were checked. A job whose check failed
    unexpectedly keeps its lease until it lapses, and is checked again then."""
    jobs = await rc.services.store.claim_due_jobs(
        owner=rc.owner, lease_s=LEASE_S, limit=BATCH, vendor=vendor
    )
    by_vendor: dict[VendorName, list[JobRecord]] = defaultdict(list)
    for job in jobs:
        by_vendor[job.vendor].append(job)
    # Vendors side by side: one whose API hangs holds up only its own jobs.
    outcomes = await asyncio.gather(
        *(_check_vendor(rc, vendor, group) for vendor, group in by_vendor.items()),
        return_exceptions=True,
    )
    for vendor, outcome in zip(by_vendor, outcomes, strict=True):
        if isinstance(outcome, Exception):
            log.error("vendor_checks_failed", vendor=vendor.value, exc_info=outcome)
        elif isinstance(outcome, BaseException):
            raise outcome
    # Taken whole before the first await: passes for other vendors may add to it meanwhile.
    deferred, rc.deferred = rc.deferred, []
    for job_ids, until in deferred:
        await rc.services.store.defer_checks(job_ids, until)
    return len(jobs)


async def _check_vendor(rc: Reconciler, vendor: VendorName, jobs: list[JobRecord]) -> None:
    history = await _history(rc, vendor)
    # A job we have just submitted is known to be unfinished: plan its first call from the
    # vendor's history instead of spending one to learn nothing.
    fresh = [job for job in jobs if _just_submitted(job)]
    for job in fresh:
        await _plan_without_calling(rc, job, history)
    jobs = [job for job in jobs if not _just_submitted(job)]
    if not jobs:
        return
    tally, witness = CallTally(), KeyWitness()
    adapter = rc.services.adapter(vendor, on_call=tally)
    if adapter.has_list_endpoint:
        jobs = await _check_by_list(rc, adapter, jobs, history, tally, witness)
    await _check_each(rc, vendor, jobs, history, witness, tally)


async def _check_by_list(
    rc: Reconciler,
    adapter: VendorAdapter,
    due: list[JobRecord],
    history: DurationModel,
    tally: CallTally,
    witness: KeyWitness,
) -> list[JobRecord]:
    """One list call for the due jobs, which also reports on the vendor's other polled jobs
    (those it shows cost nothing more, and each look moves their next check later). A lone
    due job reads only the first page, where open jobs, the newest, usually are; pages are
    read for several. Returns the due jobs the list did not show, each for a call of its own.

    Jobs waiting for a callback do not ride along: they are left to it."""
    store, vendor = rc.services.store, adapter.name
    riders = await store.claim_polled_jobs(vendor, owner=rc.owner, lease_s=LEASE_S, limit=BATCH)
    if not riders and len(due) == 1:
        return due
    if not _affordable(rc, vendor, due):
        await store.release_jobs([job.id for job in riders], owner=rc.owner)
        return []
    wanted = due if len(due) > 1 else []
    try:
        snapshots = await adapter.list_status(
            [job.vendor_job_id or "" for job in wanted],
            also=[job.vendor_job_id or "" for job in [*due, *riders]],
        )
    except VendorError as exc:
        _observe_limits(rc, vendor, adapter)
        await store.release_jobs([job.id for job in riders], owner=rc.owner)
        for job in due:
            await _record_failure(rc, job, exc, tally.count / len(due))
        return []
    _observe_limits(rc, vendor, adapter)
    shown = {job.id for job in [*due, *riders] if job.vendor_job_id in snapshots}
    witness.answered = witness.answered or bool(shown)
    # A list that showed none of them leaves its cost to the calls that follow.
    share = tally.take() / len(shown) if shown else 0.0
    for job in [*due, *riders]:
        if job.id in shown:
            await _record(rc, job, snapshots[job.vendor_job_id or ""], share, history)
    await store.release_jobs([job.id for job in riders if job.id not in shown], owner=rc.owner)
    return [job for job in due if job.id not in shown]


async def _check_each(
    rc: Reconciler,
    vendor: VendorName,
    jobs: list[JobRecord],
    history: DurationModel,
    witness: KeyWitness,
    tally: CallTally | None = None,
) -> None:
    """One status call per job, as the vendor's budget allows; `tally` may hold calls made
    for them already, charged to the first."""
    tally = tally if tally is not None else CallTally()
    adapter = rc.services.adapter(vendor, on_call=tally)
    for index, job in enumerate(jobs):
        if not _affordable(rc, vendor, jobs[index:]):
            # A list call that showed none of these jobs was still made for them.
            await rc.services.store.charge_calls(job.id, tally.take())
            break
        try:
            snapshot = await adapter.status(job.vendor_job_id or "")
        except VendorNotFoundError as exc:
            _observe_limits(rc, vendor, adapter)
            await _not_found(rc, adapter, job, exc, tally, witness)
            continue
        except VendorError as exc:
            _observe_limits(rc, vendor, adapter)
            await _record_failure(rc, job, exc, tally.take())
            continue
        _observe_limits(rc, vendor, adapter)
        witness.answered = True
        await _record(rc, job, snapshot, tally.take(), history)


async def _not_found(
    rc: Reconciler,
    adapter: VendorAdapter,
    job: JobRecord,
    exc: VendorNotFoundError,
    tally: CallTally,
    witness: KeyWitness,
) -> None:
    """The vendor answered 404 for the job: expire it, unless the key, not the job, is what
    the vendor does not know (see `KeyWitness`). Unless this pass has settled that already,
    one status call for another job of ours that the vendor knew tells the two apart."""
    store, vendor = rc.services.store, adapter.name
    if not witness.answered and witness.unknown is None:
        other = await store.known_job(vendor, besides=job.id)
        if other is not None:
            # Made now, even if it puts the pass's plan in debt: deferring it would spend the
            # job's own call again each time. The account's shared budget still gates it.
            rc.budgets[vendor].reserve(rc.now())
            try:
                await adapter.status(other.vendor_job_id or "")
            except VendorNotFoundError:
                witness.unknown = (job, other)
            except VendorError as unsettled:
                _observe_limits(rc, vendor, adapter)
                await _record_failure(rc, job, unsettled, tally.take())
                return
            else:
                witness.answered = True
            _observe_limits(rc, vendor, adapter)
    cost = tally.take()
    if witness.unknown is not None:
        first, known = witness.unknown
        log.warning(
            "vendor_knows_no_job_of_ours", vendor=vendor.value, job_id=job.id, known_job=known.id
        )
        if known.id == job.id:
            neither = f"this job, which it knew before, nor job {first.id} ({first.vendor_job_id})"
        else:
            neither = f"this job nor job {known.id} ({known.vendor_job_id}), which it knew before"
        # A finished job may have been deleted at the vendor since, as this one may have been.
        deleted = ", or both were deleted there" if known.state.is_terminal else ""
        reason = (
            f"the vendor knows neither {neither}: the API key may be another account's, or "
            f"the base URL not the vendor's{deleted} ({exc.message})"
        )
        await _record_failure(rc, job, VendorAuthError(vendor, reason, status=404), cost)
        return
    unchecked = "" if witness.answered else " (and no other job here to check the key with)"
    await store.end_job(
        job.id,
        JobState.EXPIRED,
        f"the vendor no longer knows this job: {exc}{unchecked}",
        vendor_calls=cost,
    )


async def check_job_now(rc: Reconciler, job_id: int) -> JobRecord:
    """Check one job at once (a forced check), whatever its plan. An expired job is asked
    about again (it runs once more, see `Store.record_action`); one that completed or failed
    is returned as it is."""
    store = rc.services.store
    if (await store.get_job(job_id)).state is JobState.EXPIRED:
        await store.record_action(job_id, "job.check_requested", {}, vendor_calls=0)
    job = await store.claim_job(job_id, owner=rc.owner, lease_s=LEASE_S)
    if job is not None:
        await _check_each(rc, job.vendor, [job], await _history(rc, job.vendor), KeyWitness())
    return await store.get_job(job_id)


async def check_vendor_now(rc: Reconciler, vendor: VendorName) -> list[JobRecord]:
    """Check every open job at the vendor at once (a forced check of them all), as passes
    do: one list call for many where the vendor has one. Returns them as they are now."""
    store = rc.services.store
    jobs = await store.request_vendor_checks(vendor)
    while await check_due_jobs(rc, vendor) == BATCH:
        pass
    return [await store.get_job(job.id) for job in jobs]


async def _history(rc: Reconciler, vendor: VendorName) -> DurationModel:
    """The vendor's durations as learned from its completed jobs in the event log."""
    past = await rc.services.store.durations(vendor)
    return DurationModel(PastJob(size, duration) for size, duration in past)


def _just_submitted(job: JobRecord) -> bool:
    return (
        job.input_rows is not None
        and job.last_checked_at is None
        and (job.last_callback_at is None)
    )


async def _plan_without_calling(rc: Reconciler, job: JobRecord, history: DurationModel) -> None:
    now = rc.now()
    plan = next_check(_base_view(job), now, rc.policies[job.vendor], history, rc.rng)
    # The first real call, whatever the plan, comes within the safety net of submission.
    await rc.services.store.plan_first_check(job, max(plan.at, now))


def _affordable(rc: Reconciler, vendor: VendorName, jobs: list[JobRecord]) -> bool:
    """Reserve one call from the vendor's budget; when it cannot be made now, the jobs wait
    (without a call) until it can."""
    now, budget = rc.now(), rc.budgets[vendor]
    # Reserve only a call made now: a token spent on a deferral is spent again when the
    # jobs come due, and the budget would never catch up.
    ready = budget.available_at(now)
    if ready <= now:
        budget.reserve(now)
        return True
    rc.deferred.append(([job.id for job in jobs], ready))
    return False


def _observe_limits(rc: Reconciler, vendor: VendorName, adapter: VendorAdapter) -> None:
    info = adapter.rate_limit
    if info is not None:
        rc.budgets[vendor].observe(rc.now(), info.remaining, info.reset)


async def _record(
    rc: Reconciler,
    job: JobRecord,
    snapshot: StatusSnapshot,
    cost: float,
    history: DurationModel,
) -> None:
    now = rc.now()
    state = snapshot.state if not job.state.is_terminal else job.state
    next_at: float | None = None
    # Polling found the end of a job whose callback never came: the callback is late (or
    # lost), whatever the plan said.
    late = job.expects_callback and job.last_callback_at is None and state.is_terminal
    if not state.is_terminal:
        view = _view(
            job,
            snapshot,
            now,
            await rc.services.store.progress_samples(job),
        )
        plan = next_check(
            view,
            now,
            rc.policies[job.vendor],
            history,
            rc.rng,
            budget_ready_at=rc.budgets[job.vendor].available_at(now),
        )
        if plan.reason is CheckReason.EXPIRED:
            await rc.services.store.end_job(
                job.id, JobState.EXPIRED, view.expiry_reason(), vendor_calls=cost
            )
            return
        next_at, late = plan.at, plan.late_webhook
    updated = await rc.services.store.record_check(job, CheckOutcome(snapshot, cost, next_at, late))
    if updated.state is not job.state:
        log.info("job_state_changed", job_id=job.id, vendor=job.vendor.value, state=updated.state)


async def _record_failure(rc: Reconciler, job: JobRecord, exc: VendorError, cost: float) -> None:
    """A check that failed: retried later, unless the job has outlived its maximum age."""
    store, now = rc.services.store, rc.now()
    if isinstance(exc, VendorBudgetSpentError):
        # Other processes, fetches and submissions draw on the account too: this pass planned
        # a call the shared budget had no place for. The job waits, with no failure.
        until = now + (exc.retry_after or 0.0)
        log.info("status_check_deferred", job_id=job.id, vendor=job.vendor.value, until=until)
        rc.budgets[job.vendor].block_until(until)
        await store.charge_calls(job.id, cost)
        await store.defer_checks([job.id], until)
        return
    policy, view = rc.policies[job.vendor], _base_view(job)
    if now >= view.expires_at(policy.max_age):
        await store.end_job(
            job.id,
            JobState.EXPIRED,
            f"{view.expiry_reason()}, and its last check failed: {exc}",
            vendor_calls=cost,
        )
        return
    notice: Outcome | None = None
    if isinstance(exc, VendorAuthError | VendorPaymentError):
        # Retrying will not help until someone fixes the key or the credits; look again at
        # the safety-net interval rather than hammering the vendor.
        retry_at = now + policy.max_interval
        notice = Outcome.CHECKS_REFUSED
    else:
        retry_after = exc.retry_after
        if retry_after is not None:
            rc.budgets[job.vendor].block_until(now + retry_after)
        retry_at = now + backoff(
            job.check_failures + 1, rc.rng, base=policy.backoff_base, retry_after=retry_after
        )
        # Unanswered for longer than any open job may go unchecked: the safety net is broken.
        if job.failing_since is not None and now - job.failing_since >= policy.max_interval:
            notice = Outcome.CHECKS_FAILING
    log.warning("status_check_failed", job_id=job.id, vendor=job.vendor.value, error=str(exc))
    await store.record_check_failure(
        job, str(exc), cost=cost, retry_at=retry_at, retry_after=exc.retry_after, notice=notice
    )


def _base_view(job: JobRecord) -> JobView:
    """The job as the policy sees it from its record alone, before any call."""
    return JobView(
        submitted_at=job.age_start,
        state=job.state,
        size=job.input_rows,
        expects_callback=job.expects_callback,
        paused_at=job.paused_at,
    )


def _view(
    job: JobRecord,
    snapshot: StatusSnapshot,
    now: float,
    samples: list[tuple[float, int, int]],
) -> JobView:
    """The job as the policy sees it right after this check."""
    state = snapshot.state if snapshot.state is not JobState.SUBMITTED else job.state
    paused_at, paused_seconds = job.pauses_after(state, now)
    if job.paused_at is not None and paused_at is None:
        samples = []  # counts from before the pause that just ended tell no rate
    # The start on a clock that stops while the job is paused, so counts over time are a rate.
    started = job.run_start + paused_seconds
    progress = [ProgressSample(started, 0, samples[0][2])] if samples else []
    progress += [ProgressSample(at, done, total) for at, done, total in samples]
    if snapshot.done is not None and snapshot.total:
        progress.append(ProgressSample(now, snapshot.done, snapshot.total))
    return JobView(
        submitted_at=started,
        state=state,
        size=snapshot.total or job.progress_total or job.input_rows,
        samples=tuple(progress),
        last_check_at=now,
        expects_callback=job.expects_callback,
        callback_at=job.last_callback_at,
        paused_at=paused_at,
    )
