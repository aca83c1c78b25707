"""A paused job waits on a person (credits to top up, a resume to send), not on the vendor: its
pause counts towards neither its age nor the durations learned from it, and a person has the
whole maximum age from the pause to resume it. Against the simulator on its manual clock,
eCore jobs paused through its control endpoint."""

from __future__ import annotations

import json
import time

import pytest_asyncio

from enrichwatch import serialize
from enrichwatch.actions import resume
from enrichwatch.config import load_settings
from enrichwatch.models import JobState, VendorName
from enrichwatch.notify.message import build_message
from enrichwatch.runtime import open_services
from enrichwatch.sim import SimConfig, SimServer
from enrichwatch.store.notifications import Outcome
from receiver import serving
from receiver.dashboard.auth import COOKIE
from receiver.dashboard.render import iso
from reconciler import Reconciler, reconcile_once
from tests.conftest import API_TOKEN, notified
from tests.settling import next_due
from tests.test_results_and_actions import AUTH, World, _cli_env, get, step_until

LOGGED_IN = {"Cookie": f"{COOKIE}={API_TOKEN}"}

HOUR = 3600.0
MAX_AGE = 6 * HOUR


@pytest_asyncio.fixture
async def world(tmp_path):
    """As `tests.test_results_and_actions.world`, with a maximum job age of six hours and
    eCore jobs that take hours, not a minute."""
    async with SimServer(SimConfig(seed=17, start_time=time.time())) as sim:
        db = tmp_path / "paused.db"
        settings = load_settings(
            db=db, api_token=API_TOKEN, max_job_age=MAX_AGE, **sim.vendor_settings()
        )
        async with (
            open_services(settings, clock=sim.clock.now) as services,
            serving(services, "127.0.0.1", 0) as url,
        ):
            yield World(sim, services, url, Reconciler(services), _cli_env(sim, db))


async def reached(world: World, job_id: int, state: JobState):
    """Reconcile, the clock moving on, until the job is in `state`; the job then."""

    async def in_state() -> bool:
        return (await world.job(job_id)).state is state

    await step_until(world, in_state)
    return await world.job(job_id)


async def paused_job(world: World, *, hours_of_work: float, after: float):
    """An eCore job of about `hours_of_work` hours, paused `after` seconds into its run and
    found paused."""
    world.sim.config.ecore.profile.base_seconds = hours_of_work * HOUR
    job = await world.submit(VendorName.ECORE)

    async def running_long_enough() -> bool:
        return world.sim.clock.now() - job.created_at >= after

    await step_until(world, running_long_enough)
    assert (await world.job(job.id)).state is JobState.RUNNING
    await world.services.adapter(VendorName.ECORE).pause(job.vendor_job_id or "")
    return await reached(world, job.id, JobState.NEEDS_ACTION)


def notice(world: World, job, outcome: Outcome, at: float) -> str:
    """What the job's notice of `outcome` tells a person to do (its `problem`)."""
    message = build_message(
        job,
        outcome,
        base_url=world.url,
        at=at,
        detail=None,
        trouble=None,
        max_job_age=MAX_AGE,
    )
    assert message.problem is not None
    return message.problem


async def wait_until(world: World, when: float) -> None:
    """Reconcile as the service would, the clock moving on to each check due before `when`,
    then to `when`."""
    while (due := next_due(world.db)) is not None and due < when:
        await world.sim.advance_to(due)
        await reconcile_once(world.rc)
    await world.sim.advance_to(when)


async def test_a_job_resumed_late_runs_to_its_end_and_its_pause_is_not_its_duration(world):
    """Paused 5.5 hours after a minute of work, then resumed: its run is older than the
    maximum age long before the vendor finishes it, yet it completes, and the duration the
    policy learns from it is its hour or so of work, not the seven hours it took."""
    job = await paused_job(world, hours_of_work=1, after=60)
    assert job.paused_at is not None
    await wait_until(world, job.paused_at + 5.5 * HOUR)
    assert (await world.job(job.id)).state is JobState.NEEDS_ACTION

    await resume(world.services, job.id)
    done = await reached(world, job.id, JobState.COMPLETED)
    assert done.finished_at is not None
    assert done.finished_at - done.created_at > MAX_AGE
    assert done.paused_at is None
    assert (
        5.5 * HOUR
        <= done.paused_seconds
        < 5.5 * HOUR + 2 * world.rc.policies[VendorName.ECORE].max_interval
    )
    assert "expired" not in notified(world.db, job.id)
    ((size, duration),) = await world.services.store.durations(VendorName.ECORE)
    assert size == 35
    assert duration < 3 * HOUR


async def test_a_person_has_the_whole_maximum_age_after_the_pause_to_resume(world):
    """Paused five hours into its run: it is still waiting 5.9 hours later (its run eleven
    hours old), is expired once the pause has lasted the maximum age, and says why. The
    notice of the pause names the last moment to resume it."""
    job = await paused_job(world, hours_of_work=20, after=5 * HOUR)
    assert job.paused_at is not None
    deadline = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(job.paused_at + MAX_AGE))
    problem = notice(world, job, Outcome.NEEDS_ACTION, job.paused_at)
    assert f"Not resumed by {deadline}, it expires." in problem

    await wait_until(world, job.paused_at + 5.9 * HOUR)
    assert (await world.job(job.id)).state is JobState.NEEDS_ACTION
    status, _, body = await get(world, f"/api/jobs/{job.id}", AUTH)
    assert (status, json.loads(body)["paused_at"]) == (200, serialize.iso(job.paused_at))
    _, _, page = await get(world, f"/jobs/{job.id}", LOGGED_IN)
    assert (
        f'<dt>Paused since</dt><dd data-paused-at><time datetime="{iso(job.paused_at)}">'
    ) in page.decode()

    gone = await reached(world, job.id, JobState.EXPIRED)
    assert gone.finished_at is not None
    assert MAX_AGE <= gone.finished_at - job.paused_at < MAX_AGE + 1
    assert gone.error == "paused for longer than the maximum age, and not resumed"
    assert notified(world.db, job.id)[-1] == "expired"
    _, _, page = await get(world, f"/jobs/{job.id}", LOGGED_IN)
    assert "Paused since" not in page.decode()


async def test_a_resumed_job_is_noticed_finishing_by_its_rate_of_work_not_the_safety_net(world):
    """An influencers.club batch paused for credits halfway, for five hours, then resumed:
    its progress counts from before the pause are no rate of work. Read as one, the pause
    made hours of slow work, and the end was noticed by the safety net 36 minutes late, four
    times the detection target of its working time; now it is noticed about on target (the
    bound leaves room for the policy's 1 % of misses)."""
    profile = world.sim.config.influencers_club.profile
    profile.base_seconds, profile.credit_pause_rate, profile.credit_pause_at = 3 * HOUR, 1.0, 0.5
    job = await world.submit(VendorName.INFLUENCERS_CLUB)

    paused_at = (await reached(world, job.id, JobState.NEEDS_ACTION)).paused_at
    assert paused_at is not None
    await wait_until(world, paused_at + 5 * HOUR)
    await resume(world.services, job.id)
    done = await reached(world, job.id, JobState.COMPLETED)
    assert done.finished_at is not None
    ended = world.sim.influencers_club.batches[job.vendor_job_id or ""].job.terminal_at()
    assert ended is not None
    working = ended - done.created_at - done.paused_seconds
    assert working < 4 * HOUR
    policy = world.rc.policies[VendorName.INFLUENCERS_CLUB]
    assert 0 <= done.finished_at - ended <= 2 * policy.detection_target(working)
