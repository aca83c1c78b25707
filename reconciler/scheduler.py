"""The reconciler's loop, run by APScheduler. The schedule only says *when to look*; what is
due lives in the database, so a restart (or a second reconciler) loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from enrichwatch.runtime import Services
from reconciler.checks import check_due_jobs
from reconciler.fetch import fetch_due_results
from reconciler.state import Reconciler
from reconciler.submissions import send_queued_submissions

log = structlog.get_logger("enrichwatch.reconciler")

RECONCILE_JOB = "reconcile"
SWEEP_JOB = "safety_sweep"
SWEEP_INTERVAL_S = 3600.0


async def reconcile_once(rc: Reconciler) -> None:
    """One pass: send held-back parts, check due jobs, fetch due results."""
    await send_queued_submissions(rc.services, rc.owner)
    await check_due_jobs(rc)
    await fetch_due_results(rc)


class _Loop:
    """Runs passes one at a time (the vendors' budgets are shared state) and lets a stop wait
    for the pass in flight."""

    def __init__(self, rc: Reconciler) -> None:
        self.rc = rc
        self.lock = asyncio.Lock()

    async def run_pass(self) -> None:
        async with self.lock:
            structlog.contextvars.clear_contextvars()
            try:
                await reconcile_once(self.rc)
            except Exception:
                # One bad pass must not stop the schedule; the next pass starts afresh.
                log.exception("reconcile_pass_failed")

    async def sweep(self) -> None:
        """The slow safety net: any open job unchecked for longer than its vendor's maximum
        interval is made due, whatever its plan says."""
        count = await self.rc.services.store.make_stale_jobs_due(
            {vendor: policy.max_interval for vendor, policy in self.rc.policies.items()}
        )
        if count:
            log.info("safety_sweep", jobs=count)


@asynccontextmanager
async def running(services: Services, *, rc: Reconciler | None = None) -> AsyncIterator[Reconciler]:
    """Run the reconciler until the block exits. At start every open job is checked once."""
    rc = rc or Reconciler(services)
    loop = _Loop(rc)
    await services.store.make_open_jobs_due()
    scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=UTC)
    common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
    scheduler.add_job(
        loop.run_pass,
        "interval",
        seconds=services.settings.work_interval,
        id=RECONCILE_JOB,
        next_run_time=datetime.now(UTC),
        **common,
    )
    scheduler.add_job(loop.sweep, "interval", seconds=SWEEP_INTERVAL_S, id=SWEEP_JOB, **common)
    scheduler.start()
    wake = asyncio.create_task(_wake_on_callbacks(services, scheduler), name="reconciler-wake")
    try:
        yield rc
    finally:
        wake.cancel()
        scheduler.shutdown(wait=False)
        with contextlib.suppress(TimeoutError):
            # Let the pass in flight finish its current step; the database keeps the rest.
            await asyncio.wait_for(loop.lock.acquire(), services.settings.shutdown_timeout)
        await asyncio.gather(wake, return_exceptions=True)


async def _wake_on_callbacks(services: Services, scheduler: AsyncIOScheduler) -> None:
    """A callback made a job due: run a pass now instead of at the next tick."""
    while True:
        await services.due_now.wait()
        services.due_now.clear()
        scheduler.modify_job(RECONCILE_JOB, next_run_time=datetime.now(UTC))
