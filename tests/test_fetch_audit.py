"""Result fetching and export where they can go wrong: a paused job's partial set when the
job runs again before it is fetched or could not be fetched at all, a results body that breaks
the parser, Crustdata links that expire, CSV exports whose records do not all have the same
fields, and an export that fails part-way. Against the simulator and the receiver over real
HTTP (and the CLI as a subprocess), on the simulator's manual clock."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from typing import Any

import aiohttp
import pytest

from enrichwatch.actions import resume
from enrichwatch.models import JobState, VendorName
from enrichwatch.submission import submit_batch
from enrichwatch.vendors.base import SubmitRequest
from reconciler import check_job_now
from reconciler.checks import check_due_jobs
from reconciler.fetch import MAX_ATTEMPTS, fetch_due_results
from tests.settling import settle
from tests.test_results_and_actions import (  # noqa: F401 (world is a fixture)
    AUTH,
    assert_csv_matches,
    get,
    step_until,
    stored,
    world,
)

ECORE_RESULT = "GET /api/v1/enrichment/result/{id}/"


async def test_a_paused_jobs_partial_set_resumed_before_its_fetch_is_no_failure(world):  # noqa: F811
    """eCore serves results only while a job is paused or completed. A job resumed before
    its partial set was fetched answers "not ready": that fetch is moot (the completion
    brings one of its own), not a failure to report, nor an error left on the finished
    job."""
    job = await world.submit(VendorName.ECORE)
    await world.sim.advance(20)
    await world.services.adapter(VendorName.ECORE).pause(job.vendor_job_id or "")

    async def paused_with_results_pending() -> bool:
        paused = await world.job(job.id)
        return paused.state is JobState.NEEDS_ACTION and paused.results_state == "pending"

    await step_until(world, paused_with_results_pending, step=check_due_jobs)
    await resume(world.services, job.id)
    refused = world.sim.stats.count("ecore", ECORE_RESULT)

    await fetch_due_results(world.rc)

    assert world.sim.stats.count("ecore", ECORE_RESULT) == refused + 1  # it was asked, and refused
    between = await world.job(job.id)
    assert between.results_state == "pending"
    assert between.error is None
    assert "results.fetch_failed" not in await world.events(job.id)

    await settle(world.sim, world.services, world.rc)

    total = await completed_with_every_result(world, job)
    assert [row["position"] for row in stored(world.db, job.id)] == list(range(total))
    events = await world.events(job.id)
    assert "results.fetch_failed" not in events
    assert events.count("results.stored") == 1


async def completed_with_every_result(world, job):  # noqa: F811
    """The eCore job completed with every result the simulator made stored, and no error;
    returns how many."""
    done = await world.job(job.id)
    total = world.view(VendorName.ECORE, job.vendor_job_id).total
    assert (done.state, done.results_state, done.results_count) == (
        JobState.COMPLETED,
        "stored",
        total,
    )
    assert done.error is None
    return total


async def submit_rows(
    world,  # noqa: F811
    vendor: VendorName,
    rows: list[dict[str, str]],
    options: dict[str, Any],
):
    """A batch of these rows sent to the vendor, as one job."""
    request = SubmitRequest(rows=rows, name=vendor.value, options=options)
    (job,) = (await submit_batch(world.services, vendor, request, public_url=world.url)).submitted
    return job


async def test_a_failed_partial_fetch_leaves_no_error_once_every_result_is_stored(world):  # noqa: F811
    """A paused job's partial set that could not be fetched is reported (results fetch_failed,
    the reason as the job's error); once the job completes and its final fetch stores every
    record, that reason no longer describes the job, and the job JSON must not keep it."""
    job = await world.submit(VendorName.ECORE)
    await world.sim.advance(20)
    await world.services.adapter(VendorName.ECORE).pause(job.vendor_job_id or "")
    await checked_until_results_pending(world, [job.id])
    world.sim.set_fault("ecore", server_errors=1, server_error_status=410, endpoint=ECORE_RESULT)

    await fetch_due_results(world.rc)

    failed = await world.job(job.id)
    assert failed.results_state == "fetch_failed"
    assert "HTTP 410" in (failed.error or "")
    await resume(world.services, job.id)
    await settle(world.sim, world.services, world.rc)

    total = await completed_with_every_result(world, job)
    status, _, body = await get(world, f"/api/jobs/{job.id}", AUTH)
    assert status == 200
    shown = json.loads(body)
    assert shown["error"] is None
    assert shown["results"] == {"state": "stored", "count": total}


async def checked_until_results_pending(world, job_ids: list[int]) -> None:  # noqa: F811
    """Check passes only, the clock jumping to each next check, until every job's results
    wait to be fetched."""
    for _ in range(100):
        await check_due_jobs(world.rc)
        jobs = [await world.job(job_id) for job_id in job_ids]
        if all(job.results_state == "pending" for job in jobs):
            return
        due = min(job.next_check_at for job in jobs if job.next_check_at is not None)
        await world.sim.advance_to(max(due, world.sim.clock.now()))
    raise AssertionError("the jobs never finished")


async def test_a_results_body_that_breaks_the_parser_holds_up_no_other_fetch(world):  # noqa: F811
    """A results body the adapter cannot read (here Latin-1 where UTF-8 was expected, an
    error no adapter maps) is retried like a transient failure: it must neither end the pass
    before the other fetches claimed with it (stranding them for a whole lease) nor leave
    its own fetch to be claimed again and again without ever failing visibly."""
    rows = [{"handle": f"crème_brûlée_{n}"} for n in range(12)]
    options = {"enrichment_mode": "full", "platform": "instagram"}
    jobs = [await submit_rows(world, VendorName.INFLUENCERS_CLUB, rows, options) for _ in range(2)]

    await checked_until_results_pending(world, [job.id for job in jobs])
    world.sim.set_fault("influencers_club", latin1_results=1)

    assert await fetch_due_results(world.rc) == 1
    assert world.sim.stats.injected[("influencers_club", "latin1_results")] == 1
    after = {job.id: await world.job(job.id) for job in jobs}
    assert sorted(job.results_state or "" for job in after.values()) == ["fetching", "stored"]
    (unread,) = [job for job in after.values() if job.results_state == "fetching"]
    assert "results.fetch_retry" in await world.events(unread.id)

    await settle(world.sim, world.services, world.rc)
    for job in jobs:
        done = await world.job(job.id)
        assert (done.results_state, done.results_count) == ("stored", len(rows))
        records = stored(world.db, job.id)
        assert [record["input_id"] for record in records] == [row["handle"] for row in rows]


async def test_a_fetch_that_keeps_breaking_fails_visibly_after_bounded_tries(world):  # noqa: F811
    job = await submit_rows(
        world,
        VendorName.INFLUENCERS_CLUB,
        [{"handle": "señor_ñandú"}],
        {"enrichment_mode": "full", "platform": "instagram"},
    )

    await checked_until_results_pending(world, [job.id])
    world.sim.set_fault("influencers_club", latin1_results=100)

    await settle(world.sim, world.services, world.rc)

    failed = await world.job(job.id)
    assert failed.results_state == "fetch_failed"
    assert (failed.error or "").startswith(f"gave up after {MAX_ATTEMPTS} tries")
    events = await world.events(job.id)
    assert events.count("results.fetch_retry") == MAX_ATTEMPTS - 1
    assert events.count("results.fetch_failed") == 1
    assert world.sim.stats.injected[("influencers_club", "latin1_results")] == MAX_ATTEMPTS


# -- exports -----------------------------------------------------------------------------------


def csv_table(body: bytes) -> tuple[list[str], list[list[str]]]:
    header, *rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
    return header, rows


async def test_csv_export_names_each_column_once(world):  # noqa: F811
    """Reprompt's records carry their own `status` (as BrightLocal's do): it must not become a
    second column named like the record's status column, which a reader keyed by header name
    takes for the same one. The record's whole data stays in the last column."""
    job = await world.submit(VendorName.REPROMPT)
    await settle(world.sim, world.services, world.rc)
    records = stored(world.db, job.id)
    assert all("status" in record["data"] for record in records)

    status, _, body = await get(world, f"/api/jobs/{job.id}/results?format=csv", AUTH)

    assert status == 200
    header, _ = csv_table(body)
    assert len(header) == len(set(header)), header
    assert_csv_matches(body, records)


