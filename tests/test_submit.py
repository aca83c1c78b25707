"""Submitting and tracking batches against the vendor simulator over real HTTP: the CLI (as a
real subprocess), the API, validation that sends nothing, splitting, and parts held back by a
vendor's concurrency cap until the reconciler sends them."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import sqlite3
import time

import pytest
import pytest_asyncio
from pydantic import SecretStr

from enrichwatch.config import load_settings
from enrichwatch.errors import InputError
from enrichwatch.models import VendorName
from enrichwatch.runtime import open_services
from enrichwatch.sim import SimConfig, SimServer
from enrichwatch.submission import submit_batch
from enrichwatch.vendors.base import SubmitRequest
from reconciler.submissions import send_queued_submissions
from tests.conftest import API_TOKEN, run_cli, sim_env, spawn


@pytest_asyncio.fixture
async def sim():
    async with SimServer(SimConfig(seed=5, start_time=time.time())) as server:
        yield server


@pytest.fixture
def sim_settings(tmp_path, sim):
    overrides = {
        vendor.value: {
            "base_url": sim.base_urls[vendor.value],
            "api_key": sim.api_keys[vendor.value],
        }
        for vendor in VendorName
    }
    return load_settings(db=tmp_path / "submit.db", api_token=API_TOKEN, port=0, **overrides)


async def cli(tmp_path, sim, *args):
    env = {**os.environ, **sim_env(sim), "ENRICHWATCH_DB": str(tmp_path / "cli.db")}
    return await run_cli(env, *args)


def write_csv(path, header, rows):
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def jobs_in(db):
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute("SELECT * FROM jobs ORDER BY id")]
    finally:
        conn.close()


async def test_cli_submit_sends_the_batch_with_its_callback_url_and_tracks_it(tmp_path, sim):
    people = write_csv(
        tmp_path / "people.csv",
        ["professional_network_profile_urls"],
        [[f"https://www.linkedin.com/in/person-{n}/"] for n in range(25)],
    )

    code, out, err = await cli(tmp_path, sim, "submit", "crustdata", str(people), "--json")

    assert code == 0, err
    (job,) = json.loads(out)
    (vendor_job,) = sim.crustdata.jobs.values()
    assert job["vendor_job_id"] == vendor_job.batch_id
    assert job["state"] == "submitted"
    assert job["name"] == "people"
    assert vendor_job.webhook_url == job["callback_url"]
    assert vendor_job.job.total == 25
    (row,) = jobs_in(tmp_path / "cli.db")
    assert row["vendor_calls"] == 1
    assert row["next_check_at"] is not None


async def test_cli_validation_error_names_the_row_and_sends_nothing(tmp_path, sim):
    places = write_csv(
        tmp_path / "places.csv",
        ["place_id", "name", "full_address", "latitude", "longitude"],
        [["p1", "A", "1 Main St", "40.1", "-73.9"], ["p2", "B", "2 Main St", "north", "-73.9"]],
    )

    code, _, err = await cli(tmp_path, sim, "submit", "reprompt", str(places))

    assert code == 1
    assert "row 2" in err
    assert "latitude" in err
    assert "Traceback" not in err
    assert sim.stats.count("reprompt") == 0
    assert jobs_in(tmp_path / "cli.db") == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "empty"),
        ("place_id,name\np1,A,extra\n", "row 1"),
        ("a,a\n1,2\n", "repeats"),
        ("place_id,name\np1,A\n\np2,B\n", "row 2: is blank"),
    ],
)
async def test_cli_unusable_csv_is_refused(tmp_path, sim, content, expected):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    code, _, err = await cli(tmp_path, sim, "submit", "reprompt", str(path))
    assert code == 1
    assert expected in err
    assert sim.stats.count() == 0


async def test_cli_missing_file_and_bad_option_are_clear_errors(tmp_path, sim):
    code, _, err = await cli(tmp_path, sim, "submit", "ecore", str(tmp_path / "nope.csv"))
    assert code == 1
    assert "no such file" in err
    path = write_csv(tmp_path / "ok.csv", ["email"], [["a@b.c"]])
    code, _, err = await cli(tmp_path, sim, "submit", "ecore", str(path), "-o", "novalue")
    assert code == 2
    assert "KEY=VALUE" in err
    assert sim.stats.count() == 0


async def test_reprompt_input_over_the_cap_becomes_three_tracked_batches(sim_settings, sim):
    rows = [
        {
            "place_id": f"p{n}",
            "name": f"Store {n}",
            "full_address": f"{n} Main St",
            "latitude": "40.0",
            "longitude": "-73.0",
        }
        for n in range(120_000)
    ]
    async with open_services(sim_settings) as services:
        outcome = await submit_batch(
            services,
            VendorName.REPROMPT,
            SubmitRequest(rows=rows, name="stores"),
            public_url="http://127.0.0.1:1",
        )
    assert [job.name for job in outcome.submitted] == [
        "stores (1/3)",
        "stores (2/3)",
        "stores (3/3)",
    ]
    assert sorted(job.vendor_job_id for job in outcome.submitted) == sorted(
        view.job_id for view in sim.jobs("reprompt")
    )
    assert sorted(view.total for view in sim.jobs("reprompt")) == [20_000, 50_000, 50_000]


async def test_input_error_sends_nothing_and_tracks_nothing(sim_settings, sim):
    async with open_services(sim_settings) as services:
        with pytest.raises(InputError) as error:
            await submit_batch(
                services,
                VendorName.CRUSTDATA,
                SubmitRequest(rows=[{"emails": "a@b.c"}]),
                public_url="http://127.0.0.1:1",
            )
        assert await services.store.list_jobs() == []
    assert "professional_network_profile_urls" in str(error.value)
    assert sim.stats.count() == 0


async def test_concurrency_cap_queues_the_part_and_the_reconciler_sends_it_later(sim_settings, sim):
    sim.config.crustdata.max_active_jobs = 1
    now = [time.time()]
    request = SubmitRequest(rows=[{"business_emails": "a@example.com"}] * 3, name="emails")
    async with open_services(sim_settings, clock=lambda: now[0]) as services:
        first = await submit_batch(
            services, VendorName.CRUSTDATA, request, public_url="http://127.0.0.1:1"
        )
        second = await submit_batch(
            services, VendorName.CRUSTDATA, request, public_url="http://127.0.0.1:1"
        )
        (held,) = second.queued
        assert held.vendor_job_id is None
        assert held.state.value == "submitted"
        assert len(sim.crustdata.jobs) == 1

        # Not yet due: nothing is sent.
        assert await send_queued_submissions(services, "test") == 0
        # Due, but the vendor is still at its cap: held again, not failed.
        now[0] += 120
        assert await send_queued_submissions(services, "test") == 0
        assert (await services.store.get_job(held.id)).state.value == "submitted"

        await sim.advance(24 * 3600)  # the first job finishes at the vendor
        now[0] += 3600
        assert await send_queued_submissions(services, "test") == 1
        sent = await services.store.get_job(held.id)
        events = [event.type for event in await services.store.list_events(held.id)]

    assert sent.vendor_job_id in sim.crustdata.jobs
    assert sent.vendor_job_id != first.submitted[0].vendor_job_id
    assert sent.vendor_calls == 3  # three submit attempts, each counted
    assert events == [
        "submit.requested",
        "submit.sending",
        "submit.queued",
        "submit.sending",
        "submit.queued",
        "submit.sending",
        "job.submitted",
    ]


async def test_api_submit_and_its_input_errors(sim_settings, sim, http):
    from receiver import serving

    async with open_services(sim_settings) as services, serving(services, "127.0.0.1", 0) as url:
        auth = {"Authorization": f"Bearer {API_TOKEN}"}
        bad = {
            "vendor": "influencers_club",
            "submit": {
                "rows": [{"handle": "a"}, {"handle": ""}],
                "options": {"enrichment_mode": "full"},
            },
        }
        async with http.post(f"{url}/api/jobs", json=bad, headers=auth) as response:
            assert response.status == 422
            error = (await response.json())["error"]
        assert error["code"] == "invalid_input"
        assert error["row"] == 2
        assert sim.stats.count() == 0

        good = {
            "vendor": "ecore",
            "name": "leads",
            "submit": {"rows": [{"email": "a@example.com"}], "options": {"category": "contact"}},
        }
        async with http.post(f"{url}/api/jobs", json=good, headers=auth) as response:
            assert response.status == 201
            (job,) = (await response.json())["jobs"]
    assert job["vendor_job_id"] in sim.ecore.jobs
    assert job["name"] == "leads"


async def test_cli_track_twice_is_one_job(tmp_path, sim):
    code, out, err = await cli(tmp_path, sim, "track", "ecore", "job-123", "--name", "x", "--json")
    assert code == 0, err
    code, again, _ = await cli(tmp_path, sim, "track", "ecore", "job-123", "--json")
    assert json.loads(again)[0]["id"] == json.loads(out)[0]["id"]
    code, _, err = await cli(tmp_path, sim, "track", "nosuch", "job-1")
    assert code == 2
    assert "nosuch" in err


async def test_sim_command_prints_the_settings_to_use(tmp_path):
    process = await spawn(
        "sim",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        lines = []
        while len(lines) < 10:
            line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().strip()
            assert line or process.returncode is None
            if line.startswith("ENRICHWATCH_"):
                lines.append(line)
    finally:
        process.terminate()
        await process.wait()
    names = {line.split("=", 1)[0] for line in lines}
    assert {f"ENRICHWATCH_{v.value.upper()}__BASE_URL" for v in VendorName} <= names


async def test_api_submit_the_vendor_refuses_names_the_failed_job(sim_settings, sim, http):
    """Checked locally and still refused by the vendor: 422 with the part's job, which is kept
    as failed with the vendor's words; a vendor that fails to take it (here: refuses our
    credentials) is a 502 with it too."""
    from receiver import serving

    async with open_services(sim_settings) as services, serving(services, "127.0.0.1", 0) as url:
        auth = {"Authorization": f"Bearer {API_TOKEN}"}
        profile = "https://www.linkedin.com/in/someone"
        refused = {
            "vendor": "crustdata",
            "submit": {
                "rows": [{"professional_network_profile_urls": profile}],
                "options": {"endpoint": "contact", "fields": "not a list"},
            },
        }
        async with http.post(f"{url}/api/jobs", json=refused, headers=auth) as response:
            assert response.status == 422
            error = (await response.json())["error"]
        assert error["code"] == "vendor_rejected"
        assert error["jobs"] == []
        failed = error["failed_job"]
        assert failed["state"] == "failed"
        assert failed["error"]
        assert [job["id"] for job in jobs_in(sim_settings.db)] == [failed["id"]]

        services.settings.ecore.api_key = SecretStr("not-the-key")
        unreachable = {
            "vendor": "ecore",
            "submit": {"rows": [{"email": "a@example.com"}], "options": {"category": "contact"}},
        }
        async with http.post(f"{url}/api/jobs", json=unreachable, headers=auth) as response:
            assert response.status == 502
            error = (await response.json())["error"]
        assert error["code"] == "vendor_error"
        assert error["failed_job"]["state"] == "failed"
        assert error["failed_job"]["vendor"] == "ecore"


async def test_a_submit_neither_answered_nor_read_back_is_never_sent_again(sim_settings, sim, http):
    """The eCore submit fails with a 5xx (the vendor may have taken it) and the job list
    that would settle it fails too: the part fails, saying where to look, rather than being
    queued and sent again, which could bill it twice."""
    from receiver import serving

    submit = "POST /api/v1/enrichment/submit/"
    async with open_services(sim_settings) as services, serving(services, "127.0.0.1", 0) as url:
        sim.set_fault("ecore", server_errors=2)
        body = {
            "vendor": "ecore",
            "submit": {"rows": [{"email": "a@example.com"}], "options": {"category": "contact"}},
        }
        auth = {"Authorization": f"Bearer {API_TOKEN}"}
        async with http.post(f"{url}/api/jobs", json=body, headers=auth) as response:
            assert response.status == 502
            error = (await response.json())["error"]
        assert await send_queued_submissions(services, "test") == 0

    failed = error["failed_job"]
    assert failed["state"] == "failed"
    assert "could not be read back" in failed["error"]
    assert "may have taken it: look there for a job created at" in failed["error"]
    conn = sqlite3.connect(sim_settings.db)
    try:
        assert conn.execute("SELECT COUNT(*) FROM work WHERE kind = 'submit'").fetchone() == (0,)
    finally:
        conn.close()
    assert sim.stats.count("ecore", submit) == 1
