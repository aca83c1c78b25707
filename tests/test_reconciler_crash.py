"""A real `enrichwatch serve` process against the vendor simulator on a scaled clock: killed
with SIGKILL in the middle of polling and in the middle of a results fetch, it picks up where
it left off on restart (every job finishes, results have no duplicates and no gaps); killed
while a part is being sent, it never sends that part again; and a callback makes a waiting
job checked at once."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

import aiohttp
import pytest
import pytest_asyncio

from enrichwatch.models import VendorName
from enrichwatch.sim import JobProfile, SimConfig, SimServer
from enrichwatch.store import InboundDelivery, Store
from tests.conftest import (
    Command,
    eventually,
    free_port,
    query,
    result_positions,
    run_cli,
    sim_env,
    started,
)
from tests.test_reconciler import INPUTS

TOKEN = "reconciler-crash-token-0000"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
T = TypeVar("T")


def serve_env(sim: SimServer, db, port: int = 0, **settings: object) -> dict[str, str]:
    """`enrichwatch serve` aimed at the simulator; `settings` are more ENRICHWATCH_* values
    (`work_interval=0.2`, `crustdata__max_poll_interval=1`, …)."""
    env = {
        **os.environ,
        "ENRICHWATCH_DB": str(db),
        "ENRICHWATCH_PORT": str(port),
        "ENRICHWATCH_API_TOKEN": TOKEN,
        "ENRICHWATCH_LOG_LEVEL": "warning",
        "ENRICHWATCH_LOG_FORMAT": "json",
        **sim_env(sim),
    }
    for name, value in settings.items():
        env[f"ENRICHWATCH_{name.upper()}"] = str(value)
    return env


def positions(db, job_id: int) -> list[int]:
    rows = query(db, "SELECT position FROM results WHERE job_id = ? ORDER BY position", (job_id,))
    return [row["position"] for row in rows]


async def api(http: aiohttp.ClientSession, method: str, url: str, body: object = None) -> dict:
    async with http.request(method, url, json=body, headers=AUTH) as response:
        assert response.status < 300, await response.text()
        return await response.json()


# -- kill -9 mid-fetch -----------------------------------------------------------------------


@pytest_asyncio.fixture
async def fast_sim():
    async with SimServer(SimConfig(seed=3, speed=300)) as sim:
        yield sim


async def test_kill_mid_fetch_then_restart_stores_every_result_exactly_once(tmp_path, fast_sim):
    sim, db = fast_sim, tmp_path / "fetch.db"
    crust = sim.crustdata.add_job(200_000)
    end = crust.job.terminal_at()
    assert end is not None
    await sim.advance_to(end + 1)  # finished at the vendor: the first check finds results
    (view,) = sim.jobs("crustdata")
    assert view.vendor_status == "completed"
    env = serve_env(sim, db, work_interval=0.2)

    async with started(["serve"], env, tmp_path / "serve.log") as service:
        async with aiohttp.ClientSession() as http:
            job = await api(
                http,
                "POST",
                f"{service.url}/api/jobs",
                {"vendor": "crustdata", "vendor_job_id": crust.batch_id},
            )

        def mid_fetch() -> bool:
            (row,) = query(db, "SELECT * FROM jobs WHERE id = ?", (job["id"],))
            # Past the first part file, so the restart has to skip a part and a half.
            count = row["results_count"]
            return row["results_state"] == "fetching" and 7_500 <= count < view.succeeded

        await eventually(mid_fetch, 30, "the fetch is under way")
        await service.kill()

    killed_at = len(positions(db, job["id"]))
    assert 0 < killed_at < view.succeeded
    async with started(["serve"], env, tmp_path / "serve.log"):

        def stored() -> bool:
            (row,) = query(db, "SELECT results_state FROM jobs WHERE id = ?", (job["id"],))
            return row["results_state"] == "stored"

        await eventually(stored, 40, "the results are stored after the restart")

    (row,) = query(db, "SELECT * FROM jobs WHERE id = ?", (job["id"],))
    assert row["state"] == "completed"
    assert positions(db, job["id"]) == list(range(view.succeeded))
    assert row["results_count"] == view.succeeded
    events = [
        r["type"] for r in query(db, "SELECT type FROM events WHERE job_id = ?", (job["id"],))
    ]
    assert events.count("results.stored") == 1


# -- kill -9 mid-submit ----------------------------------------------------------------------


ECORE_SUBMIT = "POST /api/v1/enrichment/submit/"


def batch(vendor: VendorName) -> dict[str, object]:
    """`POST /api/jobs` sending `vendor` a batch."""
    rows, options = INPUTS[vendor]
    return {"vendor": vendor.value, "submit": {"rows": rows, "options": options}}


async def send_held_back(sim: SimServer, url: str, vendor: VendorName, submit: str) -> dict:
    """A batch whose first send is answered 429 (nothing created), so the part is held back
    and sent again by the reconciler 3 s later."""
    sim.set_fault(vendor.value, rate_limit=1, retry_after=3, endpoint=submit)
    async with aiohttp.ClientSession() as http:
        (job,) = (await api(http, "POST", f"{url}/api/jobs", batch(vendor)))["jobs"]
    assert job["vendor_job_id"] is None
    return job


async def kill_while_held(
    sim: SimServer, service: Command, vendor: VendorName, endpoint: str, *, after_answer: bool
) -> None:
    """Kill the service while its next call to `endpoint` is held at the vendor, which has
    its job by then (`after_answer`: the call itself was acted on)."""
    sim.set_fault(
        vendor.value,
        slow_count=1,
        slow_seconds=30,
        slow_after_answer=after_answer,
        endpoint=endpoint,
    )
    await eventually(
        lambda: sim.stats.injected[(vendor.value, "slow")] and len(sim.jobs(vendor.value)) == 1,
        20,
        f"the call to {endpoint} is held at the vendor",
    )
    await service.kill()


async def the_job_when(db, condition: Callable[[sqlite3.Row], bool], what: str) -> sqlite3.Row:
    """The database's one job, once `condition` holds for it."""

    def found() -> sqlite3.Row | None:
        (row,) = query(db, "SELECT * FROM jobs")
        return row if condition(row) else None

    return await eventually(found, 30, what)


