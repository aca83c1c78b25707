from __future__ import annotations

import pytest

from enrichwatch.errors import (
    ActionNotSupportedError,
    VendorAmbiguousError,
    VendorAuthError,
    VendorNotFoundError,
    VendorRejectedError,
    VendorTransientError,
)
from enrichwatch.models import JobState, VendorName
from enrichwatch.vendors.base import SubmitRequest
from enrichwatch.vendors.brightlocal import BrightLocalAdapter
from tests.vendors.conftest import collect, flat


def profiles(n: int) -> list[dict[str, str]]:
    return [
        {"profile-url": f"https://maps.example.com/place/{i}", "country": "USA"} for i in range(n)
    ]


@pytest.fixture
def bright(make) -> BrightLocalAdapter:
    adapter: BrightLocalAdapter = make(VendorName.BRIGHTLOCAL)
    return adapter


async def settle(sim) -> None:
    await sim.advance(24 * 3600)


@pytest.mark.parametrize("as_string", [True, False])
async def test_create_add_commit(bright, sim, calls, as_string):
    sim.config.brightlocal.batch_id_as_string = as_string

    [job] = await bright.submit(
        SubmitRequest(rows=profiles(3), callback_url="http://127.0.0.1:9/hooks/brightlocal/t0k")
    )

    batch = sim.brightlocal.batches[int(job.vendor_job_id)]
    assert job.vendor_job_id == str(batch.batch_id)
    assert [j.params["profile-url"] for j in batch.jobs] == [r["profile-url"] for r in profiles(3)]
    assert job.raw["job-ids"] == [j.job_id for j in batch.jobs]
    assert batch.run is not None, "the adapter commits the batch itself"
    assert (batch.callback, batch.callback_format) == (
        "http://127.0.0.1:9/hooks/brightlocal/t0k",
        "json",
    )
    assert calls == {
        ("brightlocal", "POST /v4/batch"): 1,
        ("brightlocal", "POST /v4/ld/fetch-reviews"): 3,
        ("brightlocal", "PUT /v4/batch"): 1,
    }


async def test_a_job_the_vendor_refuses_deletes_the_uncommitted_batch(bright, sim):
    rows = [*profiles(1), {"profile-url": "not a url", "country": "USA"}]

    with pytest.raises(VendorRejectedError, match="INVALID_PROFILE_URL"):
        await bright.submit(SubmitRequest(rows=rows))

    [batch] = sim.brightlocal.batches.values()
    assert batch.deleted
    assert batch.run is None


async def test_an_ambiguous_add_deletes_the_batch_and_is_safe_to_retry(bright, sim):
    sim.set_fault("brightlocal", server_errors=1, endpoint="POST /v4/ld/fetch-reviews")

    with pytest.raises(VendorTransientError, match="batch deleted"):
        await bright.submit(SubmitRequest(rows=profiles(2)))
    assert all(b.deleted for b in sim.brightlocal.batches.values())


async def test_created_batch_is_submitted_until_committed(bright, sim):
    created = await bright.call("POST", "/v4/batch")
    batch_id = str(created["batch-id"])
    await bright.call("POST", "/v4/ld/fetch-reviews", form={"batch-id": batch_id, **profiles(1)[0]})

    snapshot = await bright.status(batch_id)
    assert (snapshot.state, snapshot.vendor_status) == (JobState.SUBMITTED, "Created")

    await bright.commit(batch_id)
    await bright.commit(batch_id)
    committed = await bright.status(batch_id)
    assert (committed.state, committed.vendor_status) == (JobState.QUEUED, "Committed")
    assert not committed.results_available


