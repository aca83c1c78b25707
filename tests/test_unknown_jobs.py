"""A status call answered 404: the job is gone only while the vendor still answers for our
other jobs. A key of another account (or a base URL that is not the vendor's) gets 404 for
every job, and must expire none of them. Against the simulator over real HTTP, on its manual
clock."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import AnyHttpUrl, SecretStr

from enrichwatch.models import JobState, VendorName
from reconciler.checks import check_due_jobs, check_job_now
from tests.conftest import query
from tests.settling import settle
from tests.test_results_and_actions import stored, world  # noqa: F401 (a fixture)

STATUS = {
    VendorName.ECORE: "GET /api/v1/enrichment/status/{id}/",
    VendorName.REPROMPT: "GET /v1/{org}/place_enrichment/batches/{id}",
    VendorName.INFLUENCERS_CLUB: "GET /public/v1/enrichment/batch/{id}/status/",
}


def point_elsewhere(world, vendor: VendorName) -> Callable[[], None]:  # noqa: F811
    """Point enrichwatch where the vendor knows none of our jobs: another user's eCore token,
    a Reprompt org that is not ours, an influencers.club base URL that is not its API.
    Returns how to point it back."""
    if vendor is VendorName.ECORE:
        world.sim.config.ecore.other_account_keys = ("another-users-token",)
        ecore = world.services.settings.ecore
        key, ecore.api_key = ecore.api_key, SecretStr("another-users-token")
        return lambda: setattr(ecore, "api_key", key)
    if vendor is VendorName.REPROMPT:
        reprompt = world.services.settings.reprompt
        org, reprompt.org = reprompt.org, "someone-else"
        return lambda: setattr(reprompt, "org", org)
    club = world.services.settings.influencers_club
    url, club.base_url = club.base_url, AnyHttpUrl(f"{club.base_url}not-the-api")
    return lambda: setattr(club, "base_url", url)


async def failures(world, job_id: int) -> list[str]:  # noqa: F811
    return [
        str(event.payload["error"])
        for event in await world.services.store.list_events(job_id)
        if event.type == "vendor.poll_failed"
    ]


async def checked_once(world) -> None:  # noqa: F811
    """Past the first, planned check of just-submitted jobs, then one pass over them all."""
    await check_due_jobs(world.rc)
    await world.services.store.make_open_jobs_due()
    await check_due_jobs(world.rc)


@pytest.mark.parametrize(
    "vendor", [VendorName.ECORE, VendorName.REPROMPT, VendorName.INFLUENCERS_CLUB]
)
async def test_a_vendor_that_knows_none_of_our_jobs_expires_none_and_they_finish_once_mended(
    world,  # noqa: F811
    vendor,
):
    jobs = [await world.submit(vendor), await world.submit(vendor)]
    point_back = point_elsewhere(world, vendor)
    calls_before = sum([(await world.job(job.id)).vendor_calls for job in jobs])

    await checked_once(world)

    max_interval = world.rc.policies[vendor].max_interval
    told: dict[int, bool] = {}
    for job in jobs:
        row = await world.job(job.id)
        assert row.state is JobState.SUBMITTED
        assert row.next_check_at == world.sim.clock.now() + max_interval
        (failure,) = await failures(world, job.id)
        assert "the API key may be another account's, or the base URL not the vendor's" in (failure)
        assert "deleted" not in failure  # the other job is open: the vendor keeps those
        # Someone has to act, and is told so (on the console: no channel is configured),
        # once for both jobs.
        refused = query(
            world.db,
            """SELECT payload ->> '$.detail' FROM work WHERE kind = 'notify' AND job_id = ?
                  AND payload ->> '$.outcome' = 'checks_refused'""",
            (job.id,),
        )
        told[job.id] = [row[0] for row in refused] == [failure]
    assert sorted(told.values()) == [False, True]
    # A list call where the vendor has one (showing none of them), each job's own call, and
    # one for a job the vendor knew, asked once for the whole pass.
    listed = world.services.adapter(vendor).has_list_endpoint
    calls = sum([(await world.job(job.id)).vendor_calls for job in jobs])
    assert calls - calls_before == 3 + listed

    point_back()
    await settle(world.sim, world.services, world.rc)
    for job in jobs:
        row = await world.job(job.id)
        assert (row.state, row.results_state) == (JobState.COMPLETED, "stored")
        assert row.results_count == len(stored(world.db, job.id)) > 0


async def test_with_no_other_job_to_ask_about_the_404_is_taken_at_its_word(world):  # noqa: F811
    job = await world.submit(VendorName.REPROMPT)
    point_elsewhere(world, VendorName.REPROMPT)
    calls_before = world.sim.stats.count("reprompt", STATUS[VendorName.REPROMPT])

    await checked_once(world)

    row = await world.job(job.id)
    assert row.state is JobState.EXPIRED
    assert row.error is not None
    assert row.error.startswith("the vendor no longer knows this job")
    assert row.error.endswith("(and no other job here to check the key with)")
    assert world.sim.stats.count("reprompt", STATUS[VendorName.REPROMPT]) - calls_before == 1


async def test_when_the_only_other_job_is_finished_its_deletion_is_named_as_a_cause(
    world,  # noqa: F811
):
    vendor = VendorName.BRIGHTLOCAL
    finished = await world.submit(vendor)
    await settle(world.sim, world.services, world.rc)
    assert (await world.job(finished.id)).state is JobState.COMPLETED
    # Deleted at the vendor after its results were in, as BrightLocal suggests.
    await world.services.adapter(vendor).delete(finished.vendor_job_id or "")
    (gone, _) = await world.services.store.track_job(vendor, "999999", "deleted too")

    await check_job_now(world.rc, gone.id)

    row = await world.job(gone.id)
    assert row.state is JobState.SUBMITTED
    (failure,) = await failures(world, gone.id)
    assert f"nor job {finished.id} ({finished.vendor_job_id}), which it knew before" in failure
    assert "the base URL not the vendor's, or both were deleted there" in failure


async def test_a_job_gone_while_the_vendor_answers_for_another_expires_at_once(
    world,  # noqa: F811
):
    known = await world.submit(VendorName.INFLUENCERS_CLUB)
    (gone, _) = await world.services.store.track_job(
        VendorName.INFLUENCERS_CLUB, "no-such-batch", "mistyped"
    )
    status = STATUS[VendorName.INFLUENCERS_CLUB]
    calls_before = world.sim.stats.count("influencers_club", status)

    await check_job_now(world.rc, gone.id)

    row = await world.job(gone.id)
    assert row.state is JobState.EXPIRED
    assert row.error is not None
    assert row.error.startswith("the vendor no longer knows this job")
    assert "check the key" not in row.error
    # Its own call and the one that found the other batch known, both charged to it.
    assert world.sim.stats.count("influencers_club", status) - calls_before == 2
    assert row.vendor_calls == 2
    assert row.last_checked_at == row.finished_at is not None  # checked, not merely closed
    assert (await world.job(known.id)).state is not JobState.EXPIRED


async def test_a_job_whose_checks_keep_failing_expires_at_its_maximum_age(
    world,  # noqa: F811
):
    job = await world.submit(VendorName.ECORE)
    world.services.settings.ecore.api_key = SecretStr("revoked")
    await checked_once(world)
    assert (await world.job(job.id)).state is JobState.SUBMITTED

    await world.sim.advance(world.rc.policies[VendorName.ECORE].max_age)
    await check_job_now(world.rc, job.id)

    row = await world.job(job.id)
    assert row.state is JobState.EXPIRED
    assert row.error is not None
    assert row.error.startswith("older than the maximum age, and its last check failed")
    assert "Invalid token" in row.error


async def test_a_404_is_weighed_at_once_even_when_the_planned_budget_is_spent(
    world,  # noqa: F811
):
    vendor = VendorName.INFLUENCERS_CLUB
    await world.submit(vendor)
    (gone, _) = await world.services.store.track_job(vendor, "no-such-batch", "mistyped")
    # The pass's plan has room for one call: the job's own status call.
    bucket, now = world.rc.budgets[vendor], world.sim.clock.now()
    while bucket.available_at(now) <= now:
        bucket.reserve(now)
    await world.sim.advance_to(bucket.available_at(now) + 0.01)

    await check_due_jobs(world.rc)

    row = await world.job(gone.id)
    assert row.state is JobState.EXPIRED
    assert row.vendor_calls == 2
    # The call that weighed the 404 was counted against the plan: the next must wait.
    now = world.sim.clock.now()
    assert bucket.available_at(now) > now
