"""An expired job is one enrichwatch gave up asking about, not one the vendor ended: a person
who asks again (a check, or a resume of one that expired paused) watches it once more, with
a new maximum age from then, and its results are fetched when it finishes. Against the
simulator on its manual clock, eCore jobs that outlive a six-hour maximum age."""

from __future__ import annotations

from enrichwatch.actions import resume
from enrichwatch.models import JobState, VendorName
from enrichwatch.store.notifications import Outcome
from reconciler import check_job_now
from tests import test_paused_jobs
from tests.conftest import notified
from tests.test_paused_jobs import HOUR, MAX_AGE, notice, paused_job, reached
from tests.test_results_and_actions import World, post, stored

world = test_paused_jobs.world

ECORE_ROWS = 35
"""Rows of the eCore input `World.submit` sends: one result each."""


async def revivals(world: World, job_id: int) -> list[dict[str, object]]:
    """The job's `job.state_changed` events out of `expired`."""
    return [
        event.payload
        for event in await world.services.store.list_events(job_id)
        if event.type == "job.state_changed" and event.payload["from"] == JobState.EXPIRED
    ]


async def expired_running(world: World, *, hours_of_work: float):
    """An eCore job of `hours_of_work` hours, expired at six hours while still running."""
    world.sim.config.ecore.profile.base_seconds = hours_of_work * HOUR
    job = await world.submit(VendorName.ECORE)
    gone = await reached(world, job.id, JobState.EXPIRED)
    assert gone.error == "older than the maximum age"
    return gone


def expiry_notice(world: World, job) -> str:
    return notice(world, job, Outcome.EXPIRED, job.finished_at)


async def test_a_job_expired_waiting_for_a_resume_is_resumed_and_completes(world):
    """Paused a minute into an hour of work and left for longer than the maximum age: its
    notice says how to bring it back; the resume reaches the vendor, the job runs again and
    completes with every result stored, and people hear it completed."""
    paused = await paused_job(world, hours_of_work=1, after=60)
    gone = await reached(world, paused.id, JobState.EXPIRED)
    notice = expiry_notice(world, gone)
    assert f"`enrichwatch check {gone.id}`" in notice
    assert f"`enrichwatch resume {gone.id}` resumes it." in notice

    again = await resume(world.services, gone.id)

    assert again.state is JobState.RUNNING
    assert again.finished_at is None
    assert again.error is None
    assert await revivals(world, gone.id) == [
        {"from": "expired", "to": "running", "reason": "resume"}
    ]
    done = await reached(world, gone.id, JobState.COMPLETED)
    assert done.results_state == "stored"
    assert done.results_count == ECORE_ROWS
    assert [row["position"] for row in stored(world.db, gone.id)] == list(range(ECORE_ROWS))
    assert notified(world.db, gone.id)[-2:] == ["expired", "completed"]


async def test_a_check_of_an_expired_job_the_vendor_has_since_finished_fetches_its_results(
    world,
):
    """Eight hours of work against a six-hour maximum age: expired while running. Once the
    vendor has finished it, the API's check brings it back and its results are stored."""
    gone = await expired_running(world, hours_of_work=8)
    notice = expiry_notice(world, gone)
    assert f"`enrichwatch check {gone.id}`" in notice
    assert "resume" not in notice
    await world.sim.advance(4 * HOUR)

    status, body = await post(world, f"/api/jobs/{gone.id}/check")

    assert (status, body["state"]) == (202, "running")
    done = await reached(world, gone.id, JobState.COMPLETED)
    assert (done.results_state, done.results_count) == ("stored", ECORE_ROWS)
    assert await revivals(world, gone.id) == [
        {"from": "expired", "to": "running", "reason": "check"}
    ]


async def test_an_expired_job_still_running_is_watched_for_a_new_maximum_age(world):
    """The check `enrichwatch check` makes: the vendor says it is still running, so it is
    open again, planned as any running job, and expires only a maximum age later."""
    gone = await expired_running(world, hours_of_work=30)
    asked_at = world.sim.clock.now()

    job = await check_job_now(world.rc, gone.id)

    assert job.state is JobState.RUNNING
    assert job.last_checked_at == asked_at
    assert job.next_check_at is not None
    assert job.next_check_at > asked_at
    again = await reached(world, gone.id, JobState.EXPIRED)
    assert again.finished_at is not None
    assert MAX_AGE <= again.finished_at - asked_at < MAX_AGE + HOUR


async def test_a_job_that_completed_is_neither_checked_nor_resumed_again(world):
    """Only expiry is undone by asking again: a completed job stays as it is."""
    world.sim.config.ecore.profile.base_seconds = 60
    job = await world.submit(VendorName.ECORE)
    done = await reached(world, job.id, JobState.COMPLETED)
    polled = world.sim.stats.count("ecore")

    status, body = await post(world, f"/api/jobs/{job.id}/check")
    checked = await check_job_now(world.rc, job.id)

    assert (status, body["state"]) == (200, "completed")
    assert checked.state is JobState.COMPLETED
    assert world.sim.stats.count("ecore") == polled
    status, body = await post(world, f"/api/jobs/{job.id}/resume")
    assert status == 409
    assert (await world.job(job.id)).updated_at == done.updated_at
