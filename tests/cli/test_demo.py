"""`enrichwatch demo` as a real subprocess on a fresh install: no configuration, no vendor
account, a temporary working directory. It must bring every job at all five vendors to its
stored results (checked in the SQLite file), show the lost callback being caught by polling,
and say how to export the results."""

from __future__ import annotations

import asyncio
import io
import json
import re
import shlex
import signal
import socket
from typing import Any

import aiohttp
import pytest
from rich.console import Console

from enrichwatch.demo import LiveView, clear_previous_demo
from enrichwatch.models import VendorName
from enrichwatch.store import Store
from tests.cli.conftest import World, assert_one_line_error, clean_env, run_cli
from tests.conftest import query, snapshot, spawn

DEMO_DEADLINE_S = 150


async def start_demo(tmp_path, *args: str) -> asyncio.subprocess.Process:
    return await spawn(
        "demo",
        *args,
        env=clean_env(),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def assert_every_job_finished_with_its_results(db) -> dict[str, dict[str, Any]]:
    jobs = {row["vendor"]: dict(row) for row in query(db, "SELECT * FROM jobs")}
    assert sorted(jobs) == sorted(vendor.value for vendor in VendorName)
    for vendor, job in jobs.items():
        (stored,) = query(db, "SELECT COUNT(*) FROM results WHERE job_id = ?", (job["id"],))
        assert job["state"] == "completed", vendor
        assert job["results_state"] == "stored", vendor
        assert stored[0] == job["results_count"] > 0, vendor
        assert job["name"] == f"demo {vendor}"
    return jobs


def event_types(db, job_id: int) -> list[str]:
    rows = query(db, "SELECT type FROM events WHERE job_id = ? ORDER BY seq", (job_id,))
    return [row["type"] for row in rows]


@pytest.mark.timeout(DEMO_DEADLINE_S + 30)
async def test_demo_brings_every_job_to_its_results_and_exits_0(tmp_path):
    process = await start_demo(tmp_path)
    stdout, stderr = await asyncio.wait_for(process.communicate(), DEMO_DEADLINE_S)
    out, err = stdout.decode(), stderr.decode()

    assert process.returncode == 0, out + err
    assert "Traceback" not in out + err
    db = tmp_path / "enrichwatch-demo.db"
    jobs = assert_every_job_finished_with_its_results(db)

    # The BrightLocal callback was lost on purpose: polling found the job done, and said so.
    brightlocal = event_types(db, jobs["brightlocal"]["id"])
    assert "webhook.late" in brightlocal
    assert "webhook.received" not in brightlocal
    assert jobs["brightlocal"]["late_webhook_at"] is not None
    assert "webhook.received" in event_types(db, jobs["crustdata"]["id"])
    assert jobs["crustdata"]["callbacks_received"] >= 1
    late = next(line for line in out.splitlines() if "webhook.late" in line)
    assert "callback late: checking by polling instead" in late
    assert f"brightlocal      job {jobs['brightlocal']['id']}" in late
    # Each outcome went to the console channel, the one on by default.
    for job in jobs.values():
        sent = query(
            db,
            "SELECT payload FROM events WHERE job_id = ? AND type = 'notification.sent'",
            (job["id"],),
        )
        assert [json.loads(row["payload"])["channel"] for row in sent] == ["console"]
    assert "notification sent (console, completed)" in out

    # Live progress as plain lines (stdout is a pipe), then where everything is.
    for vendor in VendorName:
        assert re.search(rf"{vendor.value} +job \d+ +completed", out), vendor
    assert "5 of 5 jobs finished with their results" in out
    for job in jobs.values():
        (summary,) = [line for line in out.splitlines() if line.startswith(f"  job {job['id']} ")]
        count = job["callbacks_received"]
        assert f" {count} {'callback' if count == 1 else 'callbacks'}" in summary
    # The service has stopped: no address is given that answers nothing.
    assert (
        "Dashboard: it closes with the demo; `enrichwatch demo --keep-running` keeps it up" in out
    )
    assert "http://127.0.0.1" not in out.split("5 of 5 jobs finished")[1]
    assert (tmp_path / "enrichwatch-demo.db.log").stat().st_size > 0

    # The printed export command works, as printed, after the demo has ended.
    (command,) = [
        line.strip()
        for line in out.splitlines()
        if line.strip().startswith("ENRICHWATCH_DB=") and " results " in line
    ]
    assignment, *args = shlex.split(command)
    name, value = assignment.split("=", 1)
    assert args[:2] == ["enrichwatch", "results"]
    result = await run_cli(clean_env() | {name: value}, *args[1:], cwd=tmp_path)
    assert result.code == 0, result.err
    job_id = int(args[2])
    exported = (tmp_path / args[-1]).read_text().splitlines()
    (row,) = query(db, "SELECT results_count FROM jobs WHERE id = ?", (job_id,))
    assert len(exported) == 1 + row["results_count"]


@pytest.mark.timeout(DEMO_DEADLINE_S + 30)
async def test_demo_keep_running_leaves_the_service_up_until_ctrl_c(tmp_path):
    process = await start_demo(tmp_path, "--keep-running", "--db", "kept.db")
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(DEMO_DEADLINE_S):
            while not lines or "Ctrl-C stops it" not in lines[-1]:
                line = (await process.stdout.readline()).decode()
                assert line, "the demo ended: " + "".join(lines)
                lines.append(line)
        text = "".join(lines)
        (url,) = re.findall(r"^Dashboard: (http://\S+)/$", text, re.MULTILINE)
        (token,) = re.findall(r"^API token for this demo: (\S+)$", text, re.MULTILINE)
        assert_every_job_finished_with_its_results(tmp_path / "kept.db")

        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/healthz") as response:
                assert response.status == 200
            headers = {"Authorization": f"Bearer {token}"}
            async with http.get(f"{url}/api/jobs", headers=headers) as response:
                assert response.status == 200
                assert len((await response.json())["jobs"]) == 5
        assert process.returncode is None
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
    await asyncio.wait_for(process.wait(), 30)
    assert process.returncode == 0


async def test_demo_never_replaces_a_database_that_is_not_a_demo(tmp_path):
    db = tmp_path / "enrichwatch.db"
    async with Store.open(db) as store:
        await store.track_job(VendorName.CRUSTDATA, "b-1", "the real thing")
    before = snapshot(db)

    result = await run_cli(clean_env(), "demo", "--db", str(db), cwd=tmp_path)

    assert assert_one_line_error(result) == (
        f"Error: {db} exists and is not a demo database; pass --db with another path"
    )
    assert snapshot(db) == before
    result = await run_cli(clean_env(), "demo", "--timeout", "0", cwd=tmp_path)
    assert "0.0 is not in the range x>=1" in assert_one_line_error(result, code=2)
    assert not (tmp_path / "enrichwatch-demo.db").exists()


async def test_a_demo_that_cannot_listen_says_so_in_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = await run_cli(clean_env(), "demo", "--port", str(port), cwd=tmp_path)

    error = assert_one_line_error(result)
    assert error.startswith("Error: the demo could not start: ")
    assert "in use" in error
    assert result.out.count("enrichwatch at") == 0


async def test_an_earlier_demo_database_is_replaced(tmp_path):
    db = tmp_path / "demo.db"
    async with Store.open(db) as store:
        await store.track_job(VendorName.ECORE, "e-1", "demo ecore")
    (tmp_path / "demo.db.log").write_text("old log\n")

    clear_previous_demo(db)

    assert sorted(path.name for path in tmp_path.iterdir()) == []


async def test_the_live_view_draws_a_bar_per_job_and_the_notable_events(world: World):
    jobs = [await world.services.store.get_job(job.id) for job in world.jobs.values()]
    events = [event for job in jobs for event in await world.services.store.list_events(job.id)]
    screen = io.StringIO()
    view = LiveView(Console(file=screen, force_terminal=True, width=160))

    view.refresh(jobs, events)
    view.close()

    text = screen.getvalue()
    for job in jobs:
        assert re.search(rf"{job.vendor.value} +job {job.id} .*completed", text), job.vendor
        assert f"results {job.results_count} stored" in text
    assert "callback late: checking by polling instead" in text
    assert "status call:" not in text  # polls show as the calls counter, not as lines
