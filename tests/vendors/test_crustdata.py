from __future__ import annotations

import pytest

from enrichwatch.errors import (
    InputError,
    VendorAmbiguousError,
    VendorConcurrencyLimitError,
    VendorDownloadExpiredError,
    VendorPartialSubmitError,
    VendorPaymentError,
    VendorRejectedError,
    VendorTransientError,
    VendorUntrustedUrlError,
)
from enrichwatch.models import JobState, VendorName
from enrichwatch.vendors.base import SubmitRequest
from enrichwatch.vendors.crustdata import CrustdataAdapter
from tests.vendors.conftest import collect, flat

PROFILE = "professional_network_profile_urls"


def profiles(n: int, offset: int = 0) -> list[dict[str, str]]:
    return [{PROFILE: f"https://www.linkedin.com/in/person-{offset + i}"} for i in range(n)]


@pytest.fixture
def crust(make) -> CrustdataAdapter:
    adapter: CrustdataAdapter = make(VendorName.CRUSTDATA)
    return adapter


async def test_submit_sets_webhook_and_version_header(crust, sim):
    jobs = await crust.submit(
        SubmitRequest(rows=profiles(3), callback_url="http://127.0.0.1:9/hooks/crustdata/t0k")
    )

    [job] = jobs
    held = sim.crustdata.jobs[job.vendor_job_id]
    assert held.webhook_url == "http://127.0.0.1:9/hooks/crustdata/t0k"
    assert held.identifiers == [row[PROFILE] for row in profiles(3)]
    assert job.raw["status"] == "pending"


@pytest.mark.parametrize(
    ("endpoint", "column", "value", "action", "entity"),
    [
        ("company", "domains", "acme.com", "enrich", "company"),
        ("person", "business_emails", "jane@acme.com", "enrich", "person"),
        ("contact", PROFILE, "https://www.linkedin.com/in/jane", "contact_enrich", "person"),
    ],
)
async def test_the_column_name_picks_the_identifier_type(
    crust, endpoint, column, value, action, entity
):
    options = {"endpoint": endpoint}
    if endpoint == "contact":
        options["fields"] = ["business_email"]
    [job] = await crust.submit(SubmitRequest(rows=[{column: value}], options=options))

    assert (job.raw["action"], job.raw["entity"], job.raw["identifier_count"]) == (
        action,
        entity,
        1,
    )


async def test_two_identifier_columns_are_refused_before_any_call(crust, calls):
    rows = [{PROFILE: "https://www.linkedin.com/in/a", "business_emails": "a@b.com"}]

    with pytest.raises(InputError, match="exactly one identifier column"):
        await crust.submit(SubmitRequest(rows=rows))
    assert not calls


async def test_vendor_validation_error_is_rejected(crust):
    with pytest.raises(VendorRejectedError, match="Unsupported field") as caught:
        await crust.submit(SubmitRequest(rows=profiles(2), options={"fields": ["nonsense"]}))
    assert caught.value.status == 400


async def test_input_over_the_cap_becomes_several_jobs(crust, sim):
    jobs = await crust.submit(
        SubmitRequest(
            rows=profiles(650), options={"endpoint": "contact", "fields": ["business_email"]}
        )
    )

    assert [sim.crustdata.jobs[j.vendor_job_id].job.total for j in jobs] == [300, 300, 50]


async def test_active_jobs_cap_is_its_own_error_and_distinct_from_rate_limit(crust, sim):
    for i in range(5):
        await crust.submit(SubmitRequest(rows=profiles(1, offset=i)))

    with pytest.raises(VendorConcurrencyLimitError) as caught:
        await crust.submit(SubmitRequest(rows=profiles(1, offset=9)))
    assert caught.value.status == 429

    sim.set_fault("crustdata", rate_limit=1, retry_after=17)
    with pytest.raises(VendorTransientError) as limited:
        await crust.submit(SubmitRequest(rows=profiles(1, offset=10)))
    assert not isinstance(limited.value, VendorConcurrencyLimitError)
    assert limited.value.retry_after == 17


async def test_cap_hit_part_way_names_the_jobs_already_running(crust, sim):
    for i in range(4):
        await crust.submit(SubmitRequest(rows=profiles(1, offset=i)))

    with pytest.raises(VendorPartialSubmitError) as caught:
        await crust.submit(
            SubmitRequest(
                rows=profiles(400), options={"endpoint": "contact", "fields": ["business_email"]}
            )
        )

    assert caught.value.rows_submitted == 300
    [running] = caught.value.submitted_ids
    assert sim.crustdata.jobs[running].job.total == 300
    assert isinstance(caught.value.__cause__, VendorConcurrencyLimitError)


