"""`enrichwatch receiver` and `enrichwatch reconciler` as separate real processes on one
database: what a reconciler held when it was stopped or killed is taken up at once by one
still running, a lease another live process holds is never taken from it, two reconcilers
handle each job once, and either process may be started first."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from enrichwatch.sim import SimConfig, SimServer
from enrichwatch.store.holders import holders_directory
from tests.conftest import Command, eventually, query, run_cli, spawn, started
from tests.test_reconciler_crash import api, polls, serve_env


@asynccontextmanager
async def reconciler_then_receiver(
    env: dict[str, str], tmp_path: Path
) -> AsyncIterator[tuple[Command, Command]]:
    """A reconciler, then a receiver on the same database, until the block ends."""
    async with (
        started(["reconciler"], env, tmp_path / "reconciler.log") as reconciler,
        started(["receiver"], env, tmp_path / "receiver.log") as receiver,
    ):
        yield reconciler, receiver


async def track(http: aiohttp.ClientSession, url: str, vendor: str, vendor_job_id: str) -> dict:
    """Track a vendor's job through the receiver's API; the job as the API returns it."""
    return await api(
        http, "POST", f"{url}/api/jobs", {"vendor": vendor, "vendor_job_id": vendor_job_id}
    )


def job_row(db: Path, job_id: int) -> dict[str, object]:
    (row,) = query(db, "SELECT * FROM jobs WHERE id = ?", (job_id,))
    return dict(row)


@pytest.mark.parametrize("ending", ["sigterm", "sigkill"])
async def test_a_reconciler_gone_mid_check_leaves_the_job_to_the_one_still_running(
    tmp_path, ending
):
    """SIGTERM, or kill -9 with no restart, while a status call hangs: the reconciler still
    running checks the job within a few seconds, not when the lease lapses. A clean stop gives
    its leases back; a killed holder is seen to be gone."""
    db = tmp_path / "split.db"
    async with SimServer(SimConfig(seed=5)) as sim, aiohttp.ClientSession() as http:
        crust = sim.crustdata.add_job(10)
        # The first status call hangs longer than the wait below (the simulator's shutdown
        # waits for it), and far less than the lease a gone reconciler would leave behind.
        sim.set_fault("crustdata", slow_count=1, slow_seconds=12)
        env = serve_env(sim, db, work_interval=0.2, shutdown_timeout=0.2)
        logs = []
        async with started(["receiver"], env, tmp_path / "receiver.log") as receiver:
            url = receiver.url
            async with started(["reconciler"], env, tmp_path / "first.log") as first:
                job = await track(http, url, "crustdata", crust.batch_id)
                await eventually(
                    lambda: (
                        sim.stats.count("crustdata") >= 1 and job_row(db, job["id"])["lease_owner"]
                    ),
                    what="the first reconciler's status call is out",
                )
                async with started(["reconciler"], env, tmp_path / "second.log") as second:
                    if ending == "sigterm":
                        logs.append(await first.stop())
                    else:
                        await first.kill()
                    await eventually(
                        lambda: job_row(db, job["id"])["last_checked_at"],
                        timeout=8,
                        what="the reconciler still running checks the job",
                    )
                    logs.append(await second.stop())
            await receiver.stop()
    assert sim.stats.count("crustdata") == 2  # the hung call and the second reconciler's
    assert list(holders_directory(db).glob("*.lock")) == []
    for text in logs:
        assert "database is locked" not in text


async def test_a_reconciler_starting_leaves_a_running_check_command_its_lease(tmp_path):
    """`enrichwatch check JOB` is a lease holder too: a reconciler starting while its status
    call is out must not take the job from it (a second call for the same due time)."""
    db = tmp_path / "split.db"
    async with SimServer(SimConfig(seed=6)) as sim, aiohttp.ClientSession() as http:
        crust = sim.crustdata.add_job(10)
        sim.set_fault("crustdata", slow_count=1, slow_seconds=6)
        env = serve_env(sim, db, work_interval=0.2, log_level="info")
        async with started(["receiver"], env, tmp_path / "receiver.log") as receiver:
            url = receiver.url
            job = await track(http, url, "crustdata", crust.batch_id)
            with (tmp_path / "check.log").open("ab") as err:
                check = await spawn(
                    "check",
                    str(job["id"]),
                    env=env,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=err,
                )

            def call_out() -> dict[str, object] | None:
                return job_row(db, job["id"]) if sim.stats.count("crustdata") else None

            try:
                claimed = await eventually(call_out, what="the check command's call is out")
                assert claimed is not None
                assert claimed["lease_owner"]
                async with started(["reconciler"], env, tmp_path / "reconciler.log") as rec:
                    # Its take-over is done before it says it is running.
                    after = job_row(db, job["id"])
                    assert after["lease_owner"] == claimed["lease_owner"]
                    assert after["lease_expires_at"] == claimed["lease_expires_at"]
                    assert await asyncio.wait_for(check.wait(), 20) == 0
                    reconciler_log = await rec.stop()
            finally:
                if check.returncode is None:
                    check.kill()
                    await check.wait()
            await receiver.stop()
    assert "leases_released" not in reconciler_log


async def test_two_reconcilers_on_one_file_handle_each_job_once(tmp_path):
    """Jobs finished at the vendor, tracked through the receiver while two reconcilers run:
    each job is asked about once and its results are downloaded once, by one of them."""
    db = tmp_path / "split.db"
    config = SimConfig(seed=7)
    config.crustdata.profile.record_failure_rate = 0.0
    async with SimServer(config) as sim, aiohttp.ClientSession() as http:
        crusts = [sim.crustdata.add_job(20) for _ in range(8)]
        await sim.advance(365 * 24 * 3600.0)
        env = serve_env(sim, db, work_interval=0.1)
        async with (
            started(["receiver"], env, tmp_path / "receiver.log") as receiver,
            started(["reconciler"], env, tmp_path / "one.log") as one,
            started(["reconciler"], env, tmp_path / "two.log") as two,
        ):
            url = receiver.url
            jobs = [await track(http, url, "crustdata", crust.batch_id) for crust in crusts]
            ids = tuple(job["id"] for job in jobs)

            def all_stored() -> bool:
                rows = query(db, "SELECT results_state FROM jobs")
                return len(rows) == len(ids) and all(
                    row["results_state"] == "stored" for row in rows
                )

            await eventually(all_stored, 20, "every job's results are stored")
            logs = [await one.stop(), await two.stop()]
            await receiver.stop()
    downloads = sim.stats.count("storage")
    assert downloads == len(crusts), sim.stats.requests
    # One status call per job (a list call, which names no job, may come on top).
    assert sim.stats.count("crustdata", "GET /batch/{id}") <= len(crusts), sim.stats.requests
    for row in query(db, "SELECT job_id, COUNT(*) AS n FROM results GROUP BY job_id"):
        assert row["n"] == 20
    for text in logs:
        assert "database is locked" not in text


async def test_a_reconciler_killed_mid_fetch_leaves_the_fetch_to_the_one_still_running(tmp_path):
    """kill -9 while a results call hangs: the other reconciler takes the fetch up at once
    (not when its lease lapses) and stores every record exactly once."""
    db = tmp_path / "split.db"
    result = "GET /api/v1/enrichment/result/{id}/"
    async with SimServer(SimConfig(seed=9)) as sim, aiohttp.ClientSession() as http:
        ecore = sim.ecore.add_job([{"email": f"lead{n}@example.com"} for n in range(30)])
        await sim.advance(365 * 24 * 3600.0)
        sim.set_fault("ecore", slow_count=1, slow_seconds=12, endpoint=result)
        env = serve_env(sim, db, work_interval=0.2)
        async with started(["receiver"], env, tmp_path / "receiver.log") as receiver:
            url = receiver.url
            async with started(["reconciler"], env, tmp_path / "first.log") as first:
                job = await track(http, url, "ecore", ecore.job_id)
                await eventually(
                    lambda: sim.stats.injected[("ecore", "slow")] == 1,
                    what="the first reconciler's results call is out",
                )
                async with started(["reconciler"], env, tmp_path / "second.log") as second:
                    await first.kill()
                    await eventually(
                        lambda: job_row(db, job["id"])["results_state"] == "stored",
                        timeout=8,
                        what="the reconciler still running stores the results",
                    )
                    second_log = await second.stop()
            await receiver.stop()
    # One record per input row, enriched or not: no duplicates, no gaps.
    rows = query(
        db, "SELECT position FROM results WHERE job_id = ? ORDER BY position", (job["id"],)
    )
    assert [row["position"] for row in rows] == list(range(30))
    assert job_row(db, job["id"])["results_count"] == 30
    events = query(db, "SELECT type FROM events WHERE job_id = ?", (job["id"],))
    assert [e["type"] for e in events].count("results.stored") == 1
    assert "database is locked" not in second_log


async def test_a_reconciler_started_before_the_receiver_made_the_database(tmp_path):
    """The reconciler may come up first, on a file that does not exist yet; the receiver
    started after it shares the database it made, and the job it tracks gets checked."""
    db = tmp_path / "later" / "split.db"
    db.parent.mkdir()
    async with SimServer(SimConfig(seed=10)) as sim, aiohttp.ClientSession() as http:
        crust = sim.crustdata.add_job(10)
        env = serve_env(sim, db, work_interval=0.2)
        async with reconciler_then_receiver(env, tmp_path) as (reconciler, receiver):
            job = await track(http, receiver.url, "crustdata", crust.batch_id)
            await eventually(
                lambda: job_row(db, job["id"])["last_checked_at"],
                what="the reconciler checks the job the receiver tracked",
            )
            async with http.get(f"{receiver.url}/readyz") as response:
                assert response.status == 200, await response.text()
            receiver_log = await receiver.stop()
            reconciler_log = await reconciler.stop()
    for text in (receiver_log, reconciler_log):
        assert "database is locked" not in text


async def test_a_callback_to_a_separate_receiver_is_checked_within_seconds(tmp_path):
    """The reconciler learns of a job made due in another process (tracked through the
    receiver's API, then woken by a callback) without waiting for its next pass: here the
    work interval is five minutes, and each check still follows within seconds."""
    db = tmp_path / "split.db"
    async with SimServer(SimConfig(seed=10)) as sim, aiohttp.ClientSession() as http:
        crust = sim.crustdata.add_job(10_000)
        env = serve_env(sim, db, work_interval=300)
        async with reconciler_then_receiver(env, tmp_path) as (reconciler, receiver):
            job = await track(http, receiver.url, "crustdata", crust.batch_id)
            await eventually(lambda: polls(db, job["id"]) == 1, what="the first check")
            # The plan puts the next check a minute or more away (Crustdata's interval).
            assert float(job_row(db, job["id"])["next_check_at"]) > time.time() + 30

            async with http.post(job["callback_url"], json={"id": crust.batch_id}) as reply:
                assert reply.status == 200, await reply.text()
            await eventually(lambda: polls(db, job["id"]) == 2, what="the confirming check")
            await receiver.stop()
            await reconciler.stop()


async def callback_url(env: dict[str, str], vendor_job_id: str) -> str:
    """The callback URL `enrichwatch track` gives a new Crustdata job."""
    result = await run_cli(env, "track", "crustdata", vendor_job_id, "--json")
    assert result.code == 0, result.err
    (job,) = json.loads(result.out)
    url: str = job["callback_url"]
    return url


async def test_a_second_service_on_one_file_is_warned_of_naming_the_first(tmp_path):
    """One service per database: a second `serve` on the file says so at start, naming
    where the first listens; once that one has stopped (or been killed), a start is quiet."""
    db = tmp_path / "one.db"
    async with SimServer(SimConfig(seed=1)) as sim:
        env = serve_env(sim, db)
        async with started(["serve"], env, tmp_path / "first.log") as first:
            async with started(["serve"], env, tmp_path / "second.log") as second:
                while_both = await callback_url(env, "both")
                second_log = await second.stop()
            # The second has stopped: new jobs are given the URL of the one still running.
            after_second = await callback_url(env, "after")
            first_log = await first.stop()
        async with started(["receiver"], env, tmp_path / "third.log") as third:
            await third.kill()
        async with started(["serve"], env, tmp_path / "fourth.log") as fourth:
            fourth_log = await fourth.stop()
    (warning,) = [
        json.loads(line) for line in second_log.splitlines() if "another_receiver_running" in line
    ]
    assert warning["other_urls"] == [first.url]
    assert warning["url"] == second.url
    assert while_both.startswith(second.url + "/hooks/")
    assert after_second.startswith(first.url + "/hooks/")
    assert "another_receiver_running" not in first_log
    assert "another_receiver_running" not in fourth_log
