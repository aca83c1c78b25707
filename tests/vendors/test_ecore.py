from __future__ import annotations

import pytest

from enrichwatch.errors import (
    VendorAmbiguousError,
    VendorAuthError,
    VendorNotFoundError,
    VendorPaymentError,
    VendorRejectedError,
    VendorTransientError,
)
from enrichwatch.models import JobState, VendorName
from enrichwatch.vendors.base import SubmitRequest
from enrichwatch.vendors.ecore import ECoreAdapter
from tests.vendors.conftest import collect, flat


def contacts(n: int) -> list[dict[str, str]]:
    return [
        {
            "first_name": "Jane",
            "last_name": f"Doe{i}",
            "company_name": "Acme Corp",
            "contact_email": f"jane{i}@acme.com",
        }
        for i in range(n)
    ]


@pytest.fixture
def ecore(make) -> ECoreAdapter:
    adapter: ECoreAdapter = make(VendorName.ECORE)
    return adapter


async def settle(sim) -> None:
    await sim.advance(24 * 3600)


async def test_submit_contact_and_account_jobs(ecore, sim):
    [contact] = await ecore.submit(SubmitRequest(rows=contacts(2)))
    [account] = await ecore.submit(
        SubmitRequest(
            rows=[{"company_name": "Acme Corp"}],
            options={"category": "account", "criteria": {"titles": ["CTO"]}},
        )
    )

    assert sim.ecore.jobs[contact.vendor_job_id].category == "contact"
    assert sim.ecore.jobs[contact.vendor_job_id].rows == contacts(2)
    assert sim.ecore.jobs[account.vendor_job_id].criteria == {"titles": ["CTO"]}


async def test_field_errors_are_rejected(ecore):
    # eCore documents criteria for account jobs only; its exact rules are left to eCore.
    with pytest.raises(VendorRejectedError, match="criteria") as caught:
        await ecore.submit(SubmitRequest(rows=contacts(1), options={"criteria": {"n": 1}}))
    assert caught.value.status == 400


async def test_short_wallet_is_a_payment_error_with_the_numbers(ecore, sim):
    sim.config.ecore.wallet = 12

    with pytest.raises(VendorPaymentError) as caught:
        await ecore.submit(SubmitRequest(rows=contacts(50)))

    assert (caught.value.required, caught.value.balance) == (50, 12)
    assert "You need 50 credits" in caught.value.message


@pytest.mark.parametrize("scheme", ["Bearer", "Token"])
async def test_auth_scheme_comes_from_settings(make, sim, scheme):
    sim.config.ecore.auth_scheme = scheme
    right = make(VendorName.ECORE, auth_scheme=scheme)
    wrong = make(VendorName.ECORE, auth_scheme="Token" if scheme == "Bearer" else "Bearer")

    [job] = await right.submit(SubmitRequest(rows=contacts(1)))
    with pytest.raises(VendorAuthError):
        await wrong.status(job.vendor_job_id)


async def test_status_mapping_through_a_run(ecore, sim):
    [job] = await ecore.submit(SubmitRequest(rows=contacts(100)))
    queued = await ecore.status(job.vendor_job_id)
    assert (queued.state, queued.vendor_status) == (JobState.QUEUED, "queued")

    run = sim.ecore.jobs[job.vendor_job_id].job
    sim.clock.advance_to(run.processed_at(10))
    running = await ecore.status(job.vendor_job_id)
    assert (running.state, running.vendor_status) == (JobState.RUNNING, "in-progress")
    assert not running.results_available

    await settle(sim)
    done = await ecore.status(job.vendor_job_id)
    assert (done.state, done.vendor_status) == (JobState.COMPLETED, "completed")
    assert done.results_available
    assert done.total is None


async def test_failed_job(ecore, sim):
    sim.config.ecore.profile.job_failure_rate = 1.0
    [job] = await ecore.submit(SubmitRequest(rows=contacts(10)))
    await settle(sim)

    failed = await ecore.status(job.vendor_job_id)

    assert (failed.state, failed.vendor_status) == (JobState.FAILED, "failed")
    assert not failed.results_available


async def test_pause_needs_action_with_partial_results_and_resume_may_need_credits(ecore, sim):
    sim.config.ecore.wallet = 100
    [job] = await ecore.submit(SubmitRequest(rows=contacts(100)))
    run = sim.ecore.jobs[job.vendor_job_id].job
    sim.clock.advance_to(run.processed_at(40))

    await ecore.pause(job.vendor_job_id)
    paused = await ecore.status(job.vendor_job_id)
    assert (paused.state, paused.vendor_status) == (JobState.NEEDS_ACTION, "paused")
    assert paused.results_available
    partial = flat(await collect(ecore, paused))
    assert 40 <= len(partial) < 100

    sim.config.ecore.wallet = 0
    with pytest.raises(VendorPaymentError) as caught:
        await ecore.resume(job.vendor_job_id)
    assert caught.value.required
    assert caught.value.balance == 0

    sim.config.ecore.wallet = 1000
    await ecore.resume(job.vendor_job_id)
    assert (await ecore.status(job.vendor_job_id)).state is JobState.RUNNING


