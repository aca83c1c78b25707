"""Reprocess against a fetch in flight, learned durations after a reprocess, and a hanging
vendor in the checks; against the simulator over real HTTP, on its manual clock."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import time

import structlog

from enrichwatch.actions import reprocess, resume
from enrichwatch.logging import configure_logging
from enrichwatch.models import JobState, VendorName
from reconciler import running
from reconciler.checks import check_due_jobs, check_job_now
from reconciler.fetch import fetch_due_results
from tests.settling import next_due, settle
from tests.test_results_and_actions import step_until, stored, world  # noqa: F401 (a fixture)

RESULTS_PAGES = "GET /v1/{org}/place_enrichment/jobs"
ECORE_STATUS = "GET /api/v1/enrichment/status/{id}/"


async def until(condition, timeout: float = 10.0) -> None:
    """Wait for `condition()` (something another task or the simulator brings about)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def settles_with_every_result(world, job_id: int) -> int:  # noqa: F811
    """Reconcile until nothing is due: the Reprompt job is completed with every result the
    simulator made stored. Returns how many."""
    await settle(world.sim, world.services, world.rc)
    done = await world.job(job_id)
    total = world.view(VendorName.REPROMPT, done.vendor_job_id).total
    assert (done.state, done.results_state, done.results_count) == (
        JobState.COMPLETED,
        "stored",
        total,
    )
    return total


async def checked_until_results_pending(world, job_id: int) -> None:  # noqa: F811
    """Check passes (no fetches) with the clock jumping to each next check."""
    for _ in range(100):
        await check_due_jobs(world.rc)
        if (await world.job(job_id)).results_state == "pending":
            return
        await world.sim.advance_to(max(next_due(world.db), world.sim.clock.now()))
    raise AssertionError("the job never finished")


async def test_a_reprocess_during_a_fetch_keeps_the_old_run_out_of_the_new(world):  # noqa: F811
    job = await world.submit(VendorName.REPROMPT)
    await checked_until_results_pending(world, job.id)
    # The fetch's first page is held at the vendor while the operator reprocesses the batch.
    world.sim.faults.set("reprompt", slow_count=1, slow_seconds=2.0, endpoint=RESULTS_PAGES)
    fetch = asyncio.create_task(fetch_due_results(world.rc))
    await until(lambda: world.sim.stats.injected[("reprompt", "slow")] == 1)
    await reprocess(world.services, job.id, {"failed_only": False})

    assert await fetch == 0
    reopened = await world.job(job.id)
    assert reopened.state is JobState.RUNNING
    assert (reopened.results_state, reopened.results_count) == (None, 0)
    assert stored(world.db, job.id) == []
    assert "results.stored" not in await world.events(job.id)

    total = await settles_with_every_result(world, job.id)
    assert [row["position"] for row in stored(world.db, job.id)] == list(range(total))
    assert (await world.events(job.id)).count("results.stored") == 1


async def test_learned_durations_count_a_reprocessed_job_from_its_last_run(world):  # noqa: F811
    job = await world.submit(VendorName.REPROMPT)
    await settle(world.sim, world.services, world.rc)
    first = await world.job(job.id)
    await world.sim.advance(6 * 3600)  # the operator comes back hours later
    await reprocess(world.services, job.id, {"failed_only": False})
    await settle(world.sim, world.services, world.rc)
    done = await world.job(job.id)
    (requested,) = [
        event
        for event in await world.services.store.list_events(job.id)
        if event.type == "job.reprocess_requested"
    ]

    (learned,) = await world.services.store.durations(VendorName.REPROMPT)
    assert learned[1] == done.finished_at - requested.created_at
    assert learned[1] < done.finished_at - first.finished_at  # not across both runs


async def test_a_hanging_vendor_does_not_hold_up_another_vendors_check(world):  # noqa: F811
    crustdata = world.sim.crustdata.add_job(20)
    ecore = world.sim.ecore.add_job([{"email": f"lead{n}@example.com"} for n in range(20)])
    store = world.services.store
    hung, prompt = (
        (await store.track_job(VendorName.CRUSTDATA, crustdata.batch_id, "hangs"))[0],
        (await store.track_job(VendorName.ECORE, ecore.job_id, "prompt"))[0],
    )
    # Crustdata's status endpoint holds its answer far longer than the other check takes.
    world.sim.faults.set("crustdata", slow_count=1, slow_seconds=8.0)
    checks = asyncio.create_task(check_due_jobs(world.rc))
    await until(lambda: world.sim.stats.injected[("crustdata", "slow")] == 1)
    await until_checked(world, prompt.id)
    assert not checks.done()  # the crustdata call is still hanging
    assert (await world.job(hung.id)).last_checked_at is None
    assert await checks == 2
    assert (await world.job(hung.id)).last_checked_at is not None


async def until_checked(world, job_id: int) -> None:  # noqa: F811
    deadline = time.monotonic() + 6
    while (await world.job(job_id)).last_checked_at is None:
        assert time.monotonic() < deadline, "the other vendor's job was not checked"
        await asyncio.sleep(0.01)


