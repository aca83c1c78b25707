"""Stored results as the API and the CLI export them, and operator actions (check, resume,
reprocess) against the vendor simulator, over real HTTP and with the CLI as a subprocess."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sqlite3
import time
from typing import Any

import pytest_asyncio

from enrichwatch.config import load_settings
from enrichwatch.models import JobState, VendorName
from enrichwatch.runtime import open_services
from enrichwatch.sim import SimConfig, SimServer
from enrichwatch.submission import submit_batch
from enrichwatch.vendors.base import SubmitRequest
from receiver import serving
from reconciler import Reconciler, reconcile_once
from reconciler.checks import check_due_jobs
from reconciler.fetch import fetch_due_results
from tests.conftest import API_TOKEN, CliResult, notified, run_cli, sim_env, snapshot
from tests.settling import next_due, settle
from tests.test_reconciler import INPUTS

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest_asyncio.fixture
async def world(tmp_path):
    """The simulator on a manual clock, and enrichwatch's receiver running on that clock; the
    test runs reconcile passes itself. `world.cli(...)` runs the CLI on the same database."""
    async with SimServer(SimConfig(seed=17, start_time=time.time())) as sim:
        overrides = sim.vendor_settings()
        db = tmp_path / "actions.db"
        settings = load_settings(db=db, api_token=API_TOKEN, **overrides)
        async with (
            open_services(settings, clock=sim.clock.now) as services,
            serving(services, "127.0.0.1", 0) as url,
        ):
            yield World(sim, services, url, Reconciler(services), _cli_env(sim, db))


class World:
    def __init__(self, sim, services, url, rc, env) -> None:
        self.sim, self.services, self.url, self.rc, self.env = sim, services, url, rc, env
        self.db = services.store.path

    async def submit(self, vendor: VendorName):
        rows, options = INPUTS[vendor]
        request = SubmitRequest(rows=rows, name=vendor.value, options=options)
        outcome = await submit_batch(self.services, vendor, request, public_url=self.url)
        (job,) = outcome.submitted
        return job

    async def job(self, job_id: int):
        return await self.services.store.get_job(job_id)

    async def events(self, job_id: int) -> list[str]:
        return [event.type for event in await self.services.store.list_events(job_id)]

    def view(self, vendor: VendorName, vendor_job_id: str | None):
        (view,) = [v for v in self.sim.jobs(vendor.value) if v.job_id == vendor_job_id]
        return view

    async def cli(self, *args: str) -> CliResult:
        return await run_cli(self.env, *args)


def _cli_env(sim: SimServer, db) -> dict[str, str]:
    return {**os.environ, "ENRICHWATCH_DB": str(db), "ENRICHWATCH_LOG_LEVEL": "warning"} | sim_env(
        sim
    )


def stored(db, job_id: int) -> list[dict[str, Any]]:
    """The job's rows in the results table, in position order, data decoded."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT position, input_id, status, data FROM results WHERE job_id = ? "
            "ORDER BY position",
            (job_id,),
        ).fetchall()
    finally:
        conn.close()
    return [
        {"position": p, "input_id": i, "status": s, "data": json.loads(d)} for p, i, s, d in rows
    ]


async def get(world: World, path: str, headers: dict[str, str] | None = None):
    async with world.services.http.get(f"{world.url}{path}", headers=headers) as response:
        return response.status, response.headers, await response.read()


async def post(world: World, path: str, body: object = None):
    async with world.services.http.post(f"{world.url}{path}", json=body, headers=AUTH) as response:
        return response.status, await response.json()


# -- results ---------------------------------------------------------------------------------


def assert_jsonl_matches(body: bytes, records: list[dict[str, Any]]) -> None:
    lines = body.decode().splitlines()
    assert [json.loads(line) for line in lines] == records


def assert_csv_matches(body: bytes, records: list[dict[str, Any]]) -> None:
    """Every record is one row: the fixed columns, each flattened field under its dotted name
    (a field a record lacks is blank), and the whole data as JSON in the last column."""
    reader = csv.reader(io.StringIO(body.decode(), newline=""))
    header, *rows = list(reader)
    assert header[:3] == ["position", "input_id", "status"]
    assert header[-1] == "data"
    assert len(rows) == len(records)
    for row, record in zip(rows, records, strict=True):
        cells = dict(zip(header, row, strict=True))
        assert cells["position"] == str(record["position"])
        assert cells["input_id"] == (record["input_id"] or "")
        assert cells["status"] == (record["status"] or "")
        assert json.loads(cells["data"]) == record["data"]
        for column in header[3:-1]:
            assert cells[column] == _field(record["data"], column.split(".")), column


