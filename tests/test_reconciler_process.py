"""`enrichwatch receiver` and `enrichwatch reconciler` as two real processes on one database:
a job tracked through the receiver is checked by the reconciler, and a callback that reaches
the receiver gets it checked again within a few seconds."""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from enrichwatch.models import VendorName
from enrichwatch.sim import SimConfig, SimServer
from tests.conftest import started

TOKEN = "two-process-token-000000"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
YEAR = 365 * 24 * 3600.0


def env_for(sim: SimServer, db: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "ENRICHWATCH_DB": str(db),
        "ENRICHWATCH_PORT": "0",
        "ENRICHWATCH_API_TOKEN": TOKEN,
        "ENRICHWATCH_LOG_LEVEL": "warning",
        "ENRICHWATCH_WORK_INTERVAL": "0.3",
        "ENRICHWATCH_CRUSTDATA__DOWNLOAD_HOSTS": json.dumps([sim.storage.host]),
    }
    for vendor in VendorName:
        prefix = f"ENRICHWATCH_{vendor.value.upper()}__"
        env[prefix + "BASE_URL"] = sim.base_urls[vendor.value]
        env[prefix + "API_KEY"] = sim.api_keys[vendor.value]
    return env


async def job_when(
    http: aiohttp.ClientSession, url: str, done: Any, timeout: float
) -> dict[str, Any]:
    """The job as the API shows it, once `done(job)` holds (waits up to `timeout` s)."""
    deadline = time.monotonic() + timeout
    while True:
        async with http.get(url, headers=AUTH) as response:
            assert response.status == 200
            job: dict[str, Any] = await response.json()
        if done(job):
            return job
        assert time.monotonic() < deadline, f"the job never got there: {job}"
        await asyncio.sleep(0.05)


def seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def test_a_receiver_and_a_reconciler_process_share_the_database(tmp_path):
    config = SimConfig(seed=21, start_time=time.time())
    config.crustdata.profile.record_failure_rate = 0.0
    async with SimServer(config) as sim, aiohttp.ClientSession() as http:
        at_vendor = sim.crustdata.add_job(60)
        env = env_for(sim, tmp_path / "shared.db")
        async with (
            started(["receiver"], env, tmp_path / "receiver.log") as receiver,
            started(["reconciler"], env, tmp_path / "reconciler.log") as reconciler,
        ):
            url = receiver.url
            async with http.post(
                f"{url}/api/jobs",
                json={"vendor": "crustdata", "vendor_job_id": at_vendor.batch_id},
                headers=AUTH,
            ) as response:
                assert response.status == 201, await response.text()
                tracked = await response.json()
            job_url = f"{url}/api/jobs/{tracked['id']}"
            # The reconciler process finds the job through the database and asks the vendor.
            running = await job_when(http, job_url, lambda j: j["last_checked_at"], 20)
            assert running["state"] in ("queued", "running")
            assert running["results"]["state"] is None
            planned = seconds(running["next_check_at"])

            await sim.advance(YEAR)  # the vendor finishes the job
            async with http.post(
                tracked["callback_url"], json={"batch_id": at_vendor.batch_id}
            ) as response:
                assert response.status == 200
            called_back = time.time()
            stored = await job_when(http, job_url, lambda j: j["results"]["state"] == "stored", 20)
            assert reconciler.process.returncode is None
            await reconciler.stop()
            await receiver.stop()

    assert stored["state"] == "completed"
    assert stored["callbacks_received"] == 1
    assert stored["results"]["count"] == 60
    # The callback, not the plan, brought the check: it came before the planned time.
    assert seconds(stored["last_checked_at"]) < planned
    assert seconds(stored["last_checked_at"]) >= called_back - 1