async def polls(world, job_id: int) -> int:  # noqa: F811
    return (await world.events(job_id)).count("vendor.polled")


async def test_a_callback_is_checked_at_once_while_another_vendors_call_hangs(world):  # noqa: F811
    """The running reconciler, as `serve` runs it: each vendor's checks in a lane of their own,
    so a callback need not wait for a pass stuck on another vendor's HTTP timeout."""
    crustdata = world.sim.crustdata.add_job(20)
    ecore = world.sim.ecore.add_job([{"email": f"lead{n}@example.com"} for n in range(20)])
    store = world.services.store
    hung = (await store.track_job(VendorName.CRUSTDATA, crustdata.batch_id, "hangs"))[0]
    prompt = (await store.track_job(VendorName.ECORE, ecore.job_id, "prompt"))[0]
    world.sim.faults.set("crustdata", slow_count=1, slow_seconds=8.0)

    async with running(world.services, rc=world.rc):
        await until(lambda: world.sim.stats.injected[("crustdata", "slow")] == 1)
        await until_polled(world, prompt.id, 1)  # the start-up check of every open job
        async with world.services.http.post(prompt.callback_url(world.url), data=b"{}") as r:
            assert r.status == 200
        # The callback's confirming check comes while crustdata still holds its answer.
        await until_polled(world, prompt.id, 2, timeout=2.0)
        assert (await world.job(hung.id)).last_checked_at is None
    assert world.sim.stats.injected[("crustdata", "slow")] == 1


async def until_polled(world, job_id: int, count: int, timeout: float = 6.0) -> None:  # noqa: F811
    deadline = time.monotonic() + timeout
    while await polls(world, job_id) < count:
        assert time.monotonic() < deadline, f"job {job_id} was not checked {count} times"
        await asyncio.sleep(0.01)


async def test_a_callback_that_comes_during_a_check_still_gets_its_confirming_check(world):  # noqa: F811
    """The vendor answered "running" before its callback came; the check's plan must not
    push the job's next check past that callback."""
    batch = world.sim.crustdata.add_job(20)
    store = world.services.store
    job = (await store.track_job(VendorName.CRUSTDATA, batch.batch_id, "late answer"))[0]
    world.sim.faults.set("crustdata", slow_count=1, slow_seconds=3.0)
    checks = asyncio.create_task(check_due_jobs(world.rc))
    await until(lambda: world.sim.stats.injected[("crustdata", "slow")] == 1)
    async with world.services.http.post(job.callback_url(world.url), data=b"{}") as response:
        assert (await response.json())["duplicate"] is False
    assert await checks == 1

    checked = await world.job(job.id)
    assert not checked.state.is_terminal
    assert checked.next_check_at is not None
    assert checked.next_check_at <= world.sim.clock.now()
    assert await check_due_jobs(world.rc) == 1
    assert await polls(world, job.id) == 2
    # That confirming check saw no new callback: the plan holds again.
    assert (await world.job(job.id)).next_check_at > world.sim.clock.now()


async def test_a_resume_during_a_check_still_gets_its_check(world):  # noqa: F811
    """The check read "paused" before the operator resumed; a paused job's plan is the safety
    net, which must not replace the check the resume asked for."""
    job = await world.submit(VendorName.ECORE)
    await world.sim.advance(20)
    await world.services.adapter(VendorName.ECORE).pause(job.vendor_job_id or "")

    async def paused() -> bool:
        return (await world.job(job.id)).state is JobState.NEEDS_ACTION

    await step_until(world, paused)
    world.sim.faults.set(
        "ecore", slow_count=1, slow_seconds=3.0, slow_after_answer=True, endpoint=ECORE_STATUS
    )
    check = asyncio.create_task(check_job_now(world.rc, job.id))
    await until(lambda: world.sim.stats.injected[("ecore", "slow")] == 1)
    await resume(world.services, job.id)
    assert (await check).state is JobState.NEEDS_ACTION  # what the held answer said

    assert (await world.job(job.id)).next_check_at <= world.sim.clock.now()
    await check_due_jobs(world.rc)
    assert (await world.job(job.id)).state is JobState.RUNNING


async def test_a_pass_that_meets_a_locked_database_logs_one_line_not_a_traceback(services):
    """Another process holds the database's write lock past the writer's wait: each lane's
    pass fails (a later one does the work again) and says why in one line, not a traceback
    per lane and pass while the lock lasts."""
    stream = io.StringIO()
    configure_logging(log_format="json", stream=stream)
    try:
        async with running(services):
            holder = sqlite3.connect(services.store.path, isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")
            try:
                services.due_now.set()  # every lane looks, and each must write to claim
                await until(lambda: "reconcile_pass_failed" in stream.getvalue(), timeout=20)
            finally:
                holder.execute("ROLLBACK")
                holder.close()
    finally:
        structlog.reset_defaults()
    failed = [
        line
        for line in map(json.loads, stream.getvalue().splitlines())
        if line["event"] == "reconcile_pass_failed"
    ]
    assert failed
    assert all("database is locked" in line["error"] for line in failed)
    assert not any("exception" in line for line in failed)
