"""A resumed Crustdata read starts exactly at its position wherever that falls: inside a part,
on a part's first or last line, or past the end."""

from __future__ import annotations

import pytest

from enrichwatch.vendors.base import SubmitRequest
from enrichwatch.vendors.crustdata import CrustdataAdapter
from tests.vendors.conftest import collect, flat
from tests.vendors.test_crustdata import crust, profiles  # noqa: F401 (a fixture)


@pytest.mark.parametrize("start", [1, 29, 30, 31, 59, 60, 79, 80, 81])
async def test_a_resumed_read_starts_at_its_position(crust: CrustdataAdapter, sim, start):  # noqa: F811
    sim.config.crustdata.part_size = 30
    sim.config.crustdata.profile.record_failure_rate = 0.0
    [job] = await crust.submit(SubmitRequest(rows=profiles(80)))
    await sim.advance(3600)
    snapshot = await crust.status(job.vendor_job_id)
    everything = flat(await collect(crust, snapshot))
    assert len(snapshot.raw["download_urls"]) == 3

    resumed = flat(await collect(crust, snapshot, start=start))

    assert resumed == everything[start:]
    assert [record.position for record in resumed] == list(range(start, 80))
