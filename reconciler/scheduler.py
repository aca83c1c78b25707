"""The reconciler's loop. APScheduler only says *when to look*; what is due lives in the
database, so a restart (or a second reconciler) loses nothing.

Lanes run side by side, each one pass at a time: held-back submissions, status checks (one lane
per vendor), result fetches and notifications. A fetch can take minutes and a vendor's API can
hang for the length of an HTTP timeout, so nothing waits for either: a job a callback made due
is checked at once while a large result file downloads or another vendor keeps its answer. A
look asked for while a lane is busy is not lost: the lane runs again as soon as its pass
ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from enrichwatch.errors import StoreUnavailableError
from enrichwatch.models import VendorName
from enrichwatch.runtime import Services
from enrichwatch.store import Store
from enrichwatch.store.fetches import FETCH_WORK
from enrichwatch.store.holders import LeaseHolder, clear_gone_holders, gone_holders
from enrichwatch.store.notifications import NOTIFY_WORK
from enrichwatch.store.submissions import SUBMIT_WORK
from reconciler.checks import check_due_jobs
from reconciler.dispatch import dispatch_due_notifications
from reconciler.fetch import fetch_due_results
from reconciler.state import Reconciler
from reconciler.submissions import send_queued_submissions

log = structlog.get_logger("enrichwatch.reconciler")

RECONCILE_JOB = "reconcile"
SWEEP_JOB = "safety_sweep"
SWEEP_INTERVAL_S = 3600.0
RECLAIM_JOB = "reclaim_gone_holders"
RECLAIM_MIN_INTERVAL_S = 1.0
WATCH_JOB = "watch_due"
WATCH_INTERVAL_S = 1.0


async def reconcile_once(rc: Reconciler) -> None:
    """One pass: send held-back parts, check due jobs, fetch due results, send due
    notifications."""
    await send_queued_submissions(rc.services, rc.owner)
    await check_due_jobs(rc)
    await fetch_due_results(rc)
    await dispatch_due_notifications(rc)


class _Lane:
    """Runs one kind of pass, one at a time, whenever `wanted` is set; setting it during a
    pass makes another pass follow that one."""

    def __init__(
        self, name: str, work: Callable[[], Awaitable[object]], wanted: asyncio.Event
    ) -> None:
        self.name = name
        self.work = work
        self.wanted = wanted
        self.busy = asyncio.Lock()

    async def run_forever(self) -> None:
        while True:
            await self.wanted.wait()
            self.wanted.clear()
            async with self.busy:
                structlog.contextvars.clear_contextvars()
                try:
                    await self.work()
                except StoreUnavailableError as exc:
                    # The database could not take a write (its lock held elsewhere, a full
                    # disk): what the pass did not record, a later pass does again (leases
                    # and level-triggered checks see to that); a traceback would add nothing.
                    log.error("reconcile_pass_failed", lane=self.name, error=str(exc))
                except Exception:
                    # One bad pass must not stop the lane; the next pass starts afresh.
                    log.exception("reconcile_pass_failed", lane=self.name)


@asynccontextmanager
async def running(services: Services, *, rc: Reconciler | None = None) -> AsyncIterator[Reconciler]:
    """Run the reconciler until the block exits. At start every open job is checked once;
    work a killed reconciler held (a results fetch under way) is taken up at once, at start
    or while running; a clean stop gives back what it held."""
    rc = rc or Reconciler(services)
    holder = LeaseHolder.acquire(services.store.path, rc.owner)
    try:
        await take_over(services.store)
        async with _lanes_running(services, rc):
            yield rc
        await _give_back(services.store, rc.owner)
    finally:
        holder.release()


async def _give_back(store: Store, owner: str) -> None:
    """On a clean stop, free what the passes cut short still hold: another reconciler
    running on the database takes it up on its next look, rather than when the leases
    lapse (minutes), which only a starting reconciler would not wait for."""
    jobs, items = await store.release_leases({owner})
    if jobs or items:
        log.info("leases_given_back", jobs=jobs, work_items=items)


async def take_over(store: Store) -> None:
    """Free what holders that are gone had leased (a killed predecessor's check or fetch),
    never a running one's, then make every open job due for the check after start-up. The
    files of gone holders no lease names are cleared too."""
    await _free_gone_holders(store)
    clear_gone_holders(store.path)
    await store.make_open_jobs_due()


async def _free_gone_holders(store: Store) -> bool:
    """Free the leases of holders that are gone; whether there were any. Done at start, and
    again while running: a reconciler killed beside this one, and not restarted, would
    otherwise hold its jobs until its leases lapse (minutes), callbacks or not."""
    gone = gone_holders(store.path, await store.lease_holders())
    jobs, items = await store.release_leases(gone)
    if jobs or items:
        log.info("leases_released", holders=sorted(gone), jobs=jobs, work_items=items)
    return bool(jobs or items)


@asynccontextmanager
async def _lanes_running(services: Services, rc: Reconciler) -> AsyncIterator[None]:
    # Notifications are a lane of their own: a slow Slack or mail server holds up neither
    # checks nor fetches, and the outcomes those passes record are sent without waiting a tick.
    notifies = _Lane("notify", lambda: dispatch_due_notifications(rc), asyncio.Event())

    async def fetch() -> None:
        await fetch_due_results(rc)
        notifies.wanted.set()

    fetches = _Lane("fetch", fetch, asyncio.Event())

    def check(vendor: VendorName) -> Callable[[], Awaitable[None]]:
        async def work() -> None:
            await check_due_jobs(rc, vendor)
            fetches.wanted.set()  # results the checks found are fetched without waiting a tick
            notifies.wanted.set()

        return work

    submits = _Lane("submit", lambda: send_queued_submissions(services, rc.owner), asyncio.Event())
    checks = {
        vendor: _Lane(f"check-{vendor}", check(vendor), asyncio.Event()) for vendor in VendorName
    }
    lanes = (submits, *checks.values(), fetches, notifies)
    by_kind = {SUBMIT_WORK: submits, FETCH_WORK: fetches, NOTIFY_WORK: notifies}

    async def tick() -> None:
        for lane in lanes:
            lane.wanted.set()

    async def relay_due_now() -> None:
        """A callback or an operator's action sets `due_now` (in this process): every lane
        looks at once; one with nothing due spends a query."""
        while True:
            await services.due_now.wait()
            services.due_now.clear()
            await tick()

    async def sweep() -> None:
        """The slow safety net: any open job unchecked for longer than its vendor's maximum
        interval is made due, whatever its plan says."""
        count = await services.store.make_stale_jobs_due(
            {vendor: policy.max_interval for vendor, policy in rc.policies.items()}
        )
        if count:
            log.info("safety_sweep", jobs=count)
            for lane in checks.values():
                lane.wanted.set()

    async def watch() -> None:
        """A separate receiver or a CLI action makes work due in another process, where
        `due_now` does not reach: a cheap look every second finds it, so it waits a second
        rather than a work interval. Only the lanes with something due run."""
        due = await services.store.due_work()
        for vendor in due.vendors:
            checks[vendor].wanted.set()
        for kind in due.kinds:
            if kind in by_kind:
                by_kind[kind].wanted.set()

    async def reclaim() -> None:
        if await _free_gone_holders(services.store):
            await tick()

    tasks = [
        asyncio.create_task(lane.run_forever(), name=f"reconciler-{lane.name}") for lane in lanes
    ]
    tasks.append(asyncio.create_task(relay_due_now(), name="reconciler-due-now"))
    scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=UTC)
    common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
    scheduler.add_job(
        tick,
        "interval",
        seconds=services.settings.work_interval,
        id=RECONCILE_JOB,
        next_run_time=datetime.now(UTC),
        **common,
    )
    scheduler.add_job(sweep, "interval", seconds=SWEEP_INTERVAL_S, id=SWEEP_JOB, **common)
    scheduler.add_job(
        reclaim,
        "interval",
        seconds=max(services.settings.work_interval, RECLAIM_MIN_INTERVAL_S),
        id=RECLAIM_JOB,
        **common,
    )
    if services.settings.work_interval > WATCH_INTERVAL_S:
        scheduler.add_job(watch, "interval", seconds=WATCH_INTERVAL_S, id=WATCH_JOB, **common)
    scheduler.start()
    try:
        yield
    finally:
        scheduler.shutdown(wait=False)
        with contextlib.suppress(TimeoutError):
            # Let the passes in flight finish their current step; the database keeps the rest.
            await asyncio.wait_for(_idle(lanes), services.settings.shutdown_timeout)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _idle(lanes: tuple[_Lane, ...]) -> None:
    """Wait until no lane is in a pass, and keep them from starting another."""
    for lane in lanes:
        await lane.busy.acquire()
