"""The fetch pass stores each record as the JSON text its adapter carried: what lands in the
`results` table is, value for value, what the vendor served, in order, once each."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

import aiohttp

from enrichwatch.config import load_settings
from enrichwatch.models import VendorName
from enrichwatch.runtime import open_services
from enrichwatch.sim import SimConfig, SimServer
from enrichwatch.submission import submit_batch
from enrichwatch.vendors.base import SubmitRequest
from reconciler import Reconciler
from tests.conftest import API_TOKEN
from tests.settling import settle

PLACES = 2_500
"""Three pages at the adapter's 1,000 a request, the last one short."""


def stored_rows(db, job_id: int) -> list[tuple[int, str | None, str | None, str]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT position, input_id, status, data FROM results WHERE job_id = ? "
            "ORDER BY position",
            (job_id,),
        ).fetchall()
    finally:
        conn.close()


async def served_jobs(sim: SimServer, batch_id: str) -> list[dict[str, Any]]:
    """The batch's result jobs as the simulator serves them, read past enrichwatch."""
    url = f"{sim.base_urls['reprompt']}/v1/default/place_enrichment/jobs"
    headers = {"Authorization": f"Bearer {sim.api_keys['reprompt']}"}
    jobs: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session:
        while True:
            params = {"batchId": batch_id, "limit": "1000", "offset": str(len(jobs))}
            async with session.get(url, params=params, headers=headers) as response:
                page = json.loads(await response.read())["jobs"]
            if not page:
                return jobs
            jobs += page


async def test_a_reprompt_batch_is_stored_exactly_as_served(tmp_path):
    config = SimConfig(seed=23, start_time=time.time())
    config.reprompt.profile.record_failure_rate = 0.1
    async with SimServer(config) as sim:
        settings = load_settings(
            db=tmp_path / "ingest.db", api_token=API_TOKEN, **sim.vendor_settings()
        )
        async with open_services(settings, clock=sim.clock.now) as services:
            rows = [
                {
                    "place_id": f"place-{n}",
                    "name": f"Store {n}",
                    "full_address": f"{n} Main St, Springfield",
                    "latitude": "40.7",
                    "longitude": "-73.9",
                }
                for n in range(PLACES)
            ]
            outcome = await submit_batch(
                services,
                VendorName.REPROMPT,
                SubmitRequest(rows=rows, name="ingest"),
                public_url="http://127.0.0.1:9",
            )
            (job,) = outcome.submitted
            await settle(sim, services, Reconciler(services))
            done = await services.store.get_job(job.id)
            assert job.vendor_job_id is not None
            served = await served_jobs(sim, job.vendor_job_id)

    stored = stored_rows(tmp_path / "ingest.db", job.id)
    assert done.results_state == "stored"
    assert done.results_count == len(stored) == len(served) == PLACES
    assert [position for position, *_ in stored] == list(range(PLACES))
    assert [json.loads(data) for *_, data in stored] == served
    assert [(input_id, status) for _, input_id, status, _ in stored] == [
        (job["place_id"], job["status"]) for job in served
    ]
    assert {status for _, _, status, _ in stored} == {"completed", "failed"}