async def test_kill_while_a_held_back_part_is_being_sent_never_sends_it_twice(tmp_path, fast_sim):
    """The vendor has taken the part and its answer is on the way back when the process dies.
    After the restart the part is failed, with where to look, not sent again (a second,
    billed, untracked job at the vendor)."""
    sim, db, submit = fast_sim, tmp_path / "submit.db", ECORE_SUBMIT
    env = serve_env(sim, db, work_interval=0.2)
    async with started(["serve"], env, tmp_path / "serve.log") as service:
        job = await send_held_back(sim, service.url, VendorName.ECORE, submit)
        await kill_while_held(sim, service, VendorName.ECORE, submit, after_answer=True)

    async with started(["serve"], env, tmp_path / "serve.log"):
        row = await the_job_when(db, lambda row: row["state"] == "failed", "the part is failed")
    assert len(sim.jobs("ecore")) == 1
    assert sim.stats.count("ecore", submit) == 2  # the 429 and the send the kill cut off
    assert "stopped while sending this part to ecore" in row["error"]
    assert row["vendor_job_id"] is None
    outcomes = query(
        db,
        "SELECT json_extract(payload, '$.outcome') AS outcome FROM work "
        "WHERE kind = 'notify' AND job_id = ?",
        (job["id"],),
    )
    assert [r["outcome"] for r in outcomes] == ["failed"]


