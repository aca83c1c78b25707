"""The fetch pass stores each record as the JSON text its adapter carried: what lands in the
`results` table is, value for value, what the vendor served, in order, once each."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp

from enrichwatch.config import load_settings
from enrichwatch.models import VendorName
from enrichwatch.runtime import open_services
from enrichwatch.sim import SimConfig, SimServer
from enrichwatch.sim.reprompt import sample_places
from enrichwatch.submission import submit_batch
from enrichwatch.vendors.base import SubmitRequest
from reconciler import Reconciler
from tests.conftest import API_TOKEN
from tests.settling import settle
from tests.test_results_and_actions import stored

PLACES = 2_500
"""Three pages at the adapter's 1,000 a request, the last one short."""


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
            outcome = await submit_batch(
                services,
                VendorName.REPROMPT,
                SubmitRequest(rows=sample_places(PLACES), name="ingest"),
                public_url="http://127.0.0.1:9",
            )
            (job,) = outcome.submitted
            await settle(sim, services, Reconciler(services))
            done = await services.store.get_job(job.id)
            assert job.vendor_job_id is not None
            served = await served_jobs(sim, job.vendor_job_id)

    rows = stored(tmp_path / "ingest.db", job.id)
    assert done.results_state == "stored"
    assert done.results_count == len(rows) == len(served) == PLACES
    assert [row["position"] for row in rows] == list(range(PLACES))
    assert [row["data"] for row in rows] == served
    assert [(row["input_id"], row["status"]) for row in rows] == [
        (job["place_id"], job["status"]) for job in served
    ]
    assert {row["status"] for row in rows} == {"completed", "failed"}
