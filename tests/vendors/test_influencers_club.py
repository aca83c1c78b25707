from __future__ import annotations

import json
from decimal import Decimal

import pytest

from enrichwatch.errors import (
    InputError,
    VendorAmbiguousError,
    VendorNotFoundError,
    VendorProtocolError,
    VendorRejectedError,
    VendorTransientError,
)
from enrichwatch.models import JobState, VendorName
from enrichwatch.vendors.answers import map_status
from enrichwatch.vendors.base import SubmitRequest
from enrichwatch.vendors.influencers_club import (
    MAX_UPLOAD_BYTES,
    STATES,
    InfluencersClubAdapter,
    JsonArrayItems,
)
from tests.vendors.conftest import collect, flat

BASIC = {"enrichment_mode": "basic"}


def emails(n: int) -> list[dict[str, str]]:
    return [{"email": f"creator{i}@example.com"} for i in range(n)]


@pytest.fixture
def club(make) -> InfluencersClubAdapter:
    adapter: InfluencersClubAdapter = make(VendorName.INFLUENCERS_CLUB)
    return adapter


async def finish(sim) -> None:
    await sim.advance(24 * 3600)


async def test_upload_is_one_column_with_the_options(club, sim):
    [job] = await club.submit(
        SubmitRequest(
            rows=[{"handle": "@ada"}, {"handle": "@grace"}],
            options={"enrichment_mode": "raw", "platform": "instagram", "metadata": {"run": 7}},
        )
    )

    batch = sim.influencers_club.batches[job.vendor_job_id]
    assert batch.inputs == ["@ada", "@grace"]
    assert (batch.mode, batch.platform, batch.metadata) == ("raw", "instagram", {"run": 7})
    assert job.raw["status"] == "validating"
    assert map_status(club.name, STATES, job.raw["status"]) is JobState.QUEUED


async def test_more_than_one_column_or_no_mode_is_refused_locally(club, calls):
    with pytest.raises(InputError, match="one column"):
        await club.submit(SubmitRequest(rows=[{"handle": "a", "email": "b@c.d"}], options=BASIC))
    with pytest.raises(InputError, match="enrichment_mode"):
        await club.submit(SubmitRequest(rows=emails(1)))
    assert not calls


async def test_vendor_field_errors_are_rejected(club):
    with pytest.raises(VendorRejectedError, match="platform") as caught:
        await club.submit(
            SubmitRequest(rows=[{"handle": "ada"}], options={"enrichment_mode": "full"})
        )
    assert caught.value.status == 400


async def test_an_upload_over_ten_megabytes_becomes_several_batches(club, sim):
    long_value = "x" * 1000
    rows = [{"email": f"{long_value}{i}@example.com"} for i in range(11_000)]

    jobs = await club.submit(SubmitRequest(rows=rows, options=BASIC))

    uploads = [sim.influencers_club.batches[j.vendor_job_id].inputs for j in jobs]
    assert len(jobs) == 2
    assert sum(map(len, uploads)) == 11_000
    assert len("email\n") + sum(len(value) + 1 for value in uploads[0]) <= MAX_UPLOAD_BYTES


async def test_status_mapping_through_a_run(club, sim):
    [job] = await club.submit(SubmitRequest(rows=emails(300), options=BASIC))

    queued = await club.status(job.vendor_job_id)
    assert (queued.state, queued.vendor_status, queued.total) == (JobState.QUEUED, "queued", 300)

    batch = sim.influencers_club.batches[job.vendor_job_id]
    sim.clock.advance_to(batch.job.processed_at(150))
    running = await club.status(job.vendor_job_id)
    assert (running.state, running.vendor_status) == (JobState.RUNNING, "processing")
    assert running.done == running.raw["processed_rows"]
    assert 0 < running.done < 300

    await finish(sim)
    done = await club.status(job.vendor_job_id)
    assert (done.state, done.done, done.total) == (JobState.COMPLETED, 300, 300)
    assert done.failed == done.raw["failed_count"]
    assert done.credits_used == Decimal(done.raw["credits_used"])
    assert isinstance(done.credits_used, Decimal)
    assert done.results_available


async def test_failed_batch(club, sim):
    sim.config.influencers_club.profile.job_failure_rate = 1.0
    [job] = await club.submit(SubmitRequest(rows=emails(20), options=BASIC))
    await finish(sim)

    failed = await club.status(job.vendor_job_id)

    assert (failed.state, failed.vendor_status) == (JobState.FAILED, "failed")
    assert not failed.results_available