def _field(data: Any, path: list[str]) -> str:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return ""
        data = data[key]
    return data if isinstance(data, str) else json.dumps(data)


async def test_results_api_and_cli_exports_match_the_stored_records(world, tmp_path):
    jobs = [await world.submit(VendorName.REPROMPT), await world.submit(VendorName.CRUSTDATA)]
    await settle(world.sim, world.services, world.rc)

    for job in jobs:
        records = stored(world.db, job.id)
        assert len(records) == (await world.job(job.id)).results_count > 0

        status, headers, body = await get(world, f"/api/jobs/{job.id}/results", AUTH)
        assert status == 200
        assert headers["Content-Type"].startswith("application/x-ndjson")
        assert headers["X-Results-State"] == "stored"
        assert_jsonl_matches(body, records)
        status, headers, body = await get(world, f"/api/jobs/{job.id}/results?format=csv", AUTH)
        assert status == 200
        assert headers["Content-Type"].startswith("text/csv")
        assert_csv_matches(body, records)

        for suffix, matches in (
            (".jsonl", assert_jsonl_matches),
            (".csv", assert_csv_matches),
            (".CSV", assert_csv_matches),
        ):
            out = tmp_path / f"job-{job.id}{suffix}"
            code, _, err = await world.cli("results", str(job.id), "-o", str(out))
            assert code == 0, err
            assert err.splitlines() == [f"{len(records)} records written to {out}"]
            matches(out.read_bytes(), records)
        code, stdout, err = await world.cli("results", str(job.id))
        assert code == 0, err
        assert_jsonl_matches(stdout.encode(), records)


async def test_a_head_of_the_results_has_their_headers_and_no_body(world):
    """A body written after a HEAD's answer would be read as the start of the next answer
    on the connection: the request after it must get its own."""
    job = await world.submit(VendorName.REPROMPT)
    await settle(world.sim, world.services, world.rc)
    host, port = world.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            f"HEAD /api/jobs/{job.id}/results HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {API_TOKEN}\r\n\r\n"
            "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        answer = (await asyncio.wait_for(reader.read(), 10)).decode()
    finally:
        writer.close()
    head, rest = answer.split("\r\n\r\n", 1)
    assert head.startswith("HTTP/1.1 200")
    assert "X-Results-State: stored" in head
    assert rest.startswith("HTTP/1.1 200"), rest[:200]


async def test_results_refusals_and_an_empty_job(world, tmp_path):
    job, _ = await world.services.store.track_job(VendorName.ECORE, "not-yet", None)

    status, _, body = await get(world, f"/api/jobs/{job.id}/results")
    assert status == 401
    assert json.loads(body)["error"]["code"] == "unauthorized"
    status, _, body = await get(world, "/api/jobs/9999/results", AUTH)
    assert status == 404
    assert json.loads(body)["error"]["code"] == "not_found"
    status, _, body = await get(world, f"/api/jobs/{job.id}/results?format=xml", AUTH)
    assert status == 400
    assert json.loads(body)["error"]["fields"][0]["field"] == "format"

    status, headers, body = await get(world, f"/api/jobs/{job.id}/results", AUTH)
    assert (status, body, headers["X-Results-State"]) == (200, b"", "none")
    status, _, body = await get(world, f"/api/jobs/{job.id}/results?format=csv", AUTH)
    assert (status, body) == (200, b"position,input_id,status,data\r\n")
    code, _, err = await world.cli("results", str(job.id), "-o", str(tmp_path / "e.jsonl"))
    assert code == 0, err
    assert (tmp_path / "e.jsonl").read_bytes() == b""
    # An empty file is not passed off as a job without results: it has none yet.
    assert err.splitlines() == [
        f"0 records written to {tmp_path / 'e.jsonl'}",
        f"Note: job {job.id} is submitted: it has no results yet",
    ]
    code, _, err = await world.cli("results", str(job.id), "-o", str(tmp_path / "e.csv"))
    assert code == 0, err
    assert (tmp_path / "e.csv").read_bytes() == b"position,input_id,status,data\r\n"

    await world.services.store.end_job(job.id, JobState.EXPIRED, "older than the maximum age")
    code, out, err = await world.cli("results", str(job.id))
    assert (code, out) == (0, "")
    assert err.strip() == f"Note: job {job.id} ended (expired) without results"

    code, _, err = await world.cli("results", "9999", "-o", str(tmp_path / "none.csv"))
    assert code == 1
    assert err.strip() == "Error: no job with id 9999"
    assert not (tmp_path / "none.csv").exists()