async def test_kill_during_a_direct_send_fails_the_part_at_the_restart_not_minutes_later(
    tmp_path, fast_sim
):
    """The API's own send (no work item) cut off by a kill: the process that made the call is
    gone (its holder file is unlocked), so the restarted service fails the part at once, with
    where to look, instead of waiting out the 15 minutes a live call might still take."""
    sim, db, submit = fast_sim, tmp_path / "direct.db", ECORE_SUBMIT
    env, body = serve_env(sim, db, work_interval=0.2), batch(VendorName.ECORE)
    async with started(["serve"], env, tmp_path / "serve.log") as service:
        sim.set_fault(
            "ecore", slow_count=1, slow_seconds=5, slow_after_answer=True, endpoint=submit
        )
        async with aiohttp.ClientSession() as http:
            sending = asyncio.create_task(api(http, "POST", f"{service.url}/api/jobs", body))
            await eventually(
                lambda: sim.stats.injected[("ecore", "slow")] and len(sim.jobs("ecore")) == 1,
                20,
                "the vendor has made the job and holds its answer",
            )
            await service.kill()
            with pytest.raises(aiohttp.ClientError):
                await sending
    (row,) = query(db, "SELECT * FROM jobs")
    assert row["send_started_at"] is not None

    async with started(["serve"], env, tmp_path / "serve.log"):

        def failed() -> sqlite3.Row | None:
            (row,) = query(db, "SELECT * FROM jobs")
            return row if row["state"] == "failed" else None

        row = await eventually(failed, 20, "the cut-off part is failed")
    assert len(sim.jobs("ecore")) == 1
    assert "stopped while sending this part to ecore" in row["error"]
    assert row["send_started_at"] is None


BRIGHTLOCAL_CREATE = "POST /v4/batch"
BRIGHTLOCAL_ADD_JOB = "POST /v4/ld/fetch-reviews"


async def test_kill_while_a_held_back_brightlocal_part_fills_its_batch_sends_it_again(
    tmp_path, fast_sim
):
    """BrightLocal's batch is created, then filled, then committed, in separate calls. Killed
    while it fills the batch, the service leaves an uncommitted batch at the vendor, its id on
    record; after the restart that batch is deleted (it never ran nor billed) and the part,
    whose rows are held, is sent again and finishes with every result."""
    sim, db = fast_sim, tmp_path / "fill.db"
    # One port for both runs: the batch's callback URL names it.
    env = serve_env(sim, db, port=free_port(), work_interval=0.2)
    async with started(["serve"], env, tmp_path / "serve.log") as service:
        await send_held_back(sim, service.url, VendorName.BRIGHTLOCAL, BRIGHTLOCAL_CREATE)
        await kill_while_held(
            sim, service, VendorName.BRIGHTLOCAL, BRIGHTLOCAL_ADD_JOB, after_answer=False
        )
    (abandoned,) = sim.jobs("brightlocal")
    (row,) = query(db, "SELECT * FROM jobs")
    assert row["send_vendor_job_id"] == abandoned.job_id

    async with started(["serve"], env, tmp_path / "serve.log"):
        row = await the_job_when(
            db, lambda row: row["results_state"] == "stored", "the part is sent again, finished"
        )
    assert sim.stats.count("brightlocal", "DELETE /v4/batch") == 1
    (made,) = sim.jobs("brightlocal")
    assert made.job_id != abandoned.job_id
    assert (row["state"], row["vendor_job_id"], row["results_count"]) == (
        "completed",
        made.job_id,
        len(INPUTS[VendorName.BRIGHTLOCAL][0]),
    )
    assert positions(db, row["id"]) == sorted(set(positions(db, row["id"])))


REPROMPT_SUBMIT = "POST /v1/{org}/place_enrichment/batches"


async def test_kill_while_a_held_back_reprompt_part_is_sent_tracks_the_batch_it_made(
    tmp_path, fast_sim
):
    """Reprompt's batch id is chosen here and recorded before the call goes out. Killed while
    the vendor's answer is on its way back, the service finds the batch by that id after the
    restart and tracks it to its results, without sending the part again."""
    sim, db = fast_sim, tmp_path / "reprompt.db"
    env = serve_env(sim, db, **poll_fast())
    async with started(["serve"], env, tmp_path / "serve.log") as service:
        await send_held_back(sim, service.url, VendorName.REPROMPT, REPROMPT_SUBMIT)
        await kill_while_held(sim, service, VendorName.REPROMPT, REPROMPT_SUBMIT, after_answer=True)

    async with started(["serve"], env, tmp_path / "serve.log"):
        row = await the_job_when(
            db, lambda row: row["results_state"] == "stored", "the batch is tracked, finished"
        )
    (made,) = sim.jobs("reprompt")
    assert sim.stats.count("reprompt", REPROMPT_SUBMIT) == 2  # the 429 and the cut-off send
    assert (row["state"], row["vendor_job_id"], row["results_count"]) == (
        "completed",
        made.job_id,
        made.total,
    )


