"""What the job page says of a job, over plain HTTP against the simulator: words that fit
the job's state, not only its fields."""

from __future__ import annotations

import aiohttp
import pytest

from enrichwatch.models import JobState, VendorName
from enrichwatch.submission import SubmissionError
from receiver.dashboard.auth import COOKIE
from tests.conftest import API_TOKEN
from tests.dashboard.conftest import submit

LOGGED_IN = {"Cookie": f"{COOKIE}={API_TOKEN}"}
VENDOR_ID = "<dt>Vendor's job id</dt><dd data-vendor-job-id>"


async def job_page(url: str, job_id: int) -> str:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{url}/jobs/{job_id}", headers=LOGGED_IN) as response,
    ):
        assert response.status == 200
        return await response.text()


async def test_a_job_that_failed_at_submit_never_had_a_vendor_id(world):
    """A part the vendor refused (a 503 to the submit) has no vendor id and never will:
    "not yet sent" read as if it still would be."""
    sim, services, url, _ = world
    sim.set_fault("influencers_club", server_errors=1, endpoint="POST /public/v1/enrichment/batch/")
    with pytest.raises(SubmissionError):
        await submit(services, url, VendorName.INFLUENCERS_CLUB)
    (failed,) = await services.store.list_jobs()
    assert (failed.state, failed.vendor_job_id) == (JobState.FAILED, None)
    sent = await submit(services, url, VendorName.INFLUENCERS_CLUB)

    page = await job_page(url, failed.id)
    assert f"{VENDOR_ID}none: the vendor never gave one</dd>" in page
    assert "not yet sent" not in page
    assert f"{VENDOR_ID}<code>{sent.vendor_job_id}</code></dd>" in await job_page(url, sent.id)
