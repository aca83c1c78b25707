"""`enrichwatch stats` and `vendor_stats`: per vendor, computed from the event log of jobs
that really ran at the simulated vendors (BrightLocal's callback lost on the way)."""

from __future__ import annotations

import json

import pytest

from enrichwatch.models import JobState, VendorName
from enrichwatch.stats import VendorStats, vendor_stats
from enrichwatch.store import Store
from tests.cli.conftest import World, assert_one_line_error, clean_env, run_cli
from tests.conftest import query


def _times(world: World, job_id: int, event_type: str) -> list[float]:
    rows = query(
        world.db,
        "SELECT created_at FROM events WHERE job_id = ? AND type = ? ORDER BY seq",
        (job_id, event_type),
    )
    return [row["created_at"] for row in rows]


def _expected_delay(world: World, job_id: int) -> float:
    """From the log: callback to detection when a callback came first, else half the window
    between the last poll that saw the job open (or its start) and the one that saw it end."""
    (ended,) = [
        row["created_at"]
        for row in query(
            world.db,
            "SELECT * FROM events WHERE job_id = ? AND type = 'job.state_changed'",
            (job_id,),
        )
        if json.loads(row["payload"])["to"] == "completed"
    ]
    callbacks = _times(world, job_id, "webhook.received")
    if callbacks and callbacks[0] <= ended:
        return float(ended - callbacks[0])
    polls = query(
        world.db,
        "SELECT created_at, payload FROM events WHERE job_id = ? AND type = 'vendor.polled'",
        (job_id,),
    )
    open_polls = [
        row["created_at"]
        for row in polls
        if json.loads(row["payload"])["state"] not in ("completed", "failed", "expired")
    ]
    start = min(_times(world, job_id, "submit.requested"))
    return float(ended - max([start, *open_polls])) / 2


async def test_stats_per_vendor_from_the_event_log(world: World):
    result = await world.cli("stats", "--json")

    assert result.code == 0, result.err
    shown = {row["vendor"]: row for row in json.loads(result.out)}
    assert list(shown) == [vendor.value for vendor in VendorName]
    for vendor, job in world.jobs.items():
        (row,) = query(world.db, "SELECT * FROM jobs WHERE id = ?", (job.id,))
        stats = shown[vendor.value]
        assert (stats["jobs"], stats["open_jobs"], stats["completed_jobs"]) == (1, 0, 1)
        assert stats["failed_jobs"] == 0
        assert stats["calls_per_job"] == row["vendor_calls"]
        assert stats["median_duration"] == pytest.approx(row["finished_at"] - row["created_at"])
        delay = _expected_delay(world, job.id)
        assert stats["detection_delay_p50"] == pytest.approx(delay)
        assert stats["detection_delay_p95"] == pytest.approx(delay)
    assert shown["brightlocal"]["callbacks_lost"] == 1
    assert shown["brightlocal"]["callbacks_late"] == 0
    assert shown["crustdata"]["callbacks_lost"] == shown["crustdata"]["callbacks_late"] == 0
    # The Crustdata callback came first: the job was noticed when its check confirmed it.
    crustdata = world.jobs[VendorName.CRUSTDATA].id
    assert _times(world, crustdata, "webhook.received")
    assert shown["crustdata"]["detection_delay_p50"] < shown["brightlocal"]["detection_delay_p50"]

    result = await world.cli("stats")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert "Median duration" in lines[0]
    assert [line.split()[0] for line in lines[2:]] == [vendor.value for vendor in VendorName]


async def test_open_jobs_count_but_do_not_skew_durations_or_costs(world: World):
    before = {row.vendor: row for row in await vendor_stats(world.services.store)}
    await world.submit(VendorName.REPROMPT)

    after = {row.vendor: row for row in await vendor_stats(world.services.store)}

    reprompt = after[VendorName.REPROMPT]
    assert isinstance(reprompt, VendorStats)
    assert (reprompt.jobs, reprompt.open_jobs) == (2, 1)
    assert reprompt.median_duration == before[VendorName.REPROMPT].median_duration
    assert reprompt.calls_per_job == before[VendorName.REPROMPT].calls_per_job
    assert reprompt.detection_delay_p50 == before[VendorName.REPROMPT].detection_delay_p50
    result = await world.cli("stats", "--json")
    assert [row["open_jobs"] for row in json.loads(result.out)] == [0, 0, 1, 0, 0]


async def test_stats_of_an_empty_log_has_every_vendor_and_no_numbers(tmp_path):
    db = tmp_path / "empty.db"
    async with Store.open(db):
        pass

    result = await run_cli(clean_env(db=str(db)), "stats", "--json")

    assert result.code == 0, result.err
    assert json.loads(result.out) == [
        {
            "vendor": vendor.value,
            "jobs": 0,
            "open_jobs": 0,
            "completed_jobs": 0,
            "failed_jobs": 0,
            "median_duration": None,
            "calls_per_job": None,
            "detection_delay_p50": None,
            "detection_delay_p95": None,
            "callbacks_late": 0,
            "callbacks_lost": 0,
        }
        for vendor in VendorName
    ]
    result = await run_cli(clean_env(db=str(db)), "stats", "--vendor", "crustdata")
    assert "No such option '--vendor'" in assert_one_line_error(result, code=2)


async def test_the_failed_column_counts_expired_jobs_too_and_says_so(world: World):
    """An expired job (one enrichwatch gave up asking about) is counted with the failed ones;
    a column headed "Failed" alone read as if the vendor had failed it."""
    job = await world.submit(VendorName.ECORE)
    await world.services.store.end_job(job.id, JobState.EXPIRED, "older than the maximum age")

    result = await world.cli("stats")

    assert result.code == 0, result.err
    lines = result.out.splitlines()
    header = [cell.strip() for cell in lines[0].split("┃")]
    rows = {line.split()[0]: [cell.strip() for cell in line.split("│")] for line in lines[2:]}
    column = header.index("Failed/expired")
    assert rows["ecore"][column] == "1"
    assert {rows[vendor.value][column] for vendor in VendorName if vendor.value != "ecore"} == {"0"}
    shown = json.loads((await world.cli("stats", "--json")).out)
    assert [row["failed_jobs"] for row in shown if row["vendor"] == "ecore"] == [1]