async def test_pausing_a_job_that_is_not_running_is_rejected(ecore):
    [job] = await ecore.submit(SubmitRequest(rows=contacts(3)))
    with pytest.raises(VendorRejectedError, match="in-progress"):
        await ecore.pause(job.vendor_job_id)


async def test_results_before_ready_are_rejected(ecore):
    [job] = await ecore.submit(SubmitRequest(rows=contacts(3)))
    snapshot = await ecore.status(job.vendor_job_id)
    with pytest.raises(VendorRejectedError, match="Results not ready"):
        await collect(ecore, snapshot)


@pytest.mark.parametrize(
    ("count", "start", "pages", "requests"),
    [(200, 0, [200], 1), (450, 0, [200, 200, 50], 3), (30, 30, [], 1), (450, 250, [150, 50], 2)],
)
async def test_results_pagination(ecore, sim, calls, count, start, pages, requests):
    [job] = await ecore.submit(SubmitRequest(rows=contacts(count)))
    await settle(sim)
    snapshot = await ecore.status(job.vendor_job_id)
    calls.clear()

    got = await collect(ecore, snapshot, start)

    assert [len(page) for page in got] == pages
    records = flat(got)
    assert [r.position for r in records] == list(range(start, count))
    assert [r.input_id for r in records] == [c["contact_email"] for c in contacts(count)][start:]
    assert all(r.data["imported_last_name"] for r in records)
    assert calls[("ecore", "GET /api/v1/enrichment/result/{id}/")] == requests


async def test_list_status_reads_many_jobs_in_one_call(ecore, sim, calls):
    ids = [(await ecore.submit(SubmitRequest(rows=contacts(1))))[0].vendor_job_id for _ in range(3)]
    calls.clear()

    found = await ecore.list_status([ids[0], ids[2], "missing"])

    assert set(found) == {ids[0], ids[2]}
    assert all(s.state is JobState.QUEUED for s in found.values())
    assert calls == {("ecore", "GET /api/v1/enrichment/status/"): 1}

    calls.clear()
    assert set(await ecore.list_status([], also=[ids[1], "missing"])) == {ids[1]}
    assert calls == {("ecore", "GET /api/v1/enrichment/status/"): 1}


async def test_unknown_job_is_not_found(ecore):
    with pytest.raises(VendorNotFoundError):
        await ecore.status("00000000-0000-4000-8000-000000000000")


async def test_ambiguous_submit_adopts_a_job_submitted_meanwhile_once(ecore, sim):
    sim.set_fault("ecore", server_errors=1, endpoint="POST /api/v1/enrichment/submit/")
    with pytest.raises(VendorTransientError, match="no job was created") as caught:
        await ecore.submit(SubmitRequest(rows=contacts(2)))
    assert not isinstance(caught.value, VendorAmbiguousError)

    landed = sim.ecore.add_job(contacts(2))
    sim.set_fault("ecore", server_errors=1, endpoint="POST /api/v1/enrichment/submit/")
    [job] = await ecore.submit(SubmitRequest(rows=contacts(2)))
    assert job.vendor_job_id == landed.job_id

    sim.set_fault("ecore", server_errors=1, endpoint="POST /api/v1/enrichment/submit/")
    with pytest.raises(VendorTransientError, match="no job was created"):
        await ecore.submit(SubmitRequest(rows=contacts(2)))

    sim.ecore.add_job(contacts(2))
    sim.ecore.add_job(contacts(2))
    sim.set_fault("ecore", server_errors=1, endpoint="POST /api/v1/enrichment/submit/")
    with pytest.raises(VendorAmbiguousError):
        await ecore.submit(SubmitRequest(rows=contacts(2)))


async def test_an_ambiguous_submit_whose_job_list_cannot_be_read_stays_ambiguous(ecore, sim):
    """A retry could bill the part twice: the submit is settled only by a list that answers."""
    sim.set_fault("ecore", server_errors=2)
    with pytest.raises(VendorAmbiguousError, match=r"could not be read back: .*503"):
        await ecore.submit(SubmitRequest(rows=contacts(2)))
    assert sim.stats.count("ecore", "GET /api/v1/enrichment/status/") == 1