async def test_csv_export_has_a_column_for_a_field_only_later_records_have(world, tmp_path):  # noqa: F811
    """The columns are every record's fields, not those of the first page read: a field that
    first appears after it (here one place of 1,001 sent with coordinates) still gets its
    column, in the API's CSV and in the CLI's file alike."""
    rows = [
        {"place_id": f"p{n}", "name": f"Store {n}", "full_address": f"{n} Main St"}
        for n in range(1000)
    ]
    rows.append(
        {
            "place_id": "p-last",
            "name": "Last Store",
            "full_address": "1 Last St",
            "latitude": "40.5",
            "longitude": "-73.25",
        }
    )
    job = await submit_rows(world, VendorName.REPROMPT, rows, {})
    await settle(world.sim, world.services, world.rc)
    records = stored(world.db, job.id)
    assert len(records) == len(rows) == (await world.job(job.id)).results_count

    status, _, body = await get(world, f"/api/jobs/{job.id}/results?format=csv", AUTH)
    assert status == 200
    out = tmp_path / "places.csv"
    code, _, err = await world.cli("results", str(job.id), "-o", str(out))
    assert code == 0, err

    for exported in (body, out.read_bytes()):
        header, table = csv_table(exported)
        assert {"inputs.latitude", "inputs.longitude"} <= set(header)
        last = dict(zip(header, table[-1], strict=True))
        assert (last["inputs.latitude"], last["inputs.longitude"]) == ("40.5", "-73.25")
        assert dict(zip(header, table[0], strict=True))["inputs.latitude"] == ""
        assert_csv_matches(exported, records)


