"""An id a vendor never issues is refused when tracked, by the API and the CLI alike: tracked,
it would fail every status check until the job's maximum age, and nobody would be told it
was a typo."""

from __future__ import annotations

import os

import pytest

from tests.conftest import run_cli, snapshot


@pytest.mark.parametrize("vendor_job_id", ["abc", "17a", "-3", "1.5", "\u0661\u0662"])
async def test_the_api_refuses_a_brightlocal_batch_id_that_is_no_whole_number(
    settings, server, http, auth, vendor_job_id
):
    before = snapshot(settings.db)
    job = {"vendor": "brightlocal", "vendor_job_id": vendor_job_id}
    async with http.post(f"{server}/api/jobs", json=job, headers=auth) as response:
        assert response.status == 422
        error = (await response.json())["error"]
    (field,) = error["fields"]
    assert field["field"] == "vendor_job_id"
    assert "must be a BrightLocal batch id, a whole number" in field["message"]
    assert snapshot(settings.db) == before

    job["vendor_job_id"] = " 17 "
    async with http.post(f"{server}/api/jobs", json=job, headers=auth) as response:
        assert response.status == 201
        assert (await response.json())["vendor_job_id"] == "17"


async def test_the_cli_refuses_a_brightlocal_batch_id_that_is_no_whole_number(tmp_path):
    env = {**os.environ, "ENRICHWATCH_DB": str(tmp_path / "ids.db")}

    refused = await run_cli(env, "track", "brightlocal", "abc")

    assert refused.code == 2
    assert "must be a BrightLocal batch id, a whole number" in refused.err
    assert "VENDOR_JOB_ID" in refused.err
    assert not (tmp_path / "ids.db").exists()
    tracked = await run_cli(env, "track", "brightlocal", "17")
    assert tracked.code == 0, tracked.err
