"""Fetching results: stream them page by page into the `results` table, resuming at the first
position not yet stored, so a restarted fetch neither duplicates nor skips a record."""

from __future__ import annotations

import structlog

from enrichwatch.errors import (
    FetchSupersededError,
    VendorDownloadExpiredError,
    VendorError,
    VendorTransientError,
)
from enrichwatch.polling import backoff
from enrichwatch.runtime import CallTally
from enrichwatch.store import WorkItem
from enrichwatch.store.checks import FETCH_WORK
from enrichwatch.vendors.base import StatusSnapshot
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
    try:
        return await _fetch_item(rc, item)
    except FetchSupersededError:
        # A reprocess reopened the job meanwhile; its new run brings a fetch of its own.
        log.info("results_fetch_superseded", job_id=item.job_id, item_id=item.id)
        return False


async def _fetch_item(rc: Reconciler, item: WorkItem) -> bool:
    store = rc.services.store
    assert item.job_id is not None
    job = await store.get_job(item.job_id)
    tally = CallTally()
    adapter = rc.services.adapter(job.vendor, on_call=tally)
    # The status that found the results, with their links; a retry asks afresh.
    known = item.payload.get("snapshot") if item.attempts == 1 else None
    structlog.contextvars.bind_contextvars(job_id=job.id, vendor=job.vendor.value)
    try:
        for refresh in range(LINK_REFRESHES + 1):
            start = await store.start_fetch(job.id, item_id=item.id)
            try:
                if known is not None and refresh == 0:
                    snapshot = StatusSnapshot.model_validate(known)
                else:
                    snapshot = await adapter.status(job.vendor_job_id or "")
                async for page in adapter.results(snapshot, start=start):
                    await store.store_results(job.id, page, item_id=item.id)
                break
            except VendorDownloadExpiredError:
                if refresh == LINK_REFRESHES:
                    raise
                log.info("download_links_expired")
    except VendorTransientError as exc:
        if item.attempts >= MAX_ATTEMPTS:
            await store.fail_fetch(item.id, job.id, f"gave up after {item.attempts} tries: {exc}")
            return False
        delay = backoff(item.attempts, rc.rng, base=10.0, cap=900.0, retry_after=exc.retry_after)
        log.warning("results_fetch_retry", error=str(exc), in_s=round(delay, 1))
        await store.retry_fetch(item.id, job.id, due_at=rc.now() + delay, error=str(exc))
        return False
    except VendorError as exc:
        log.error("results_fetch_failed", error=str(exc))
        await store.fail_fetch(item.id, job.id, str(exc))
        return False
    finally:
        structlog.contextvars.unbind_contextvars("job_id", "vendor")
        await store.charge_calls(job.id, tally.count)
    done = await store.finish_fetch(job.id, item.id)
    log.info("results_stored", job_id=job.id, vendor=job.vendor.value, count=done.results_count)
    return True
