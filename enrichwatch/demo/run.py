"""The demo from start to end: the simulator and the service in this process, one sample
batch submitted to each vendor, the jobs watched until every result is stored and every
notification sent, then (with `keep_running`) the service left up until stopped.

The service itself is handed in by the CLI, the one place that composes the receiver and
the reconciler; this module only needs something that serves `Services` and says where.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

from enrichwatch.config import Settings
from enrichwatch.demo.samples import sample_batches
from enrichwatch.demo.view import DemoView
from enrichwatch.demo.world import LOST_CALLBACK_VENDOR, aim_at_simulator, demo_sim_config
from enrichwatch.models import EventSource, JobState
from enrichwatch.runtime import Services, open_services
from enrichwatch.sim import SimServer
from enrichwatch.store import EventRecord, JobRecord
from enrichwatch.submission import submit_batch

ServiceRunner = Callable[[Services], AbstractAsyncContextManager[str]]
"""Serves the receiver and runs the reconciler until the block exits; yields the URL."""

REFRESH_S = 0.2


@dataclass(frozen=True)
class DemoOutcome:
    jobs: list[JobRecord]
    url: str
    db: Path
    api_token: str | None
    """Generated for this run; None when the settings give one."""
    timed_out: bool = False
    interrupted: bool = False

    @property
    def succeeded(self) -> bool:
        """Every job completed with its results stored."""
        return bool(self.jobs) and all(
            job.state is JobState.COMPLETED and job.results_state == "stored" for job in self.jobs
        )


async def run_demo(
    settings: Settings,
    *,
    service: ServiceRunner,
    view: DemoView,
    stop: asyncio.Event,
    give_up_after: float,
    keep_running: bool = False,
    on_finished: Callable[[DemoOutcome], None] | None = None,
) -> DemoOutcome:
    """Run the demo; `stop` ends it early (or ends `keep_running`); `on_finished` hears the
    outcome as soon as the jobs are done, before the service is left running."""
    async with SimServer(demo_sim_config()) as sim:
        settings = aim_at_simulator(settings, sim)
        async with (
            open_services(settings, clock=sim.clock.now, issue_api_token=True) as services,
            service(services) as url,
        ):
            view.say(
                f"vendor simulator at {sim.url} (all five vendor APIs, clock x{sim.clock.speed:g})"
            )
            view.say(f"enrichwatch at {url}, database {settings.db}")
            view.say(
                f"{LOST_CALLBACK_VENDOR.value}'s callback will be lost on purpose: "
                "watch the late-callback fallback find its job"
            )
            try:
                jobs = await _submit_samples(services, url)
                current, timed_out = await _watch(services, jobs, view, stop, give_up_after)
            finally:
                view.close()
            outcome = DemoOutcome(
                jobs=current,
                url=url,
                db=settings.db,
                api_token=services.generated_api_token,
                timed_out=timed_out,
                interrupted=stop.is_set(),
            )
            if on_finished is not None:
                on_finished(outcome)
            if keep_running and not outcome.interrupted:
                await stop.wait()
            return outcome


async def _submit_samples(services: Services, url: str) -> list[JobRecord]:
    jobs: list[JobRecord] = []
    for batch in sample_batches():
        submitted = await submit_batch(
            services, batch.vendor, batch.request(), public_url=url, source=EventSource.API
        )
        jobs += submitted.jobs
    return jobs


async def _watch(
    services: Services,
    jobs: list[JobRecord],
    view: DemoView,
    stop: asyncio.Event,
    give_up_after: float,
) -> tuple[list[JobRecord], bool]:
    """Refresh the view until every job is finished with nothing left to do for it (results
    fetched, notifications sent), `stop` is set, or `give_up_after` real seconds pass."""
    store = services.store
    ids = [job.id for job in jobs]
    after = dict.fromkeys(ids, 0)
    deadline = time.monotonic() + give_up_after
    while True:
        current = [await store.get_job(job_id) for job_id in ids]
        settled = all(_settled(job) for job in current) and await store.pending_work(ids) == 0
        fresh: list[EventRecord] = []
        for job_id in ids:
            found = await store.list_events(job_id, after_seq=after[job_id])
            if found:
                after[job_id] = found[-1].seq
            fresh += found
        view.refresh(current, sorted(fresh, key=lambda event: event.seq))
        if settled or stop.is_set():
            return current, False
        if time.monotonic() > deadline:
            return current, True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), REFRESH_S)


def _settled(job: JobRecord) -> bool:
    return job.state.is_terminal and job.results_state not in ("pending", "fetching")