# -- actions ---------------------------------------------------------------------------------


async def step_until(world: World, condition, *, step=reconcile_once, steps: int = 200) -> None:
    """`step` (a reconcile pass) and jumps of the clock to the next thing due, until
    `condition()` holds."""
    for _ in range(steps):
        await step(world.rc)
        if await condition():
            return
        due = next_due(world.db)
        if due is None:
            break
        await world.sim.advance_to(max(due, world.sim.clock.now()))
    raise AssertionError("the condition was never met")


async def test_resume_of_a_paused_ecore_job_reaches_the_vendor_and_the_job_completes(world):
    by_cli, by_api = await world.submit(VendorName.ECORE), await world.submit(VendorName.ECORE)
    await world.sim.advance(20)  # both are running at the vendor now
    adapter = world.services.adapter(VendorName.ECORE)
    for job in (by_cli, by_api):
        await adapter.pause(job.vendor_job_id or "")

    async def paused_with_partial_results() -> bool:
        jobs = [await world.job(job.id) for job in (by_cli, by_api)]
        return all(j.state is JobState.NEEDS_ACTION and j.results_state == "stored" for j in jobs)

    await step_until(world, paused_with_partial_results)
    partial = {job.id: (await world.job(job.id)).results_count for job in (by_cli, by_api)}
    assert all(0 < count < len(INPUTS[VendorName.ECORE][0]) for count in partial.values())
    # Readers are told these are not all: the job is still open.
    status, headers, _ = await get(world, f"/api/jobs/{by_api.id}/results", AUTH)
    assert (status, headers["X-Results-State"]) == (200, "partial")
    _, _, body = await get(world, f"/api/jobs/{by_api.id}", AUTH)
    assert json.loads(body)["results"] == {"state": "partial", "count": partial[by_api.id]}
    controls = "POST /api/v1/enrichment-control/"
    before = world.sim.stats.count("ecore", controls)

    code, out, err = await world.cli("resume", str(by_cli.id))
    assert code == 0, err
    assert f"job {by_cli.id}  ecore  {by_cli.vendor_job_id}  needs_action" in out
    status, body = await post(world, f"/api/jobs/{by_api.id}/resume")
    assert status == 202, body
    assert body["id"] == by_api.id

    assert world.sim.stats.count("ecore", controls) == before + 2
    for job in (by_cli, by_api):
        assert world.view(VendorName.ECORE, job.vendor_job_id).vendor_status == "in-progress"
        assert "job.resume_requested" in await world.events(job.id)

    # The check that finds the job completed leaves its final results to be fetched.
    async def completed() -> bool:
        jobs = [await world.job(job.id) for job in (by_cli, by_api)]
        return all(j.state is JobState.COMPLETED for j in jobs)

    await step_until(world, completed, step=check_due_jobs)
    for job in (by_cli, by_api):
        assert (await world.job(job.id)).results_state == "pending"
    await fetch_due_results(world.rc)

    for job in (by_cli, by_api):
        done = await world.job(job.id)
        view = world.view(VendorName.ECORE, job.vendor_job_id)
        assert done.state is JobState.COMPLETED
        assert done.results_state == "stored"
        assert [r["position"] for r in stored(world.db, job.id)] == list(range(view.total))
        assert done.results_count == view.total
        assert (await world.events(job.id)).count("results.stored") == 2  # partial, then all
    status, headers, _ = await get(world, f"/api/jobs/{by_api.id}/results", AUTH)
    assert (status, headers["X-Results-State"]) == (200, "stored")


async def completes_its_new_run_with_every_result(world: World, job_id: int) -> None:
    """Reconcile until nothing is due: the resumed influencers.club batch is completed with
    a result for every input row, and both runs' outcomes were told."""
    await settle(world.sim, world.services, world.rc)
    done = await world.job(job_id)
    rows = len(INPUTS[VendorName.INFLUENCERS_CLUB][0])
    assert (done.state, done.results_state, done.results_count) == (
        JobState.COMPLETED,
        "stored",
        rows,
    )
    assert [r["position"] for r in stored(world.db, job_id)] == list(range(rows))
    assert notified(world.db, job_id) == ["failed", "completed"]