async def test_out_of_credits_is_a_payment_error_with_the_numbers(crust, sim):
    sim.config.crustdata.credits = 2

    with pytest.raises(VendorPaymentError) as caught:
        await crust.submit(SubmitRequest(rows=profiles(5)))

    assert (caught.value.required, caught.value.balance) == (5, 2)


async def test_status_moves_pending_processing_completed(crust, sim):
    [job] = await crust.submit(SubmitRequest(rows=profiles(200)))

    pending = await crust.status(job.vendor_job_id)
    assert (pending.state, pending.vendor_status, pending.total) == (
        JobState.QUEUED,
        "pending",
        200,
    )
    assert not pending.results_available

    crust_job = sim.crustdata.jobs[job.vendor_job_id].job
    sim.clock.advance_to(crust_job.processed_at(100))
    running = await crust.status(job.vendor_job_id)
    assert (running.state, running.vendor_status) == (JobState.RUNNING, "processing")
    assert 0 < (running.done or 0) < 200

    await sim.advance(3600)
    done = await crust.status(job.vendor_job_id)
    assert (done.state, done.done, done.total) == (JobState.COMPLETED, 200, 200)
    assert done.failed == 200 - done.raw["entities_fulfilled"]
    assert done.results_available
    assert done.raw["download_urls"]


async def test_failed_job_carries_the_vendor_message(crust, sim):
    sim.config.crustdata.profile.job_failure_rate = 1.0
    [job] = await crust.submit(SubmitRequest(rows=profiles(20)))
    await sim.advance(3600)

    failed = await crust.status(job.vendor_job_id)

    assert (failed.state, failed.vendor_status) == (JobState.FAILED, "failed")
    assert failed.error
    assert "failed" in failed.error
    assert not failed.results_available


async def test_results_stream_every_part_without_our_authorization(make, sim):
    sim.config.crustdata.part_size = 40
    sim.config.crustdata.profile.record_failure_rate = 0.0
    crust = make(VendorName.CRUSTDATA)
    crust.records_per_page = 25
    [job] = await crust.submit(SubmitRequest(rows=profiles(100)))
    await sim.advance(3600)
    snapshot = await crust.status(job.vendor_job_id)
    assert len(snapshot.raw["download_urls"]) == 3

    pages = await collect(crust, snapshot)

    records = flat(pages)
    assert [len(page) for page in pages] == [25, 25, 25, 25]
    assert [r.position for r in records] == list(range(100))
    assert [r.input_id for r in records] == [row[PROFILE] for row in profiles(100)]
    assert records[0].data["data"]["basic_profile"]["name"]
    assert len(sim.storage.requests) == 3
    assert all(not r.had_authorization and r.status == 200 for r in sim.storage.requests)


async def test_results_resume_from_a_position(crust, sim):
    sim.config.crustdata.part_size = 30
    [job] = await crust.submit(SubmitRequest(rows=profiles(80)))
    await sim.advance(3600)
    snapshot = await crust.status(job.vendor_job_id)
    everything = flat(await collect(crust, snapshot))

    resumed = flat(await collect(crust, snapshot, start=50))

    assert resumed == everything[50:]


async def test_list_snapshot_without_links_reads_status_for_them(crust, sim):
    [job] = await crust.submit(SubmitRequest(rows=profiles(10)))
    await sim.advance(3600)
    listed = (await crust.list_status([job.vendor_job_id]))[job.vendor_job_id]
    assert "download_urls" not in listed.raw

    records = flat(await collect(crust, listed))

    assert len(records) == listed.raw["result_count"]


async def test_zero_results_means_no_download(crust, sim, calls):
    sim.config.crustdata.profile.record_failure_rate = 1.0
    [job] = await crust.submit(SubmitRequest(rows=profiles(5)))
    await sim.advance(3600)
    snapshot = await crust.status(job.vendor_job_id)
    assert snapshot.state is JobState.COMPLETED
    assert snapshot.raw["result_count"] == 0

    assert await collect(crust, snapshot) == []
    assert sim.storage.requests == []
    assert not any(endpoint.startswith("GET download") for _, endpoint in calls)


async def test_a_host_outside_the_allow_list_is_never_fetched(make, sim):
    crust = make(VendorName.CRUSTDATA, download_hosts=["crustdata-batch-api-data.s3.amazonaws.com"])
    [job] = await crust.submit(SubmitRequest(rows=profiles(5)))
    await sim.advance(3600)
    snapshot = await crust.status(job.vendor_job_id)

    with pytest.raises(VendorUntrustedUrlError):
        await collect(crust, snapshot)
    assert sim.storage.requests == []


