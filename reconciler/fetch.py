"""Fetching results: stream them page by page into the `results` table, resuming at the first
position not yet stored, so a restarted fetch neither duplicates nor skips a record."""

from __future__ import annotations

import structlog

from enrichwatch.errors import (
    FetchSupersededError,
    VendorBudgetSpentError,
    VendorDownloadExpiredError,
    VendorError,
    VendorTransientError,
)
from enrichwatch.models import JobState
from enrichwatch.polling import backoff
from enrichwatch.runtime import CallTally
from enrichwatch.store import JobRecord, WorkItem
from enrichwatch.store.fetches import FETCH_WORK
from enrichwatch.vendors.base import StatusSnapshot, VendorAdapter
from reconciler.state import Reconciler

log = structlog.get_logger("enrichwatch.reconciler")

LEASE_S = 900.0
BATCH = 5
MAX_ATTEMPTS = 6
"""Transient failures are retried with backoff this many times, then the fetch fails visibly."""
LINK_REFRESHES = 2
"""Expired download links are renewed (by re-reading the status) this many times per attempt."""


async def fetch_due_results(rc: Reconciler) -> int:
    """One pass over due fetches; returns how many finished."""
    finished = 0
    for item in await rc.services.store.claim_work(
        FETCH_WORK, owner=rc.owner, lease_s=LEASE_S, limit=BATCH
    ):
        if await _fetch(rc, item):
            finished += 1
    return finished


async def _fetch(rc: Reconciler, item: WorkItem) -> bool:
    """One fetch, whatever becomes of it: an error nobody foresaw is retried like a transient
    one and then fails visibly, rather than leaving this and the rest of the pass's claimed
    fetches to wait out their leases, again and again."""
    assert item.job_id is not None
    try:
        return await _fetch_item(rc, item)
    except FetchSupersededError:
        # A reprocess reopened the job meanwhile; its new run brings a fetch of its own.
        log.info("results_fetch_superseded", job_id=item.job_id, item_id=item.id)
    except VendorBudgetSpentError as exc:
        # Nothing was sent for want of a place in the account's budget: not a try.
        until = rc.now() + (exc.retry_after or 0.0)
        log.info("results_fetch_deferred", job_id=item.job_id, until=until)
        await rc.services.store.postpone_work(item.id, due_at=until)
    except VendorTransientError as exc:
        await _retry_or_fail(rc, item, item.job_id, str(exc), retry_after=exc.retry_after)
    except Exception as exc:
        log.exception("results_fetch_crashed", job_id=item.job_id, item_id=item.id)
        await _retry_or_fail(rc, item, item.job_id, f"{type(exc).__name__}: {exc}")
    return False


async def _retry_or_fail(
    rc: Reconciler, item: WorkItem, job_id: int, error: str, *, retry_after: float | None = None
) -> None:
    store = rc.services.store
    try:
        if item.attempts >= MAX_ATTEMPTS:
            await store.fail_fetch(item.id, job_id, f"gave up after {item.attempts} tries: {error}")
            return
        delay = backoff(item.attempts, rc.rng, base=10.0, cap=900.0, retry_after=retry_after)
        log.warning("results_fetch_retry", job_id=job_id, error=error, in_s=round(delay, 1))
        await store.retry_fetch(item.id, job_id, due_at=rc.now() + delay, error=error)
    except FetchSupersededError:
        log.info("results_fetch_superseded", job_id=job_id, item_id=item.id)


async def _fetch_item(rc: Reconciler, item: WorkItem) -> bool:
    store = rc.services.store
    assert item.job_id is not None
    job = await store.get_job(item.job_id)
    tally = CallTally()
    adapter = rc.services.adapter(job.vendor, on_call=tally)
    structlog.contextvars.bind_contextvars(job_id=job.id, vendor=job.vendor.value)
    try:
        try:
            await _store_pages(rc, item, job, adapter)
        except VendorError as exc:
            if isinstance(exc, VendorBudgetSpentError):
                raise
            if await _results_withdrawn(adapter, job, item):
                log.info("results_fetch_withdrawn", reason=str(exc))
                await store.withdraw_fetch(item.id, job.id, str(exc))
                return False
            if isinstance(exc, VendorTransientError):
                raise
            log.error("results_fetch_failed", error=str(exc))
            # Charged first: the failure's notice tells the calls the job cost, as it was.
            await store.charge_calls(job.id, tally.take())
            await store.fail_fetch(item.id, job.id, str(exc))
            return False
    finally:
        structlog.contextvars.unbind_contextvars("job_id", "vendor")
        await store.charge_calls(job.id, tally.take())
    done = await store.finish_fetch(job.id, item.id)
    log.info("results_stored", job_id=job.id, vendor=job.vendor.value, count=done.results_count)
    return True


async def _store_pages(
    rc: Reconciler, item: WorkItem, job: JobRecord, adapter: VendorAdapter
) -> None:
    """Every page from the first position not yet stored, renewing expired download links."""
    store = rc.services.store
    # The status that found the results, with their links; a retry asks afresh.
    known = item.payload.get("snapshot") if item.attempts == 1 else None
    for refresh in range(LINK_REFRESHES + 1):
        start = await store.start_fetch(job.id, item_id=item.id)
        try:
            if known is not None and refresh == 0:
                snapshot = StatusSnapshot.model_validate(known)
            else:
                snapshot = await adapter.status(job.vendor_job_id or "")
            async for page in adapter.results(snapshot, start=start):
                await store.store_results(job.id, page, item_id=item.id, lease_s=LEASE_S)
            return
        except VendorDownloadExpiredError:
            if refresh == LINK_REFRESHES:
                raise
            log.info("download_links_expired")


async def _results_withdrawn(adapter: VendorAdapter, job: JobRecord, item: WorkItem) -> bool:
    """Whether a paused job's partial set is no longer served because the job runs again
    (eCore answers "not ready" then, however that answer is classed), which the vendor's
    status confirms. Such a fetch is moot rather than failed or worth retrying: the job's
    next state brings a fetch of its own."""
    found = item.payload.get("snapshot")
    if not isinstance(found, dict) or found.get("state") != JobState.NEEDS_ACTION.value:
        return False
    try:
        now = await adapter.status(job.vendor_job_id or "")
    except VendorTransientError:
        raise  # the fetch is retried, and the question asked again
    except VendorError:
        return False
    return not now.results_available