async def test_an_influencers_club_batch_that_failed_mid_run_is_resumed_and_finishes(world):
    """influencers.club resumes "a paused or interrupted batch … failed mid-run". The failed
    job (notified as failed) runs again after `resume`, as a new run: it completes with
    every result stored, and that outcome is notified too."""
    world.sim.config.influencers_club.profile.job_failure_rate = 1.0
    job = await world.submit(VendorName.INFLUENCERS_CLUB)
    await settle(world.sim, world.services, world.rc)
    failed = await world.job(job.id)
    assert failed.state is JobState.FAILED
    assert world.view(VendorName.INFLUENCERS_CLUB, job.vendor_job_id).vendor_status == "failed"
    assert notified(world.db, job.id) == ["failed"]

    status, body = await post(world, f"/api/jobs/{job.id}/resume")
    assert status == 202, body
    assert (body["state"], body["error"]) == ("running", None)
    assert "job.resume_requested" in await world.events(job.id)

    await completes_its_new_run_with_every_result(world, job.id)


async def test_a_resume_the_vendor_took_unrecorded_is_recorded_when_asked_again(world):
    """A stop cut off the first request after the vendor resumed the failed batch, before
    it was recorded: the job stayed failed here while it ran again there, and asking again
    was refused ("Batch is not paused"), its new results never fetched. Now the vendor is
    looked at first, and the run it already began is recorded, not asked for again."""
    world.sim.config.influencers_club.profile.job_failure_rate = 1.0
    job = await world.submit(VendorName.INFLUENCERS_CLUB)
    await settle(world.sim, world.services, world.rc)
    assert (await world.job(job.id)).state is JobState.FAILED
    await world.services.adapter(VendorName.INFLUENCERS_CLUB).resume(job.vendor_job_id or "")
    resumes = "POST /public/v1/enrichment/batch/{id}/resume/"

    status, body = await post(world, f"/api/jobs/{job.id}/resume")

    assert status == 202, body
    assert (body["state"], body["error"]) == ("running", None)
    assert world.sim.stats.count("influencers_club", resumes) == 1  # the cut-off one only
    (event,) = [
        e
        for e in await world.services.store.list_events(job.id)
        if e.type.endswith("resume_requested")
    ]
    assert event.payload == {"found_running_again": True}
    await completes_its_new_run_with_every_result(world, job.id)


async def test_a_reprocess_the_vendor_took_unrecorded_is_not_asked_for_twice(world):
    job = await world.submit(VendorName.REPROMPT)
    await settle(world.sim, world.services, world.rc)
    await world.services.adapter(VendorName.REPROMPT).reprocess(job.vendor_job_id or "", {})
    reprocesses = "POST /v1/{org}/place_enrichment/batches/{id}/reprocess"

    status, body = await post(world, f"/api/jobs/{job.id}/reprocess", {"failed_only": False})

    assert status == 202, body
    assert body["state"] == "running"
    assert world.sim.stats.count("reprompt", reprocesses) == 1
    await settle(world.sim, world.services, world.rc)
    assert (await world.job(job.id)).state is JobState.COMPLETED
    assert notified(world.db, job.id) == ["completed", "completed"]


async def test_a_failed_job_whose_vendor_cannot_resume_it_is_refused_before_any_call(world):
    world.sim.config.ecore.profile.job_failure_rate = 1.0
    job = await world.submit(VendorName.ECORE)
    await settle(world.sim, world.services, world.rc)
    assert (await world.job(job.id)).state is JobState.FAILED
    calls = world.sim.stats.count()

    status, body = await post(world, f"/api/jobs/{job.id}/resume")
    assert status == 409, body
    assert "is failed; there is nothing to resume" in body["error"]["message"]
    assert world.sim.stats.count() == calls
    assert (await world.job(job.id)).state is JobState.FAILED


async def test_resume_where_the_vendor_has_none_is_a_clear_error(world):
    job = await world.submit(VendorName.REPROMPT)
    calls = world.sim.stats.count()

    code, out, err = await world.cli("resume", str(job.id))
    assert code == 1
    assert out == ""
    assert err.strip().splitlines() == [
        f"Error: {VendorName.REPROMPT.value}: resume is not offered"
    ]
    status, body = await post(world, f"/api/jobs/{job.id}/resume")
    assert status == 409
    assert body["error"]["code"] == "action_not_possible"
    assert "resume is not offered" in body["error"]["message"]

    assert world.sim.stats.count() == calls  # nothing reached the vendor
    assert "job.resume_requested" not in await world.events(job.id)