async def test_credit_pause_needs_action_and_resume_continues(club, sim):
    sim.config.influencers_club.profile.credit_pause_rate = 1.0
    [job] = await club.submit(SubmitRequest(rows=emails(100), options=BASIC))
    await finish(sim)

    paused = await club.status(job.vendor_job_id)
    assert (paused.state, paused.vendor_status) == (
        JobState.NEEDS_ACTION,
        "paused_insufficient_credits",
    )
    assert paused.error
    assert "credits" in paused.error
    assert not paused.results_available

    await club.resume(job.vendor_job_id)
    await finish(sim)
    assert (await club.status(job.vendor_job_id)).state is JobState.COMPLETED


async def test_resuming_a_batch_that_is_not_paused_is_rejected(club):
    [job] = await club.submit(SubmitRequest(rows=emails(3), options=BASIC))
    with pytest.raises(VendorRejectedError, match="not paused"):
        await club.resume(job.vendor_job_id)


@pytest.mark.parametrize(("rows", "page_sizes"), [(10, [10]), (250, [100, 100, 50])])
async def test_results_stream_the_json_array_in_pages(make, sim, rows, page_sizes):
    club = make(VendorName.INFLUENCERS_CLUB)
    club.records_per_page = 100
    sim.config.influencers_club.profile.record_failure_rate = 0.1
    [job] = await club.submit(SubmitRequest(rows=emails(rows), options=BASIC))
    await finish(sim)
    snapshot = await club.status(job.vendor_job_id)

    pages = await collect(club, snapshot)

    records = flat(pages)
    assert [len(page) for page in pages] == page_sizes
    assert [r.input_id for r in records] == [row["email"] for row in emails(rows)]
    assert [r.position for r in records] == list(range(rows))
    failures = [r for r in records if r.status == "failed"]
    assert len(failures) == snapshot.failed
    assert all(r.data is None for r in failures)
    assert all(r.data["username"] for r in records if r.status == "success")


async def test_results_resume_from_a_position(club, sim):
    [job] = await club.submit(SubmitRequest(rows=emails(40), options=BASIC))
    await finish(sim)
    snapshot = await club.status(job.vendor_job_id)

    resumed = flat(await collect(club, snapshot, start=35))

    assert [r.input_id for r in resumed] == [row["email"] for row in emails(40)[35:]]


async def test_results_before_finished_are_rejected(club):
    [job] = await club.submit(SubmitRequest(rows=emails(5), options=BASIC))
    snapshot = await club.status(job.vendor_job_id)

    with pytest.raises(VendorRejectedError, match="not finished"):
        await collect(club, snapshot)


async def test_unknown_batch_is_not_found(club):
    with pytest.raises(VendorNotFoundError):
        await club.status("no-such-batch")


async def test_a_5xx_on_upload_is_ambiguous_since_there_is_no_list(club, sim):
    sim.set_fault("influencers_club", server_errors=1, server_error_status=502)
    with pytest.raises(VendorAmbiguousError):
        await club.submit(SubmitRequest(rows=emails(2), options=BASIC))


def test_json_array_items_survive_any_chunking():
    items = [
        {"input_value": f"c{i}", "status": "success", "enrichment_data": {"n": [i, "é"]}}
        for i in range(30)
    ]
    body = (" [ " + " , ".join(json.dumps(item) for item in items) + " ]\n").encode()
    for size in (1, 2, 7, 64, len(body)):
        parser = JsonArrayItems("test")
        got = []
        for i in range(0, len(body), size):
            got += parser.feed(body[i : i + size])
        got += parser.close()
        assert got == items, size


def test_json_array_items_empty_and_broken_bodies():
    parser = JsonArrayItems("test")
    assert parser.feed(b"[]") == []
    assert parser.close() == []

    cut = JsonArrayItems("test")
    assert cut.feed(b'[{"a": 1}, {"b"') == [{"a": 1}]
    with pytest.raises(VendorTransientError, match="truncated"):
        cut.close()

    with pytest.raises(VendorProtocolError):
        JsonArrayItems("test").feed(b'{"detail": "not an array"}')
    with pytest.raises(VendorProtocolError):
        JsonArrayItems("test").feed(b"[1 2]")
