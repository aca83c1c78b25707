"""What happens to a job around its vendor calls: a reprocess, an operator's request or a
callback while a status call is out (its answer held on the way back, `slow_after_answer`, so
it is what the vendor knew before the event), and a held-back part the vendor refuses later.
Against the simulator over real HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import time

from enrichwatch.config import load_settings
from enrichwatch.models import EventSource, JobState, VendorName
from enrichwatch.runtime import open_services
from enrichwatch.sim import SimConfig, SimServer
from enrichwatch.store.holders import gone_holders
from enrichwatch.store.submissions import SUBMIT_WORK
from enrichwatch.submission import submit_batch
from enrichwatch.vendors.base import SubmitRequest
from reconciler import Reconciler, check_job_now
from reconciler.checks import check_due_jobs
from reconciler.fetch import fetch_due_results
from reconciler.submissions import (
    SEND_GIVE_UP_S,
    send_queued_submissions,
    settle_interrupted_sends,
)
from tests.conftest import API_TOKEN, notified, snapshot
from tests.settling import settle
from tests.test_reconciler_fixes import settles_with_every_result, until
from tests.test_results_and_actions import INPUTS, post, step_until, stored, world  # noqa: F401 (a fixture)

REPROMPT_STATUS = "GET /v1/{org}/place_enrichment/batches/{id}"
ECORE_STATUS = "GET /api/v1/enrichment/status/{id}/"
ECORE_RESULT = "GET /api/v1/enrichment/result/{id}/"
CRUSTDATA_STATUS = "GET /batch/{id}"


async def held_check(world, vendor: VendorName, endpoint: str, job_id: int, **fault):  # noqa: F811
    """A check of the job whose answer is made at once and held 1.5 s on its way back."""
    world.sim.set_fault(
        vendor.value,
        slow_count=1,
        slow_seconds=1.5,
        slow_after_answer=True,
        endpoint=endpoint,
        **fault,
    )
    check = asyncio.create_task(check_job_now(world.rc, job_id))
    await until(lambda: world.sim.stats.injected[(vendor.value, "slow")] == 1)
    return check


async def test_an_answer_about_the_run_before_a_reprocess_changes_nothing(world):  # noqa: F811
    job = await world.submit(VendorName.REPROMPT)
    await world.sim.advance(24 * 3600)  # finished at the vendor; not looked at yet
    check = await held_check(world, VendorName.REPROMPT, REPROMPT_STATUS, job.id)
    status, body = await post(world, f"/api/jobs/{job.id}/reprocess", {"failed_only": False})
    assert status == 202, body

    after = await check  # the answer said "completed", about the run before
    assert after.state is JobState.RUNNING
    assert after.next_check_at is not None
    assert after.next_check_at <= world.sim.clock.now()
    assert after.vendor_calls == job.vendor_calls + 2  # the reprocess and the stale status
    await settles_with_every_result(world, job.id)


async def test_a_reprocessed_job_counts_its_age_from_the_reprocess(world):  # noqa: F811
    """The maximum age (7 days) must not expire a job reprocessed after it: the reprocess
    already dropped the old results, and the new ones would never be fetched."""
    job = await world.submit(VendorName.REPROMPT)
    await settle(world.sim, world.services, world.rc)
    await world.sim.advance(8 * 86400)
    status, body = await post(world, f"/api/jobs/{job.id}/reprocess", {"failed_only": False})
    assert status == 202, body
    await settle(world.sim, world.services, world.rc)
    done = await world.job(job.id)
    assert done.state is JobState.COMPLETED
    assert done.results_count == world.view(VendorName.REPROMPT, job.vendor_job_id).total
    assert len(stored(world.db, job.id)) == done.results_count


async def test_the_maximum_age_is_a_setting(tmp_path):
    """A job paused at the vendor and never resumed is expired once it has been paused for
    ENRICHWATCH_MAX_JOB_AGE, checked then rather than at the next safety look."""
    async with SimServer(SimConfig(seed=17, start_time=time.time())) as sim:
        settings = load_settings(
            db=tmp_path / "age.db", api_token=API_TOKEN, max_job_age=3600, **sim.vendor_settings()
        )
        async with open_services(settings, clock=sim.clock.now) as services:
            rows, options = INPUTS[VendorName.ECORE]
            request = SubmitRequest(rows=rows, name="paused", options=options)
            outcome = await submit_batch(
                services, VendorName.ECORE, request, public_url="http://127.0.0.1:9"
            )
            (job,) = outcome.submitted
            await sim.advance(20)
            await services.adapter(VendorName.ECORE).pause(job.vendor_job_id or "")
            await settle(sim, services, Reconciler(services))
            expired = await services.store.get_job(job.id)

    assert expired.state is JobState.EXPIRED
    assert expired.error == "paused for longer than the maximum age, and not resumed"
    assert expired.finished_at is not None
    assert 3600 <= expired.paused_seconds <= 3600 + 1


async def test_a_job_expired_paused_is_resumed_at_the_vendor_and_watched_again(world):  # noqa: F811
    """A paused job that aged out here is expired, but the vendor still holds it: a resume
    reaches the vendor once and the job is watched again (tests.test_expired_jobs)."""
    job = await world.submit(VendorName.ECORE)
    await world.sim.advance(20)
    await world.services.adapter(VendorName.ECORE).pause(job.vendor_job_id or "")
    await world.sim.advance(8 * 86400)
    await settle(world.sim, world.services, world.rc)
    assert (await world.job(job.id)).state is JobState.EXPIRED
    controls = world.sim.stats.count("ecore", "POST /api/v1/enrichment-control/")

    status, body = await post(world, f"/api/jobs/{job.id}/resume")
    assert (status, body["state"]) == (202, "running")
    assert world.sim.stats.count("ecore", "POST /api/v1/enrichment-control/") == controls + 1
    assert world.view(VendorName.ECORE, job.vendor_job_id).vendor_status != "paused"


async def test_the_call_that_finds_a_job_too_old_is_counted(world):  # noqa: F811
    job = await world.submit(VendorName.ECORE)
    await world.sim.advance(20)
    await world.services.adapter(VendorName.ECORE).pause(job.vendor_job_id or "")
    await world.sim.advance(8 * 86400)
    await settle(world.sim, world.services, world.rc)

    expired = await world.job(job.id)
    assert expired.state is JobState.EXPIRED
    # Every request the simulator saw was made for this job, but the test's own pause.
    assert expired.vendor_calls == world.sim.stats.count("ecore") - 1


async def test_a_check_request_outlives_a_failing_call(world):  # noqa: F811
    job = await world.submit(VendorName.ECORE)
    await world.sim.advance(60)
    check = await held_check(
        world, VendorName.ECORE, ECORE_STATUS, job.id, server_errors=1, server_error_status=402
    )
    status, _ = await post(world, f"/api/jobs/{job.id}/check")
    assert status == 202
    requested = (await world.job(job.id)).next_check_at

    failed = await check  # 402: without the request, the next try is the safety net away
    assert failed.check_failures == 1
    assert failed.next_check_at == requested


async def test_a_callback_during_the_final_check_is_not_late(world):  # noqa: F811
    store = world.services.store
    store.notify_routes = dataclasses.replace(store.notify_routes, late_webhooks=True)
    job = await world.submit(VendorName.CRUSTDATA)
    end = world.sim.crustdata.jobs[job.vendor_job_id].job.terminal_at()
    await world.sim.advance_to(end + 0.5)  # finished; its callback comes 2 s after the end
    check = await held_check(world, VendorName.CRUSTDATA, CRUSTDATA_STATUS, job.id)
    await world.sim.advance(5)  # the callback is delivered while the answer is on its way
    assert (await world.job(job.id)).last_callback_at is not None

    done = await check
    assert done.state is JobState.COMPLETED
    assert done.late_webhook_at is None
    events = [event.type for event in await store.list_events(job.id)]
    assert "webhook.received" in events
    assert "webhook.late" not in events


async def test_a_check_request_on_a_job_sent_moments_ago_asks_the_vendor(world):  # noqa: F811
    job = await world.submit(VendorName.ECORE)
    status, body = await post(world, f"/api/jobs/{job.id}/check")
    assert status == 202, body
    before = world.sim.stats.count("ecore", ECORE_STATUS)
    assert await check_due_jobs(world.rc, VendorName.ECORE) == 1
    assert world.sim.stats.count("ecore", ECORE_STATUS) == before + 1
    assert (await world.job(job.id)).last_checked_at == world.sim.clock.now()


async def test_a_check_request_for_a_finished_or_unsent_job_is_answered_as_it_is(world):  # noqa: F811
    """A finished job is never checked again and a part held back has no vendor job to ask
    about: the request records nothing, and no finished job shows a next check."""
    done = await world.submit(VendorName.ECORE)
    await settle(world.sim, world.services, world.rc)
    assert (await world.job(done.id)).state is JobState.COMPLETED
    held, _ = await held_back_ecore_part(world)
    before, calls = snapshot(world.db), world.sim.stats.count()

    for job in (done, held):
        status, body = await post(world, f"/api/jobs/{job.id}/check")
        assert status == 200, body
        assert (body["id"], body["state"]) == (job.id, (await world.job(job.id)).state.value)

    assert snapshot(world.db) == before
    assert world.sim.stats.count() == calls


async def held_back_ecore_part(world):  # noqa: F811
    """A part kept back (as at a vendor's cap), due to be sent now."""
    store = world.services.store
    rows, options = INPUTS[VendorName.ECORE]
    part = SubmitRequest(rows=rows, name="held", options=options)
    job = await store.reserve_job(
        VendorName.ECORE,
        "held",
        rows=len(rows),
        source=EventSource.API,
        owner=world.services.sender.owner(),
    )
    await store.queue_submission(
        job.id, part.model_dump(), retry_at=store.clock(), reason="cap", vendor_calls=1
    )
    return job, part


async def test_a_held_back_part_the_vendor_refuses_later_is_notified(world):  # noqa: F811
    """It was acknowledged as queued long before; the failure notification may be the only
    word of it anyone gets."""
    job, _ = await held_back_ecore_part(world)
    world.sim.set_fault(
        "ecore",
        server_errors=1,
        server_error_status=400,
        endpoint="POST /api/v1/enrichment/submit/",
    )
    await send_queued_submissions(world.services, "rc:1")

    assert (await world.job(job.id)).state is JobState.FAILED
    assert notified(world.db, job.id) == ["failed"]


async def test_waiting_out_the_cap_does_not_use_up_the_transient_retries(world):  # noqa: F811
    crustdata = world.sim.crustdata
    for _ in range(5):  # the account is at its cap of 5 running jobs
        crustdata.add_job(5_000_000)
    rows, options = INPUTS[VendorName.CRUSTDATA]
    request = SubmitRequest(rows=rows, name="held", options=options)
    (job,) = (
        await submit_batch(world.services, VendorName.CRUSTDATA, request, public_url=world.url)
    ).queued
    for _ in range(5):  # five passes, each refused by the cap
        await world.sim.advance(61)
        assert await send_queued_submissions(world.services, "rc:1") == 0

    for other in crustdata.jobs.values():  # the cap frees up, but the next send meets a 429
        other.job.stopped_at = world.sim.clock.now() - 1
    world.sim.set_fault("crustdata", rate_limit=1, retry_after=1)
    await world.sim.advance(61)
    assert await send_queued_submissions(world.services, "rc:1") == 0
    assert (await world.job(job.id)).state is JobState.SUBMITTED
    await world.sim.advance(61)
    assert await send_queued_submissions(world.services, "rc:1") == 1
    assert (await world.job(job.id)).vendor_job_id is not None


async def test_a_partial_fetch_still_under_way_when_the_job_completes_gives_way(world):  # noqa: F811
    """The fetch of a paused job's partial set must not mark the results stored, nor send
    "completed" with the partial set, once the job has completed: the final fetch does."""
    job = await world.submit(VendorName.ECORE)
    await world.sim.advance(20)
    adapter = world.services.adapter(VendorName.ECORE)
    await adapter.pause(job.vendor_job_id or "")

    async def paused_with_results_pending() -> bool:
        paused = await world.job(job.id)
        return paused.state is JobState.NEEDS_ACTION and paused.results_state == "pending"

    await step_until(world, paused_with_results_pending, step=check_due_jobs)
    world.sim.set_fault(
        "ecore", slow_count=1, slow_seconds=2.0, slow_after_answer=True, endpoint=ECORE_RESULT
    )
    partial_fetch = asyncio.create_task(fetch_due_results(world.rc))
    await until(lambda: world.sim.stats.injected[("ecore", "slow")] == 1)
    await adapter.resume(job.vendor_job_id or "")  # meanwhile the job is resumed and finishes
    await world.sim.advance(3600)
    assert (await check_job_now(world.rc, job.id)).state is JobState.COMPLETED

    await partial_fetch
    between = await world.job(job.id)
    assert between.results_state == "pending"
    assert "completed" not in notified(world.db, job.id)

    await fetch_due_results(world.rc)
    done = await world.job(job.id)
    total = world.view(VendorName.ECORE, job.vendor_job_id).total
    assert (done.results_state, done.results_count) == ("stored", total)
    assert [row["position"] for row in stored(world.db, job.id)] == list(range(total))
    assert notified(world.db, job.id).count("completed") == 1


async def test_a_held_back_part_cut_off_mid_send_is_failed_not_sent_twice(world):  # noqa: F811
    """The process that died had sent the part and the vendor took it, but the answer was never
    recorded (the state a kill -9 leaves, made here by the dead process's own steps). Sending
    it again would run and bill a second job; the part fails, with where to look."""
    store = world.services.store
    job, part = await held_back_ecore_part(world)
    assert len(await store.claim_work(SUBMIT_WORK, owner="dead:1", lease_s=300, limit=1)) == 1
    await store.begin_send(job.id, owner=world.services.sender.owner())
    await world.services.adapter(VendorName.ECORE).submit(part)
    assert len(world.sim.jobs("ecore")) == 1

    # The restarted reconciler: the holder "dead:1" keeps no lock, so it is gone.
    assert gone_holders(store.path, await store.lease_holders()) == {"dead:1"}
    assert await store.release_leases({"dead:1"}) == (0, 1)
    assert await send_queued_submissions(world.services, "rc:2") == 0
    assert len(world.sim.jobs("ecore")) == 1
    failed = await world.job(job.id)
    assert failed.state is JobState.FAILED
    assert "stopped while sending this part to ecore" in (failed.error or "")
    assert notified(world.db, job.id) == ["failed"]
    assert await store.claim_work(SUBMIT_WORK, owner="rc:2", lease_s=300, limit=1) == []


async def test_a_direct_submit_cut_off_mid_send_is_failed_once_it_cannot_be_under_way(world):  # noqa: F811
    """The API's own send (no work item) cut off: the sweep fails it, but only once no call
    could still be under way in another process."""
    store = world.services.store
    rows, options = INPUTS[VendorName.ECORE]
    part = SubmitRequest(rows=rows, name="direct", options=options)
    owner = world.services.sender.owner()
    job = await store.reserve_job(
        VendorName.ECORE, "direct", rows=len(rows), source=EventSource.API, owner=owner
    )
    await store.begin_send(job.id, owner=owner)
    await world.services.adapter(VendorName.ECORE).submit(part)

    assert await settle_interrupted_sends(world.services) == 0  # it may still be under way
    assert (await world.job(job.id)).state is JobState.SUBMITTED
    await world.sim.advance(SEND_GIVE_UP_S + 1)
    assert await settle_interrupted_sends(world.services) == 1
    failed = await world.job(job.id)
    assert failed.state is JobState.FAILED
    assert failed.send_started_at is None
    assert notified(world.db, job.id) == ["failed"]
    assert await settle_interrupted_sends(world.services) == 0


async def test_the_submit_lane_fails_a_direct_send_cut_off_without_waiting_for_the_sweep(world):  # noqa: F811
    """The submit lane runs every tick; the hourly sweep would leave the part unreported for
    up to an hour more."""
    store = world.services.store
    rows, _ = INPUTS[VendorName.ECORE]
    owner = world.services.sender.owner()
    job = await store.reserve_job(
        VendorName.ECORE, "direct", rows=len(rows), source=EventSource.API, owner=owner
    )
    await store.begin_send(job.id, owner=owner)

    assert await send_queued_submissions(world.services, "rc:1") == 0
    assert (await world.job(job.id)).state is JobState.SUBMITTED  # it may still be under way
    await world.sim.advance(SEND_GIVE_UP_S + 1)
    await send_queued_submissions(world.services, "rc:1")
    assert (await world.job(job.id)).state is JobState.FAILED
    assert notified(world.db, job.id) == ["failed"]


async def test_a_part_reserved_by_a_process_killed_before_sending_it_is_failed_at_once(world):  # noqa: F811
    """A kill between a part's reservation and its send (or its queueing behind earlier
    parts) left an open job with no vendor id, no send under way and no rows held: never
    checked, never sent, never reported. Its process is gone, so it is known at once that
    nothing was sent."""
    store = world.services.store
    job = await store.reserve_job(
        VendorName.ECORE, "direct", rows=3, source=EventSource.API, owner="dead:1"
    )

    assert await send_queued_submissions(world.services, "rc:1") == 0
    failed = await world.job(job.id)
    assert failed.state is JobState.FAILED
    assert failed.error is not None
    assert "before sending this part" in failed.error
    assert (failed.send_owner, failed.vendor_calls) == (None, 0)
    assert notified(world.db, job.id) == ["failed"]
    assert world.sim.stats.count("ecore") == 0
    assert await settle_interrupted_sends(world.services) == 0


async def test_a_part_reserved_by_a_running_process_is_left_to_it(world):  # noqa: F811
    """Its send follows at once; only a reservation older than any send could take is given
    up while its process runs."""
    store = world.services.store
    job = await store.reserve_job(
        VendorName.ECORE,
        "direct",
        rows=3,
        source=EventSource.API,
        owner=world.services.sender.owner(),
    )

    assert await settle_interrupted_sends(world.services) == 0
    assert (await world.job(job.id)).state is JobState.SUBMITTED
    await world.sim.advance(SEND_GIVE_UP_S + 1)
    assert await settle_interrupted_sends(world.services) == 1
    assert (await world.job(job.id)).state is JobState.FAILED
    assert notified(world.db, job.id) == ["failed"]