async def test_reprocess_reopens_a_completed_reprompt_batch_which_finishes_again(world):
    job = await world.submit(VendorName.REPROMPT)
    await settle(world.sim, world.services, world.rc)
    first = await world.job(job.id)
    assert first.state is JobState.COMPLETED
    assert first.results_count == len(INPUTS[VendorName.REPROMPT][0])
    # Some places failed, so reprocessing the failed ones (the vendor's default) does work.
    assert world.view(VendorName.REPROMPT, job.vendor_job_id).failed > 0
    reprocess_calls = "POST /v1/{org}/place_enrichment/batches/{id}/reprocess"
    status_calls = "GET /v1/{org}/place_enrichment/batches/{id}"

    for n, by in enumerate(("cli", "api"), start=1):
        if by == "cli":
            code, out, err = await world.cli("reprocess", str(job.id), "-o", "failed_only=true")
            assert code == 0, err
            assert f"job {job.id}  reprompt  {job.vendor_job_id}  running" in out
        else:
            status, body = await post(
                world, f"/api/jobs/{job.id}/reprocess", {"failed_only": False}
            )
            assert status == 202, body
            assert (body["state"], body["results"]) == ("running", {"state": None, "count": 0})
        reopened = await world.job(job.id)
        assert reopened.state is JobState.RUNNING
        assert (reopened.results_state, reopened.results_count) == (None, 0)
        assert reopened.finished_at is None
        assert stored(world.db, job.id) == []
        assert world.sim.stats.count("reprompt", reprocess_calls) == n
        assert world.view(VendorName.REPROMPT, job.vendor_job_id).vendor_status != "completed"

        await settle(world.sim, world.services, world.rc)

        done = await world.job(job.id)
        view = world.view(VendorName.REPROMPT, job.vendor_job_id)
        assert done.state is JobState.COMPLETED
        assert done.results_state == "stored"
        assert [r["position"] for r in stored(world.db, job.id)] == list(range(view.total))
        assert done.results_count == view.total
        events = await world.events(job.id)
        assert events.count("job.reprocess_requested") == n
        assert events.count("results.stored") == n + 1
        # The log tells every state the job was in: each run ends, and the next one begins.
        changes = [
            (e.payload["from"], e.payload["to"])
            for e in await world.services.store.list_events(job.id)
            if e.type == "job.state_changed"
        ]
        assert changes[-2:] == [("completed", "running"), ("running", "completed")]
        assert changes.count(("completed", "running")) == n
        # Each run's results are news: one "completed" per run, on every channel.
        assert notified(world.db, job.id) == ["completed"] * (n + 1)
        # Each fetch started from the status call that found the batch finished: every status
        # call made is a recorded check, or the look each reprocess takes first (does the
        # batch run again already?); none was spent again by a fetch.
        assert world.sim.stats.count("reprompt", status_calls) == events.count(
            "vendor.polled"
        ) + events.count("job.reprocess_requested")


async def test_results_whose_fetch_failed_for_good_are_fetched_again_when_asked(world):
    """An outage longer than the fetch's tries leaves the results `fetch_failed` (notified),
    though the vendor still serves them. Asked to, the reconciler fetches them again, from
    the first record not stored; asked again once they are stored, nothing changes."""
    job = await world.submit(VendorName.REPROMPT)
    results_pages = "GET /v1/{org}/place_enrichment/jobs"
    world.sim.set_fault("reprompt", server_errors=1000, endpoint=results_pages)
    await settle(world.sim, world.services, world.rc)
    failed = await world.job(job.id)
    assert (failed.state, failed.results_state) == (JobState.COMPLETED, "fetch_failed")
    assert notified(world.db, job.id) == ["fetch_failed"]
    world.sim.clear_faults("reprompt")

    status, body = await post(world, f"/api/jobs/{job.id}/fetch")

    assert status == 202, body
    assert body["results"]["state"] == "pending"
    await settle(world.sim, world.services, world.rc)
    done = await world.job(job.id)
    total = world.view(VendorName.REPROMPT, job.vendor_job_id).total
    assert (done.results_state, done.results_count, done.error) == ("stored", total, None)
    assert [r["position"] for r in stored(world.db, job.id)] == list(range(total))
    assert notified(world.db, job.id) == ["fetch_failed", "completed"]
    assert (await world.events(job.id)).count("results.fetch_requested") == 1

    before = snapshot(world.db)
    status, body = await post(world, f"/api/jobs/{job.id}/fetch")
    assert status == 409, body
    assert "results are stored: only a fetch that failed" in body["error"]["message"]
    code, _, err = await world.cli("fetch", str(job.id))
    assert code == 1
    assert "only a fetch that failed is fetched again" in err
    assert snapshot(world.db) == before