async def test_expired_links_are_a_distinct_error_and_fresh_links_resume(crust, sim):
    sim.config.crustdata.part_size = 10
    sim.config.crustdata.profile.record_failure_rate = 0.0
    [job] = await crust.submit(SubmitRequest(rows=profiles(30)))
    await sim.advance(3600)
    old = await crust.status(job.vendor_job_id)
    await sim.advance(6 * 24 * 3600)

    with pytest.raises(VendorDownloadExpiredError) as caught:
        await collect(crust, old)
    assert caught.value.status == 403

    fresh = await crust.status(job.vendor_job_id)
    resumed = flat(await collect(crust, fresh, start=12))
    assert [r.position for r in resumed] == list(range(12, 30))


async def test_truncated_gzip_raises_transient_not_partial_garbage(crust, sim):
    sim.config.crustdata.profile.record_failure_rate = 0.0
    [job] = await crust.submit(SubmitRequest(rows=profiles(1200)))
    await sim.advance(3600)
    snapshot = await crust.status(job.vendor_job_id)
    sim.set_fault("crustdata", truncate_gzip=1)

    seen = []

    async def read_all() -> None:
        async for page in crust.results(snapshot):
            seen.extend(page)

    with pytest.raises(VendorTransientError, match="truncated"):
        await read_all()
    assert len(seen) < 1200


async def test_list_status_pages_only_as_far_as_needed(make, sim, calls):
    crust = make(VendorName.CRUSTDATA)
    crust.list_page_size = 2
    ids = []
    for i in range(5):
        [job] = await crust.submit(SubmitRequest(rows=profiles(1, offset=i)))
        ids.append(job.vendor_job_id)
    calls.clear()

    newest = await crust.list_status([ids[-1]])
    assert list(newest) == [ids[-1]]
    assert newest[ids[-1]].state is JobState.QUEUED
    assert calls[("crustdata", "GET /batch")] == 1

    calls.clear()
    oldest = await crust.list_status([ids[0], ids[3]])
    assert set(oldest) == {ids[0], ids[3]}
    assert calls[("crustdata", "GET /batch")] == 3

    calls.clear()
    assert await crust.list_status(["00000000-0000-4000-8000-000000000000"]) == {}
    assert calls[("crustdata", "GET /batch")] == 3

    calls.clear()  # jobs asked for only `also` get no page of their own
    assert set(await crust.list_status([], also=[ids[0], ids[-1]])) == {ids[-1]}
    assert calls[("crustdata", "GET /batch")] == 1


async def test_list_status_on_an_empty_account(crust, calls):
    assert await crust.list_status(["00000000-0000-4000-8000-000000000000"]) == {}
    assert calls[("crustdata", "GET /batch")] == 1


async def test_ambiguous_submit_with_no_job_created_is_safe_to_retry(crust, sim):
    sim.set_fault("crustdata", server_errors=1, endpoint="POST /batch/person/enrich")

    with pytest.raises(VendorTransientError, match="no job was created") as caught:
        await crust.submit(SubmitRequest(rows=profiles(2)))

    assert not isinstance(caught.value, VendorAmbiguousError)
    assert sim.crustdata.jobs == {}


async def test_ambiguous_submit_adopts_the_job_that_was_created(crust, sim):
    sim.crustdata.add_job(50, kind="company")
    landed = sim.crustdata.add_job(2, kind="person")
    sim.set_fault("crustdata", server_errors=1, endpoint="POST /batch/person/enrich")

    [job] = await crust.submit(SubmitRequest(rows=profiles(2)))

    assert job.vendor_job_id == landed.batch_id
    assert len(sim.crustdata.jobs) == 2


async def test_ambiguous_submit_with_lookalikes_refuses_to_guess(crust, sim):
    sim.crustdata.add_job(2, kind="person")
    sim.crustdata.add_job(2, kind="person")
    sim.set_fault("crustdata", server_errors=1, endpoint="POST /batch/person/enrich")

    with pytest.raises(VendorAmbiguousError):
        await crust.submit(SubmitRequest(rows=profiles(2)))
    assert len(sim.crustdata.jobs) == 2


async def test_rate_limit_headers_are_recorded(crust, sim):
    assert crust.rate_limit is None
    [job] = await crust.submit(SubmitRequest(rows=profiles(1)))
    await crust.status(job.vendor_job_id)

    assert crust.rate_limit is not None
    assert crust.rate_limit.limit == sim.config.crustdata.rpm
    assert crust.rate_limit.remaining is not None
    assert crust.rate_limit.remaining < crust.rate_limit.limit


async def test_an_ambiguous_submit_whose_job_list_cannot_be_read_stays_ambiguous(crust, sim):
    """A retry could bill the part twice: the submit is settled only by a list that answers."""
    sim.set_fault("crustdata", server_errors=2)
    with pytest.raises(VendorAmbiguousError, match=r"could not be read back: .*503"):
        await crust.submit(SubmitRequest(rows=profiles(2)))
    assert sim.stats.count("crustdata", "GET /batch") == 1