# -- kill -9 mid-polling ---------------------------------------------------------------------


def sim_config(seed: int, speed: float, seconds: float) -> SimConfig:
    """Every vendor's jobs take about `seconds` simulated seconds, whatever their size."""
    config = SimConfig(seed=seed, speed=speed)
    for vendor in VendorName:
        config.vendor(vendor.value).profile = JobProfile(
            base_seconds=seconds, seconds_per_record=0.0, sigma=0.1, start_jitter=0.0
        )
    return config


def poll_fast(**settings: object) -> dict[str, object]:
    """Settings that poll every vendor at least every second (real time)."""
    for vendor in VendorName:
        settings[f"{vendor.value}__min_poll_interval"] = 0.2
        settings[f"{vendor.value}__max_poll_interval"] = 1.0
    return {"work_interval": 0.2, **settings}


OPEN = "state NOT IN ('completed', 'failed', 'expired')"


async def test_kill_mid_polling_then_restart_finishes_every_job_with_all_results(tmp_path):
    db, log = tmp_path / "poll.db", tmp_path / "serve.log"
    # About 5 s of real time per job: long enough to be killed while being polled.
    async with SimServer(sim_config(seed=21, speed=100, seconds=500)) as sim:
        env = serve_env(sim, db, port=free_port(), **poll_fast())
        async with started(["serve"], env, log) as service, aiohttp.ClientSession() as http:
            jobs = {}
            for vendor, (rows, options) in INPUTS.items():
                body = {"vendor": vendor.value, "submit": {"rows": rows, "options": options}}
                (jobs[vendor],) = (await api(http, "POST", f"{service.url}/api/jobs", body))["jobs"]

            def polled_while_open() -> bool:
                polled = query(db, "SELECT COUNT(*) FROM events WHERE type = 'vendor.polled'")
                still_open = query(db, f"SELECT COUNT(*) FROM jobs WHERE {OPEN}")
                # A round of polls made, and most jobs still open.
                return polled[0][0] >= len(jobs) and still_open[0][0] >= 3

            await eventually(polled_while_open, 10, "jobs are being polled")
            await service.kill()

        assert query(db, f"SELECT COUNT(*) FROM jobs WHERE {OPEN}")[0][0] > 0
        async with started(["serve"], env, log):

            def all_stored() -> bool:
                rows = query(db, "SELECT state, results_state FROM jobs")
                return all(row["results_state"] == "stored" for row in rows)

            await eventually(all_stored, 30, "every job finished with its results stored")

        for vendor, job in jobs.items():
            (row,) = query(db, "SELECT * FROM jobs WHERE id = ?", (job["id"],))
            (view,) = [v for v in sim.jobs(vendor.value) if v.job_id == row["vendor_job_id"]]
            expected = view.succeeded if vendor is VendorName.CRUSTDATA else view.total
            assert row["state"] == "completed", vendor
            assert positions(db, job["id"]) == result_positions(
                sim, vendor, row["vendor_job_id"], expected
            ), vendor
            assert row["results_count"] == expected, vendor
            # One complete set (BrightLocal's may follow partial ones, stored as they grew).
            finals = query(
                db,
                "SELECT COUNT(*) FROM events WHERE job_id = ? AND type = 'results.stored' "
                "AND NOT json_extract(payload, '$.partial')",
                (job["id"],),
            )
            assert finals[0][0] == 1, vendor


# -- callbacks wake the reconciler -----------------------------------------------------------


def polls(db, job_id: int) -> int:
    rows = query(
        db, "SELECT COUNT(*) FROM events WHERE job_id = ? AND type = 'vendor.polled'", (job_id,)
    )
    return int(rows[0][0])


@pytest_asyncio.fixture
async def slow_sim():
    """Jobs that run for days of simulated time: nothing finishes during a test."""
    async with SimServer(sim_config(seed=8, speed=100, seconds=10 * 86_400)) as sim:
        yield sim