async def test_check_makes_exactly_one_status_call_and_prints_the_job(world):
    job = await world.submit(VendorName.INFLUENCERS_CLUB)
    await world.sim.advance(30)
    status_calls = "GET /public/v1/enrichment/batch/{id}/status/"
    before = world.sim.stats.count()

    code, out, err = await world.cli("check", str(job.id), "--json")

    assert code == 0, err
    assert world.sim.stats.count() == before + 1
    assert world.sim.stats.count("influencers_club", status_calls) == 1
    (shown,) = json.loads(out)
    checked = await world.job(job.id)
    assert shown["id"] == job.id
    assert shown["state"] == checked.state.value == "running"
    assert shown["vendor_status"] == checked.vendor_status
    assert (await world.events(job.id)).count("vendor.polled") == 1

    code, out, err = await world.cli("check", str(job.id))
    assert code == 0, err
    assert out.splitlines()[0].startswith(f"job {job.id}  influencers_club  {job.vendor_job_id}")
    assert world.sim.stats.count() == before + 2


async def test_check_vendor_asks_about_every_open_job_there_with_one_list_call(world):
    jobs = [await world.submit(VendorName.ECORE) for _ in range(3)]
    await world.sim.advance(30)
    before = world.sim.stats.count()

    code, out, err = await world.cli("check", "--vendor", "ecore", "--json")

    assert code == 0, err
    assert world.sim.stats.count() == before + 1
    assert world.sim.stats.count("ecore", "GET /api/v1/enrichment/status/") == 1
    shown = json.loads(out)
    assert [job["id"] for job in shown] == [job.id for job in jobs]
    for job in jobs:
        checked = await world.job(job.id)
        assert checked.state is JobState.RUNNING
        assert (await world.events(job.id)).count("vendor.polled") == 1
    # Nothing open at a vendor: said so, and nothing asked.
    code, out, err = await world.cli("check", "--vendor", "crustdata")
    assert (code, out, err.strip()) == (0, "", "no open jobs at crustdata")
    assert world.sim.stats.count() == before + 1


async def test_a_check_the_vendor_does_not_answer_is_an_error_after_the_jobs(world):
    """The jobs are printed as the checks left them, then one `Error:` line and exit 1: a
    script running `enrichwatch check` must not take a refused key for an answer. With no
    log level set, that line is all of stderr: no log line repeats it."""
    jobs = [await world.submit(VendorName.ECORE) for _ in range(2)]
    await world.sim.advance(30)
    world.env = world.env | {"ENRICHWATCH_ECORE__API_KEY": "revoked"}
    world.env.pop("ENRICHWATCH_LOG_LEVEL")

    code, out, err = await world.cli("check", str(jobs[0].id))
    assert code == 1
    assert out.startswith(f"job {jobs[0].id}  ecore  {jobs[0].vendor_job_id}  submitted")
    (error,) = err.splitlines()
    assert error.startswith(f"Error: the check failed; job {jobs[0].id}: ecore: ")
    assert error.endswith("HTTP 401: Invalid token.")

    code, out, err = await world.cli("check", "--vendor", "ecore")
    assert code == 1
    assert [line.split()[1] for line in out.splitlines() if line.startswith("job ")] == [
        str(job.id) for job in jobs
    ]
    (error,) = [line for line in err.splitlines() if line.startswith("Error:")]
    assert error.startswith(f"Error: 2 of 2 checks failed; job {jobs[0].id}: ecore: ")
    assert error.endswith("HTTP 401: Invalid token.")


async def test_reprocess_options_reprompt_would_refuse_are_refused_before_asking(world):
    job = await world.submit(VendorName.REPROMPT)
    await settle(world.sim, world.services, world.rc)
    calls = world.sim.stats.count("reprompt")
    both = {"attributes": ["phone"], "attribute_set": "core"}
    status, body = await post(world, f"/api/jobs/{job.id}/reprocess", both)
    assert status == 422
    assert "not both" in body["error"]["fields"][0]["message"]
    # A flag must be a boolean, as the API document says: 0 is not taken for false.
    status, body = await post(world, f"/api/jobs/{job.id}/reprocess", {"refresh": 0})
    assert status == 422
    assert body["error"]["fields"][0]["field"] == "refresh"
    assert world.sim.stats.count("reprompt") == calls
    assert (await world.job(job.id)).state is JobState.COMPLETED