async def test_status_and_results_through_a_run(bright, sim):
    sim.config.brightlocal.profile.record_failure_rate = 0.25
    [job] = await bright.submit(SubmitRequest(rows=profiles(40)))
    run = sim.brightlocal.batches[int(job.vendor_job_id)].run
    assert run is not None

    sim.clock.advance_to(run.processed_at(20))
    running = await bright.status(job.vendor_job_id)
    assert (running.state, running.vendor_status) == (JobState.RUNNING, "Running")
    assert running.total == 40
    assert 0 < running.done < 40
    assert running.results_available, "results grow while the batch runs"

    await settle(sim)
    finished = await bright.status(job.vendor_job_id)
    assert (finished.state, finished.vendor_status) == (JobState.COMPLETED, "Finished")
    assert (finished.done, finished.total) == (40, 40)
    assert finished.failed
    assert finished.error
    assert "failed" in finished.error

    bright.records_per_page = 15
    pages = await collect(bright, finished)
    records = flat(pages)
    assert [len(p) for p in pages] == [15, 15, 10]
    assert [r.position for r in records] == job.raw["job-ids"]
    assert [int(r.input_id) for r in records] == job.raw["job-ids"]
    assert sum(r.status == "Failed" for r in records) == finished.failed
    done = next(r for r in records if r.status == "Completed")
    assert done.data["job_type"] == "LdFetchReviews"
    assert done.data["results"][0]["reviews"]


async def test_results_from_the_snapshot_cost_no_call(bright, sim, calls):
    [job] = await bright.submit(SubmitRequest(rows=profiles(5)))
    await settle(sim)
    snapshot = await bright.status(job.vendor_job_id)
    calls.clear()

    records = flat(await collect(bright, snapshot))

    assert [r.position for r in records] == job.raw["job-ids"]
    assert not calls


async def test_results_of_an_empty_running_batch(bright, sim):
    [job] = await bright.submit(SubmitRequest(rows=profiles(5)))
    snapshot = await bright.status(job.vendor_job_id)

    assert not snapshot.results_available
    assert await collect(bright, snapshot) == []


async def test_stopped_batch_failed_with_partial_results(bright, sim):
    [job] = await bright.submit(SubmitRequest(rows=profiles(30)))
    run = sim.brightlocal.batches[int(job.vendor_job_id)].run
    assert run is not None
    sim.clock.advance_to(run.processed_at(10))

    await bright.stop(job.vendor_job_id)
    await settle(sim)

    stopped = await bright.status(job.vendor_job_id)
    assert (stopped.state, stopped.vendor_status) == (JobState.FAILED, "Stopped")
    assert stopped.results_available
    assert 0 < len(flat(await collect(bright, stopped))) < 30


async def test_delete_then_the_batch_is_gone(bright):
    [job] = await bright.submit(SubmitRequest(rows=profiles(1)))
    await bright.delete(job.vendor_job_id)

    with pytest.raises(VendorNotFoundError):
        await bright.status(job.vendor_job_id)


async def test_wrong_key_is_an_auth_error(make):
    stranger = make(VendorName.BRIGHTLOCAL, api_key="wrong")
    with pytest.raises(VendorAuthError, match="INVALID_API_KEY"):
        await stranger.status("17")


async def test_no_list_and_no_resume(bright):
    with pytest.raises(ActionNotSupportedError):
        await bright.list_status(["17"])
    with pytest.raises(ActionNotSupportedError):
        await bright.resume("17")


@pytest.mark.parametrize(
    ("failing", "error"),
    [
        # The commit fails and is read back as still uncommitted: committed again.
        (["PUT /v4/batch"], None),
        # Not read back, but deleted: it can never run, so a retry is safe.
        (["PUT /v4/batch", "GET /v4/batch"], "batch deleted"),
        # Neither: it may be running and billing, so the submit stays unsettled.
        (["PUT /v4/batch", "GET /v4/batch", "DELETE /v4/batch"], "could not be read back"),
    ],
)
async def test_an_ambiguous_commit_is_retried_only_once_settled(make, sim, failing, error):
    async def commit_fails(_batch_id: str) -> None:
        sim.set_fault("brightlocal", server_errors=len(failing), endpoint=failing)

    bright = make(VendorName.BRIGHTLOCAL, on_created=commit_fails)
    if error is None:
        [job] = await bright.submit(SubmitRequest(rows=profiles(1)))
        assert sim.brightlocal.batches[int(job.vendor_job_id)].run is not None
        return
    with pytest.raises(VendorTransientError, match=error) as caught:
        await bright.submit(SubmitRequest(rows=profiles(1)))
    [batch] = sim.brightlocal.batches.values()
    assert batch.deleted == (error == "batch deleted")
    assert isinstance(caught.value, VendorAmbiguousError) == (error != "batch deleted")
