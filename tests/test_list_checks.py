"""A list call made for a vendor's due jobs also reports on its other polled jobs (DESIGN.md:
one list call refreshes many jobs), and never costs more pages for them; against the
simulator over real HTTP, on its manual clock."""

from __future__ import annotations

from enrichwatch.models import JobState, VendorName
from enrichwatch.polling import TokenBucket
from enrichwatch.vendors.base import SubmitRequest
from reconciler.checks import check_due_jobs
from tests.conftest import query
from tests.test_reconciler import INPUTS
from tests.test_results_and_actions import world  # noqa: F401 (a fixture)

ECORE_LIST = "GET /api/v1/enrichment/status/"
ECORE_STATUS = "GET /api/v1/enrichment/status/{id}/"


async def poll_costs(world, job_id: int) -> list[float]:  # noqa: F811
    """What each status look at the job was charged, oldest first."""
    events = await world.services.store.list_events(job_id)
    return [event.payload["cost"] for event in events if event.type == "vendor.polled"]


def lease_owner(world, job_id: int) -> str | None:  # noqa: F811
    (row,) = query(world.db, "SELECT lease_owner FROM jobs WHERE id = ?", (job_id,))
    return row["lease_owner"]


async def submitted_and_planned(world, vendor: VendorName):  # noqa: F811
    """A job submitted now, its first check planned (a pass makes no call for it)."""
    job = await world.submit(vendor)
    before = world.sim.stats.count(vendor.value)
    await check_due_jobs(world.rc)
    assert world.sim.stats.count(vendor.value) == before
    return await world.job(job.id)


async def test_the_call_for_a_due_job_also_reports_on_one_not_yet_due(world):  # noqa: F811
    first = await submitted_and_planned(world, VendorName.ECORE)
    await world.sim.advance(1)
    second = await submitted_and_planned(world, VendorName.ECORE)
    assert first.next_check_at is not None
    assert second.next_check_at is not None
    await world.sim.advance_to(first.next_check_at)
    assert second.next_check_at > world.sim.clock.now()
    lists, statuses = (world.sim.stats.count("ecore", e) for e in (ECORE_LIST, ECORE_STATUS))

    assert await check_due_jobs(world.rc) == 1

    assert world.sim.stats.count("ecore", ECORE_LIST) == lists + 1
    assert world.sim.stats.count("ecore", ECORE_STATUS) == statuses
    for job in (first, second):
        assert await poll_costs(world, job.id) == [0.5]
        after = await world.job(job.id)
        assert after.last_checked_at == world.sim.clock.now()
        assert after.state in (JobState.QUEUED, JobState.RUNNING)
        assert after.vendor_calls == 1.5  # the submit, and half the list call
        assert lease_owner(world, job.id) is None


async def test_a_job_the_first_page_does_not_show_keeps_its_plan(world):  # noqa: F811
    due = await submitted_and_planned(world, VendorName.ECORE)
    unknown, _ = await world.services.store.track_job(VendorName.ECORE, "no-such-job", None)
    later = world.sim.clock.now() + 3600
    await world.services.store.defer_checks([unknown.id], later)
    assert due.next_check_at is not None
    await world.sim.advance_to(due.next_check_at)
    lists, statuses = (world.sim.stats.count("ecore", e) for e in (ECORE_LIST, ECORE_STATUS))

    await check_due_jobs(world.rc)

    assert world.sim.stats.count("ecore", ECORE_LIST) == lists + 1
    assert world.sim.stats.count("ecore", ECORE_STATUS) == statuses
    assert await poll_costs(world, due.id) == [1.0]
    assert await poll_costs(world, unknown.id) == []
    left = await world.job(unknown.id)
    assert (left.next_check_at, left.last_checked_at) == (later, None)
    assert lease_owner(world, unknown.id) is None


async def test_a_lone_due_job_the_first_page_does_not_show_gets_its_own_call(world):  # noqa: F811
    rider = await submitted_and_planned(world, VendorName.ECORE)
    due, _ = await world.services.store.track_job(VendorName.ECORE, "no-such-job", None)
    lists, statuses = (world.sim.stats.count("ecore", e) for e in (ECORE_LIST, ECORE_STATUS))

    await check_due_jobs(world.rc)

    assert world.sim.stats.count("ecore", ECORE_LIST) == lists + 1
    assert world.sim.stats.count("ecore", ECORE_STATUS) == statuses + 1
    assert await poll_costs(world, rider.id) == [1.0]
    gone = await world.job(due.id)
    assert gone.state is JobState.EXPIRED  # the vendor answered 404 to its own call
    assert gone.vendor_calls == 1


async def test_a_list_call_that_shows_nothing_is_charged_when_the_budget_stops_the_rest(
    world,  # noqa: F811
):
    due, _ = await world.services.store.track_job(VendorName.ECORE, "no-such-job", None)
    rider, _ = await world.services.store.track_job(VendorName.ECORE, "no-such-job-2", None)
    await world.services.store.defer_checks([rider.id], world.sim.clock.now() + 3600)
    world.rc.budgets[VendorName.ECORE] = TokenBucket(rate=1 / 3600)  # one call, then none
    lists, statuses = (world.sim.stats.count("ecore", e) for e in (ECORE_LIST, ECORE_STATUS))

    await check_due_jobs(world.rc)

    assert world.sim.stats.count("ecore", ECORE_LIST) == lists + 1
    assert world.sim.stats.count("ecore", ECORE_STATUS) == statuses
    assert (await world.job(due.id)).vendor_calls == 1
    assert (await world.job(rider.id)).vendor_calls == 0


async def test_a_job_waiting_for_its_callback_is_left_to_it(world):  # noqa: F811
    waiting = await submitted_and_planned(world, VendorName.CRUSTDATA)
    assert waiting.expects_callback
    rows, options = INPUTS[VendorName.CRUSTDATA]
    (sent,) = await world.services.adapter(VendorName.CRUSTDATA).submit(
        SubmitRequest(rows=rows, options=options)
    )
    polled, _ = await world.services.store.track_job(VendorName.CRUSTDATA, sent.vendor_job_id, None)
    before = world.sim.stats.by_endpoint("crustdata")

    await check_due_jobs(world.rc)

    after = world.sim.stats.by_endpoint("crustdata")
    assert after.get("GET /batch/{id}", 0) == before.get("GET /batch/{id}", 0) + 1
    assert after.get("GET /batch", 0) == before.get("GET /batch", 0)
    assert await poll_costs(world, polled.id) == [1.0]
    assert await poll_costs(world, waiting.id) == []
