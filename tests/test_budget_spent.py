"""A vendor call the account's shared request budget has no place for is not sent, and is no
failure: another process (a second reconciler, a split receiver, the CLI) or this one's
fetches and submissions may have spent the budget the reconciler planned with. Status
checks, results fetches and held-back parts all wait for the budget without spending a try,
so a long pause (a 429's Retry-After, a spent quota) never fails a job by itself. Against the
simulator over real HTTP, the pause written to the database as another process writes it."""

from __future__ import annotations

from enrichwatch.models import VendorName
from enrichwatch.store.fetches import FETCH_WORK
from enrichwatch.store.submissions import SUBMIT_WORK
from enrichwatch.submission import MAX_TRANSIENT_ATTEMPTS
from reconciler.checks import check_due_jobs
from reconciler.fetch import MAX_ATTEMPTS, fetch_due_results
from reconciler.submissions import send_queued_submissions
from tests.conftest import query
from tests.test_reconciler_fixes import checked_until_results_pending
from tests.test_reconciler_races import held_back_ecore_part
from tests.test_results_and_actions import stored, world  # noqa: F401 (a fixture)

PAUSE_S = 600.0
REPROMPT_STATUS = "GET /v1/{org}/place_enrichment/batches/{id}"


async def spend_budget(world, vendor: VendorName) -> None:  # noqa: F811
    """Another process heard the vendor say "no calls for PAUSE_S seconds"."""
    budget = world.services.adapter(vendor).budget
    assert budget is not None
    await budget.pause(PAUSE_S)


def work_item(world, kind: str) -> dict:  # noqa: F811
    (row,) = query(world.db, "SELECT * FROM work WHERE kind = ?", (kind,))
    return dict(row)


async def test_a_check_the_budget_cannot_afford_waits_without_a_failure(world):  # noqa: F811
    job = await world.submit(VendorName.REPROMPT)
    await world.sim.advance_to(world.sim.clock.now() + 3600)
    await check_due_jobs(world.rc)  # the first, planned, look costs no call
    await world.sim.advance_to(world.sim.clock.now() + 3600)
    calls = world.sim.stats.count("reprompt", REPROMPT_STATUS)
    await spend_budget(world, VendorName.REPROMPT)
    now = world.sim.clock.now()

    assert await check_due_jobs(world.rc) == 1
    waiting = await world.job(job.id)
    assert waiting.check_failures == 0
    assert "vendor.poll_failed" not in await world.events(job.id)
    assert waiting.next_check_at is not None
    assert waiting.next_check_at >= now + PAUSE_S - 1
    assert world.sim.stats.count("reprompt", REPROMPT_STATUS) == calls

    await world.sim.advance_to(waiting.next_check_at)
    assert await check_due_jobs(world.rc) == 1
    checked = await world.job(job.id)
    assert checked.last_checked_at is not None
    assert checked.last_checked_at >= now + PAUSE_S - 1
    assert checked.check_failures == 0


async def test_a_fetch_waits_out_the_budget_however_often_without_spending_its_tries(world):  # noqa: F811
    job = await world.submit(VendorName.REPROMPT)
    await checked_until_results_pending(world, job.id)
    for _ in range(MAX_ATTEMPTS + 2):
        await spend_budget(world, VendorName.REPROMPT)
        assert await fetch_due_results(world.rc) == 0
        item = work_item(world, FETCH_WORK)
        assert (item["state"], item["attempts"]) == ("pending", 0)
        await world.sim.advance_to(item["next_attempt_at"])
    assert (await world.job(job.id)).results_state != "fetch_failed"

    assert await fetch_due_results(world.rc) == 1
    done = await world.job(job.id)
    assert done.results_state == "stored"
    assert len(stored(world.db, job.id)) == done.results_count > 0


async def test_a_held_back_part_waits_out_the_budget_without_spending_its_tries(world):  # noqa: F811
    job, _ = await held_back_ecore_part(world)
    for _ in range(MAX_TRANSIENT_ATTEMPTS + 2):
        await spend_budget(world, VendorName.ECORE)
        assert await send_queued_submissions(world.services, "rc:1") == 0
        item = work_item(world, SUBMIT_WORK)
        assert item["state"] == "pending"
        await world.sim.advance_to(item["next_attempt_at"])
    assert world.sim.jobs("ecore") == []

    assert await send_queued_submissions(world.services, "rc:1") == 1
    sent = await world.job(job.id)
    (vendor_job,) = world.sim.jobs("ecore")
    assert sent.vendor_job_id == vendor_job.job_id
