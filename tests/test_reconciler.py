"""The reconciler end to end against the simulator over real HTTP, on the simulator's clock:
jobs at every vendor reach their final state with every result stored, whatever callbacks
do, with no real waiting."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest_asyncio

from enrichwatch.config import load_settings
from enrichwatch.models import JobState, VendorName
from enrichwatch.runtime import open_services
from enrichwatch.sim import SimConfig, SimServer
from enrichwatch.submission import submit_batch
from enrichwatch.vendors.base import SubmitRequest
from receiver import serving
from reconciler import Reconciler, reconcile_once
from tests.conftest import API_TOKEN, result_positions
from tests.settling import settle


def place_rows(count: int) -> list[dict[str, str]]:
    """Reprompt's input: places with every column it takes."""
    return [
        {
            "place_id": f"p{n}",
            "name": f"Store {n}",
            "full_address": f"{n} Main St",
            "latitude": "40.0",
            "longitude": "-73.0",
        }
        for n in range(count)
    ]


INPUTS: dict[VendorName, tuple[list[dict[str, str]], dict]] = {
    VendorName.CRUSTDATA: (
        [
            {"professional_network_profile_urls": f"https://www.linkedin.com/in/p{n}/"}
            for n in range(40)
        ],
        {},
    ),
    VendorName.INFLUENCERS_CLUB: (
        [{"handle": f"creator{n}"} for n in range(30)],
        {"enrichment_mode": "full", "platform": "instagram"},
    ),
    VendorName.REPROMPT: (
        place_rows(25),
        {},
    ),
    VendorName.BRIGHTLOCAL: (
        [{"profile-url": f"https://example.com/biz/{n}", "country": "USA"} for n in range(6)],
        {},
    ),
    VendorName.ECORE: (
        [{"email": f"lead{n}@example.com"} for n in range(35)],
        {"category": "contact"},
    ),
}


@pytest_asyncio.fixture
async def world(tmp_path):
    """The simulator, and enrichwatch (receiver and reconciler) running on its clock."""
    async with SimServer(SimConfig(seed=11, start_time=time.time())) as sim:
        overrides = sim.vendor_settings()
        settings = load_settings(db=tmp_path / "r.db", api_token=API_TOKEN, **overrides)
        async with (
            open_services(settings, clock=sim.clock.now) as services,
            serving(services, "127.0.0.1", 0) as url,
        ):
            yield sim, services, url, Reconciler(services)


def stored_results(db, job_id):
    conn = sqlite3.connect(db)
    try:
        return [
            (position, json.loads(data))
            for position, data in conn.execute(
                "SELECT position, data FROM results WHERE job_id = ? ORDER BY position", (job_id,)
            )
        ]
    finally:
        conn.close()


async def test_jobs_at_all_five_vendors_finish_with_every_result_stored(world):
    sim, services, url, rc = world
    jobs = {}
    for vendor, (rows, options) in INPUTS.items():
        outcome = await submit_batch(
            services,
            vendor,
            SubmitRequest(rows=rows, name=vendor.value, options=options),
            public_url=url,
        )
        (jobs[vendor],) = outcome.submitted

    await settle(sim, services, rc)

    for vendor, submitted in jobs.items():
        job = await services.store.get_job(submitted.id)
        (view,) = [v for v in sim.jobs(vendor.value) if v.job_id == job.vendor_job_id]
        assert job.state.is_terminal, vendor
        assert job.results_state == "stored", (vendor, job.error)
        results = stored_results(services.store.path, job.id)
        expected = view.succeeded if vendor is VendorName.CRUSTDATA else view.total
        assert [position for position, _ in results] == result_positions(
            sim, vendor, job.vendor_job_id or "", expected
        ), vendor
        assert job.results_count == len(results)
        assert len(results) == expected, vendor
        events = [event.type for event in await services.store.list_events(job.id)]
        assert "results.stored" in events
        assert events.count("job.state_changed") >= 1
        assert job.vendor_calls >= 2  # the submit and at least one status call


