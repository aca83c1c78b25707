from __future__ import annotations

import pytest

from enrichwatch.errors import (
    InputError,
    VendorAmbiguousError,
    VendorAuthError,
    VendorNotFoundError,
    VendorRejectedError,
    VendorTransientError,
)
from enrichwatch.models import JobState, VendorName
from enrichwatch.vendors.answers import map_status
from enrichwatch.vendors.base import SubmitRequest
from enrichwatch.vendors.reprompt import STATES, RepromptAdapter
from tests.vendors.conftest import collect, flat

ORG = "acme"


def places(n: int, prefix: str = "store") -> list[dict[str, str]]:
    return [
        {
            "place_id": f"{prefix}_{i:06d}",
            "name": f"Store {i}",
            "full_address": f"{i} Main St, New York, NY 10001",
            "latitude": "40.7128",
            "longitude": "-74.0060",
        }
        for i in range(n)
    ]


@pytest.fixture
def reprompt(make, sim) -> RepromptAdapter:
    sim.config.reprompt.org = ORG
    adapter: RepromptAdapter = make(VendorName.REPROMPT, org=ORG)
    return adapter


async def settle(sim) -> None:
    await sim.advance(48 * 3600)


async def test_submit_sends_places_with_typed_inputs(reprompt, sim):
    [job] = await reprompt.submit(
        SubmitRequest(rows=places(2), name="Q1 stores", options={"attribute_set": "core"})
    )

    batch = sim.reprompt.batches[(ORG, job.vendor_job_id)]
    assert batch.batch_name == "Q1 stores"
    assert batch.place_ids == ["store_000000", "store_000001"]
    assert batch.inputs[0] == {
        "name": "Store 0",
        "full_address": "0 Main St, New York, NY 10001",
        "latitude": 40.7128,
        "longitude": -74.006,
    }


async def test_120000_places_become_three_batches(reprompt, sim):
    jobs = await reprompt.submit(
        SubmitRequest(rows=places(120_000), name="big", options={"batch_id": "big-run"})
    )

    assert [j.vendor_job_id for j in jobs] == ["big-run-1", "big-run-2", "big-run-3"]
    sizes = [len(sim.reprompt.batches[(ORG, j.vendor_job_id)].place_ids) for j in jobs]
    assert sizes == [50_000, 50_000, 20_000]
    assert sim.reprompt.batches[(ORG, "big-run-3")].batch_name == "big (3/3)"


async def test_bad_rows_and_bad_options_are_rejected(reprompt):
    with pytest.raises(InputError, match="latitude"):
        await reprompt.submit(SubmitRequest(rows=[{**places(1)[0], "latitude": "north"}]))
    with pytest.raises(VendorRejectedError) as caught:
        await reprompt.submit(SubmitRequest(rows=places(1), options={"attribute_set": "most"}))
    assert caught.value.status == 422


async def test_another_org_is_an_auth_error(make, sim):
    sim.config.reprompt.org = ORG
    stranger = make(VendorName.REPROMPT, org="someone-else")
    with pytest.raises(VendorAuthError) as caught:
        await stranger.status("whatever")
    assert caught.value.status == 403


async def test_status_mapping_and_counts_through_a_run(reprompt, sim):
    [job] = await reprompt.submit(SubmitRequest(rows=places(200)))
    assert map_status(reprompt.name, STATES, "queued") is JobState.QUEUED

    pending = await reprompt.status(job.vendor_job_id)
    assert (pending.state, pending.vendor_status) == (JobState.QUEUED, "pending")
    assert (pending.done, pending.failed, pending.total) == (0, 0, 200)

    run = sim.reprompt.batches[(ORG, job.vendor_job_id)].rounds[0].job
    sim.clock.advance_to(run.processed_at(100))
    running = await reprompt.status(job.vendor_job_id)
    assert (running.state, running.vendor_status) == (JobState.RUNNING, "in_progress")
    assert running.done == running.raw["metadata"]["status_counts"]["completed"] + running.failed
    assert 0 < running.done < 200

    await settle(sim)
    done = await reprompt.status(job.vendor_job_id)
    assert (done.state, done.done, done.total) == (JobState.COMPLETED, 200, 200)
    assert done.failed == len(done.raw["jobs"]["failed"])
    assert done.results_available


async def test_counts_fall_back_to_the_job_arrays(reprompt):
    [job] = await reprompt.submit(SubmitRequest(rows=places(3)))
    assert job.raw["metadata"] is None

    listed_without_metadata = reprompt._snapshot(job.raw, job.vendor_job_id)

    assert (listed_without_metadata.done, listed_without_metadata.total) == (0, 3)


async def test_failed_batch_still_offers_its_completed_places(reprompt, sim):
    sim.config.reprompt.profile.record_failure_rate = 0.8
    [job] = await reprompt.submit(SubmitRequest(rows=places(50)))
    await settle(sim)

    failed = await reprompt.status(job.vendor_job_id)

    assert (failed.state, failed.vendor_status) == (JobState.FAILED, "failed")
    assert failed.results_available
    records = flat(await collect(reprompt, failed))
    assert sum(r.status == "completed" for r in records) == failed.done - failed.failed