async def test_an_export_that_fails_part_way_is_seen_to_fail(world, tmp_path):  # noqa: F811
    """Once the first bytes of a results download are out, its status can no longer say that
    it failed: the connection must end before the body's last chunk, so the client sees a
    cut-off body, never a short one that looks whole (nor an error page in the middle of the
    stream, which leaves it waiting). The CLI says what is wrong in one line, and leaves no
    half-written file. Here a stored record is damaged, as a failing disk might."""
    rows = [
        {
            "place_id": f"p{n}",
            "name": f"S {n}",
            "full_address": "1 Main St",
            "latitude": "",
            "longitude": "",
        }
        for n in range(1001)
    ]
    job = await submit_rows(world, VendorName.REPROMPT, rows, {})
    await settle(world.sim, world.services, world.rc)
    conn = sqlite3.connect(world.db)
    with conn:
        conn.execute(
            "UPDATE results SET data = '{\"cut' WHERE job_id = ? AND position = 1000", (job.id,)
        )
    conn.close()

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        for form in ("jsonl", "csv"):
            url = f"{world.url}/api/jobs/{job.id}/results?format={form}"
            async with http.get(url, headers=AUTH) as response:
                assert response.status == 200
                with pytest.raises(aiohttp.ClientPayloadError):
                    await response.read()

    out = tmp_path / "damaged.jsonl"
    code, _, err = await world.cli("results", str(job.id), "-o", str(out))
    assert code == 1
    assert err.strip().splitlines() == [
        f"Error: stored result 1000 of job {job.id} is not valid JSON"
    ]
    assert not out.exists()


# -- Crustdata's expiring links ----------------------------------------------------------------

CRUSTDATA_STATUS = "GET /batch/{id}"


async def test_expired_download_links_are_renewed_from_a_fresh_status(world):  # noqa: F811
    """The links the completing check saw have expired (six days on) by the time the fetch
    runs: one status call renews them, and every record is stored once."""
    job = await world.submit(VendorName.CRUSTDATA)
    await checked_until_results_pending(world, [job.id])
    await world.sim.advance(6 * 24 * 3600)
    calls = world.sim.stats.count("crustdata", CRUSTDATA_STATUS)

    assert await fetch_due_results(world.rc) == 1

    assert world.sim.stats.count("crustdata", CRUSTDATA_STATUS) == calls + 1
    assert [r.status for r in world.sim.storage.requests][:1] == [403]
    done = await world.job(job.id)
    expected = world.view(VendorName.CRUSTDATA, job.vendor_job_id).succeeded
    assert (done.results_state, done.results_count) == ("stored", expected)
    assert [row["position"] for row in stored(world.db, job.id)] == list(range(expected))