async def submit_all(services, url, vendors):
    jobs = {}
    for vendor in vendors:
        rows, options = INPUTS[vendor]
        outcome = await submit_batch(
            services,
            vendor,
            SubmitRequest(rows=rows, name=vendor.value, options=options),
            public_url=url,
        )
        (jobs[vendor],) = outcome.jobs  # sent, or held back by a fault and sent later
    return jobs


async def test_lost_callbacks_are_caught_by_the_late_webhook_fallback(world):
    sim, services, url, rc = world
    for vendor in ("crustdata", "brightlocal"):
        sim.set_callbacks(vendor, loss_probability=1.0)
    jobs = await submit_all(services, url, [VendorName.CRUSTDATA, VendorName.BRIGHTLOCAL])

    await settle(sim, services, rc)

    for vendor, submitted in jobs.items():
        job = await services.store.get_job(submitted.id)
        assert job.state is JobState.COMPLETED, vendor
        assert job.results_state == "stored"
        assert job.callbacks_received == 0
        assert job.late_webhook_at is not None
        events = [event.type for event in await services.store.list_events(job.id)]
        assert events.count("webhook.late") == 1


async def test_duplicated_delayed_and_reordered_callbacks_change_nothing(world):
    sim, services, url, rc = world
    for vendor in ("crustdata", "brightlocal"):
        sim.set_callbacks(vendor, duplicate_probability=1.0, delay=30.0, jitter=120.0)
    jobs = await submit_all(services, url, [VendorName.CRUSTDATA, VendorName.BRIGHTLOCAL])

    await settle(sim, services, rc)

    for vendor, submitted in jobs.items():
        job = await services.store.get_job(submitted.id)
        assert job.state is JobState.COMPLETED, vendor
        assert job.results_state == "stored"
        inbox = await services.store.list_inbox(job.id)
        assert [row.duplicate_of is None for row in inbox].count(True) == 1
        assert len(inbox) == 2
        events = [event.type for event in await services.store.list_events(job.id)]
        assert events.count("results.stored") == 1
        assert events.count("webhook.duplicate") == 1


async def test_forged_callback_for_a_running_job_costs_one_confirming_check(world, http):
    sim, services, url, rc = world
    sim.set_callbacks("crustdata", delay=10.0)
    jobs = await submit_all(services, url, [VendorName.CRUSTDATA])
    job = jobs[VendorName.CRUSTDATA]
    await reconcile_once(rc)  # plans the first check; nothing is called
    before = sim.stats.count("crustdata", "GET /batch/{id}")

    forged = {"batch_id": job.vendor_job_id, "status": "completed", "download_url": "http://evil"}
    async with http.post(job.callback_url(url), json=forged) as response:
        assert response.status == 200
    await reconcile_once(rc)

    after = await services.store.get_job(job.id)
    assert sim.stats.count("crustdata", "GET /batch/{id}") == before + 1
    assert after.state is not JobState.COMPLETED
    assert after.results_state is None
    assert sim.storage.requests == []  # nothing named in the body was fetched
    await settle(sim, services, rc)
    assert (await services.store.get_job(job.id)).state is JobState.COMPLETED


async def test_rate_limits_and_server_errors_are_survived_without_exceeding_limits(world):
    sim, services, url, rc = world
    jobs = await submit_all(services, url, list(VendorName))
    for vendor in VendorName:
        sim.set_fault(vendor.value, rate_limit=3, retry_after=20, server_errors=3)

    await settle(sim, services, rc, max_passes=1000)

    for vendor, submitted in jobs.items():
        job = await services.store.get_job(submitted.id)
        assert job.state.is_terminal, vendor
        assert job.results_state == "stored", (vendor, job.error)
    assert sim.stats.rate_limit_violations(kind="rate_limit") == []
    kinds = {kind for (vendor, kind), n in sim.stats.injected.items() if n}
    vendors_hit = {vendor for (vendor, _), n in sim.stats.injected.items() if n}
    assert vendors_hit == {vendor.value for vendor in VendorName}  # every vendor was hit
    assert len(kinds) == 2  # by both kinds of fault