@pytest.mark.parametrize(
    ("count", "start", "pages", "requests"),
    [(100, 0, [100], 1), (250, 0, [100, 100, 50], 3), (30, 30, [], 1), (250, 120, [100, 30], 2)],
)
async def test_results_pagination(reprompt, sim, calls, count, start, pages, requests):
    reprompt.results_page_size = 100  # the paging under test, whatever the default size
    [job] = await reprompt.submit(SubmitRequest(rows=places(count)))
    await settle(sim)
    snapshot = await reprompt.status(job.vendor_job_id)
    calls.clear()

    got = await collect(reprompt, snapshot, start)

    assert [len(page) for page in got] == pages
    records = flat(got)
    assert [r.position for r in records] == list(range(start, count))
    assert [r.input_id for r in records] == [p["place_id"] for p in places(count)][start:]
    assert calls[("reprompt", "GET /v1/{org}/place_enrichment/jobs")] == requests


async def test_reprocess_reruns_failed_places(reprompt, sim):
    sim.config.reprompt.profile.record_failure_rate = 0.2
    [job] = await reprompt.submit(SubmitRequest(rows=places(40)))
    await settle(sim)
    before = await reprompt.status(job.vendor_job_id)
    assert before.state is JobState.COMPLETED
    assert before.failed

    await reprompt.reprocess(job.vendor_job_id, {"failed_only": True, "refresh": True})

    after = await reprompt.status(job.vendor_job_id)
    assert after.state in (JobState.QUEUED, JobState.RUNNING)
    assert len(sim.reprompt.batches[(ORG, job.vendor_job_id)].rounds) == 2


async def test_list_status_pages_only_as_far_as_needed(reprompt, sim, calls):
    reprompt.list_page_size = 2
    ids = [
        (await reprompt.submit(SubmitRequest(rows=places(2, f"b{i}"))))[0].vendor_job_id
        for i in range(5)
    ]
    calls.clear()

    newest = await reprompt.list_status([ids[-1]])
    assert list(newest) == [ids[-1]]
    assert newest[ids[-1]].total == 2
    assert calls[("reprompt", "GET /v1/{org}/place_enrichment/batches")] == 1

    calls.clear()
    assert set(await reprompt.list_status([ids[0], "missing"])) == {ids[0]}
    assert calls[("reprompt", "GET /v1/{org}/place_enrichment/batches")] == 3

    calls.clear()  # jobs asked for only `also` get no page of their own
    assert set(await reprompt.list_status([], also=[ids[0], ids[-1]])) == {ids[-1]}
    assert calls[("reprompt", "GET /v1/{org}/place_enrichment/batches")] == 1
    calls.clear()
    assert set(await reprompt.list_status([ids[2]], also=[ids[0], ids[3]])) == {ids[2], ids[3]}
    assert calls[("reprompt", "GET /v1/{org}/place_enrichment/batches")] == 2


async def test_list_status_on_an_empty_account(reprompt, calls):
    assert await reprompt.list_status(["missing"]) == {}
    assert calls[("reprompt", "GET /v1/{org}/place_enrichment/batches")] == 1


async def test_unknown_batch_is_not_found(reprompt):
    with pytest.raises(VendorNotFoundError):
        await reprompt.status("missing")


async def test_ambiguous_submit_reads_its_own_batch_id_back(reprompt, sim):
    sim.set_fault("reprompt", server_errors=1, endpoint="POST /v1/{org}/place_enrichment/batches")
    with pytest.raises(VendorTransientError, match="no batch") as caught:
        await reprompt.submit(SubmitRequest(rows=places(2), options={"batch_id": "mine"}))
    assert not isinstance(caught.value, VendorAmbiguousError)
    assert sim.reprompt.batches == {}

    await reprompt.submit(SubmitRequest(rows=places(2), options={"batch_id": "mine"}))
    sim.set_fault("reprompt", server_errors=1, endpoint="POST /v1/{org}/place_enrichment/batches")
    [adopted] = await reprompt.submit(SubmitRequest(rows=places(2), options={"batch_id": "mine"}))

    assert adopted.vendor_job_id == "mine"
    assert len(sim.reprompt.batches[(ORG, "mine")].place_ids) == 2


async def test_an_ambiguous_submit_whose_batch_cannot_be_read_back_stays_ambiguous(reprompt, sim):
    """Sending a batch id again appends to that batch, so one not read back is not resent."""
    sim.set_fault("reprompt", server_errors=2)
    with pytest.raises(VendorAmbiguousError, match=r"could not be read back: .*503"):
        await reprompt.submit(SubmitRequest(rows=places(2), options={"batch_id": "mine"}))
    assert sim.stats.count("reprompt", "GET /v1/{org}/place_enrichment/batches/{id}") == 1