async def submit_people(tmp_path, env) -> dict:
    """A Crustdata job submitted with the CLI (so with its callback URL)."""
    people = tmp_path / "people.csv"
    people.write_text(
        "professional_network_profile_urls\n"
        + "".join(f"https://www.linkedin.com/in/p{n}/\n" for n in range(20))
    )
    code, out, err = await run_cli(env, "submit", "crustdata", str(people), "--json")
    assert code == 0, err
    (job,) = json.loads(out)
    return job


def planned_far_away(db, *job_ids: int) -> bool:
    """The jobs' next checks are planned at least five minutes ahead."""
    rows = [query(db, "SELECT * FROM jobs WHERE id = ?", (job_id,))[0] for job_id in job_ids]
    return all(
        row["last_checked_at"] is not None and row["next_check_at"] > time.time() + 300
        for row in rows
    )


async def test_a_callback_gets_its_job_checked_within_a_second_even_mid_fetch(tmp_path, slow_sim):
    sim, db = slow_sim, tmp_path / "wake.db"
    # Scheduled passes are a minute apart: only the start and callbacks make them sooner.
    env = serve_env(sim, db, port=free_port(), work_interval=60)
    # Two jobs waiting for their callbacks, submitted before the service starts.
    first, second = await submit_people(tmp_path, env), await submit_people(tmp_path, env)
    # And a finished job whose results (190,000 records) take seconds to fetch.
    sim.config.crustdata.profile = JobProfile(base_seconds=60.0, seconds_per_record=0.0)
    large = sim.crustdata.add_job(200_000)
    end = large.job.terminal_at()
    assert end is not None
    await sim.advance_to(end + 1)

    async def callback_is_checked_at_once(http: aiohttp.ClientSession, job: dict) -> None:
        assert polls(db, job["id"]) == 0  # waiting for the callback costs no call
        body = {"batch_id": job["vendor_job_id"], "status": "completed"}
        async with http.post(job["callback_url"], json=body) as response:
            assert response.status == 200
        acknowledged = time.monotonic()
        await eventually(lambda: polls(db, job["id"]) == 1, 1.0, "the job is checked")
        assert time.monotonic() - acknowledged < 1.0

    async with (
        started(["serve"], env, tmp_path / "serve.log") as service,
        aiohttp.ClientSession() as http,
    ):
        await eventually(
            lambda: planned_far_away(db, first["id"], second["id"]),
            10,
            "the start-up pass plans both first checks",
        )
        await callback_is_checked_at_once(http, first)

        tracked = await api(
            http,
            "POST",
            f"{service.url}/api/jobs",
            {"vendor": "crustdata", "vendor_job_id": large.batch_id},
        )
        await api(http, "POST", f"{service.url}/api/jobs/{tracked['id']}/check")

        def fetching() -> bool:
            (row,) = query(db, "SELECT * FROM jobs WHERE id = ?", (tracked["id"],))
            return row["results_state"] == "fetching" and row["results_count"] > 0

        await eventually(fetching, 10, "the large fetch is under way")
        await callback_is_checked_at_once(http, second)
        (row,) = query(db, "SELECT results_state FROM jobs WHERE id = ?", (tracked["id"],))
        assert row["results_state"] == "fetching"  # the check did not wait for the fetch


async def test_a_job_made_due_by_another_process_is_checked_within_the_work_interval(
    tmp_path, slow_sim
):
    db = tmp_path / "due.db"
    env = serve_env(slow_sim, db, port=free_port(), work_interval=0.5)
    job = await submit_people(tmp_path, env)
    async with started(["serve"], env, tmp_path / "serve.log"):
        await eventually(
            lambda: planned_far_away(db, job["id"]), 10, "the start-up pass plans the first check"
        )
        # A receiver in another process stores a callback: its in-process wake-up cannot
        # reach this service, only the database can.
        async with Store.open(db) as store:
            delivery = InboundDelivery(
                method="POST",
                headers={"content-type": "application/json"},
                content_type="application/json",
                body=b"{}",
                verification="none",
                dedupe_key="elsewhere-1",
            )
            token = job["callback_url"].rsplit("/", 1)[1]
            assert await store.record_callback(
                VendorName.CRUSTDATA, token, delivery, vendor_sends_callbacks=True
            )
        await eventually(lambda: polls(db, job["id"]) == 1, 3.0, "the job is checked")