async def test_links_that_stay_expired_end_in_a_visible_failure(world):  # noqa: F811
    job = await world.submit(VendorName.CRUSTDATA)
    await checked_until_results_pending(world, [job.id])
    world.sim.set_fault("crustdata", expire_links=True)

    await settle(world.sim, world.services, world.rc)

    failed = await world.job(job.id)
    assert failed.results_state == "fetch_failed"
    assert "expired" in (failed.error or "")
    assert "results.fetch_failed" in await world.events(job.id)
    assert stored(world.db, job.id) == []


async def test_a_completed_batch_without_its_links_yet_is_fetched_once_they_come(world):  # noqa: F811
    """Crustdata's status said "completed" with results but no download links: storing that
    as an empty set would lose every record without a word. The fetch is retried instead."""
    job = await world.submit(VendorName.CRUSTDATA)
    await world.sim.advance(24 * 3600)
    world.sim.set_fault("crustdata", links_missing=2, endpoint=CRUSTDATA_STATUS)
    await check_job_now(world.rc, job.id)  # finds it completed, without links
    assert (await world.job(job.id)).results_state == "pending"

    await fetch_due_results(world.rc)  # asks again for the links: still none

    assert world.sim.stats.injected[("crustdata", "links_missing")] == 2
    waiting = await world.job(job.id)
    assert waiting.results_state != "stored"
    assert stored(world.db, job.id) == []
    await settle(world.sim, world.services, world.rc)
    done = await world.job(job.id)
    expected = world.view(VendorName.CRUSTDATA, job.vendor_job_id).succeeded
    assert expected > 0
    assert (done.results_state, done.results_count) == ("stored", expected)
    assert [row["position"] for row in stored(world.db, job.id)] == list(range(expected))


async def test_a_brightlocal_batch_is_stored_as_its_jobs_finish_in_any_order(world):  # noqa: F811
    """BrightLocal serves each job's results as soon as it finishes, and its workers finish
    them out of the order they were added in. A batch polled while it runs has them stored
    as they come, each at its own job id; the set stored at the end is exactly the vendor's,
    no record twice and none missing, however the ones stored early were interleaved."""
    adapter = world.services.adapter(VendorName.BRIGHTLOCAL)
    profiles = [
        {"profile-url": f"https://maps.example.com/place/{i}", "country": "USA"} for i in range(40)
    ]
    [batch] = await adapter.submit(SubmitRequest(rows=profiles))
    job, _ = await world.services.store.track_job(VendorName.BRIGHTLOCAL, batch.vendor_job_id, None)
    run = world.sim.brightlocal.batches[int(batch.vendor_job_id)].run
    assert run is not None

    seen_while_running = []
    for processed in (10, 27):
        await world.sim.advance_to(run.processed_at(processed))
        await check_job_now(world.rc, job.id)
        await fetch_due_results(world.rc)
        running = await world.job(job.id)
        assert running.state is JobState.RUNNING
        assert (running.results_state, running.results_count) == ("stored", processed)
        seen_while_running.append({row["input_id"] for row in stored(world.db, job.id)})
    assert seen_while_running[0] < seen_while_running[1]
    added = [str(i) for i in batch.raw["job-ids"]]
    assert sorted(seen_while_running[0], key=int) != added[:10], "the sim finishes out of order"

    await settle(world.sim, world.services, world.rc)

    done = await world.job(job.id)
    assert (done.state, done.results_state, done.results_count) == (
        JobState.COMPLETED,
        "stored",
        40,
    )
    final = (await adapter.status(batch.vendor_job_id)).raw["results"]
    served = {str(entry["job-id"]): entry for entries in final.values() for entry in entries}
    rows = stored(world.db, job.id)
    assert [row["input_id"] for row in rows] == added
    assert [row["position"] for row in rows] == [int(i) for i in added]
    for row in rows:
        vendor_entry = {key: value for key, value in row["data"].items() if key != "job_type"}
        assert vendor_entry == served[row["input_id"]]
    partial = [
        event.payload["partial"]
        for event in await world.services.store.list_events(job.id)
        if event.type == "results.stored"
    ]
    assert partial[:2] == [True, True]
    assert partial[-1] is False
    assert all(partial[:-1])  # one final set, after every partial one
