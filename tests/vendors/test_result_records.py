"""Result records carry each record as JSON text, and a results page is parsed with the cyclic
collector paused: the text must be the vendor's value exactly, and the collector must always
come back on."""

from __future__ import annotations

import gc
import json
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from enrichwatch.errors import VendorProtocolError
from enrichwatch.models import JobState, VendorName
from enrichwatch.vendors.answers import collector_paused
from enrichwatch.vendors.base import ResultRecord, StatusSnapshot, SubmitRequest
from tests.vendors.conftest import Factory, collect, flat

AWKWARD: list[Any] = [
    {"id": 123456789012345678901234567890, "below": -18446744073709551617},
    {"name": "Café ☃ 😀", "lone": "\ud800", "nested": [[], {}, [1, 2.5, None, True, "x"]]},
    {"tenth": 0.1, "huge": 1.5e300, "tiny": 5e-324, "zero": 0, "one": 1.0},
    None,
    "text",
    [],
]


@pytest.mark.parametrize("value", AWKWARD)
def test_a_record_keeps_its_value_exactly(value):
    record = ResultRecord.of(3, "in-3", "completed", value)

    assert json.loads(record.data_json) == value
    assert record.data == value
    assert (record.position, record.input_id, record.status) == (3, "in-3", "completed")


def test_non_finite_numbers_are_stored_as_null_so_the_text_stays_json():
    def refuse(word: str) -> None:
        raise ValueError(f"not JSON: {word}")

    record = ResultRecord.of(0, None, None, {"nan": math.nan, "inf": -math.inf, "n": 1})

    assert json.loads(record.data_json, parse_constant=refuse) == {
        "nan": None,
        "inf": None,
        "n": 1,
    }


def test_the_collector_is_paused_only_inside_the_block():
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()

    with pytest.raises(VendorProtocolError), collector_paused():
        raise VendorProtocolError(VendorName.REPROMPT, "bad page")
    assert gc.isenabled()


def test_a_collector_already_off_stays_off():
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


# -- Reprompt pages as a server might really write them ----------------------------------------

ORG = "acme"
# Spaced, with escapes, big integers and a number for a place id; the second page holds a lone
# surrogate escape, which pydantic-core refuses, so it takes the `json.loads` road.
PAGES = {
    0: b"""{ "jobs" : [
        {"place_id": "p0", "status": "completed",
         "outputs": {"id": 123456789012345678901234567890, "name": "Caf\\u00e9 \\ud83d\\ude00"}},
        {"place_id": 7, "status": null, "outputs": {}, "score": 0.1, "zero": -0.0}
    ], "total": 4 }""",
    2: b"""{"jobs":[{"place_id":"p2","status":"failed","outputs":{"lone":"\\ud800"}},
        {"place_id":"p3","status":"completed","outputs":{"list":[1,2.5,null,true,"x"]}}],
        "total":4}""",
}


class Pages:
    """A stand-in Reprompt results endpoint on a real socket: `bodies[offset]` is the body it
    answers for that offset."""

    def __init__(self, bodies: dict[int, bytes]) -> None:
        self.bodies = bodies
        self.url = ""

    async def jobs(self, request: web.Request) -> web.Response:
        body = self.bodies[int(request.query["offset"])]
        return web.Response(body=body, content_type="application/json")


@pytest_asyncio.fixture
async def pages() -> AsyncIterator[Pages]:
    served = Pages(PAGES)
    app = web.Application()
    app.router.add_get("/v1/{org}/place_enrichment/jobs", served.jobs)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    served.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield served
    finally:
        await runner.cleanup()


def finished(batch_id: str = "b1") -> StatusSnapshot:
    return StatusSnapshot(
        vendor_job_id=batch_id,
        state=JobState.COMPLETED,
        vendor_status="completed",
        results_available=True,
    )


async def test_reprompt_records_are_the_jobs_served_value_for_value(make: Factory, pages):
    reprompt = make(VendorName.REPROMPT, base_url=pages.url, org=ORG)
    reprompt.results_page_size = 2

    records = flat(await collect(reprompt, finished()))

    served = [job for offset in sorted(PAGES) for job in json.loads(PAGES[offset])["jobs"]]
    assert [r.data for r in records] == served
    assert [r.position for r in records] == [0, 1, 2, 3]
    assert [r.input_id for r in records] == ["p0", "7", "p2", "p3"]
    assert [r.status for r in records] == ["completed", None, "failed", "completed"]
    assert gc.isenabled()


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"jobs": {"p0": {}}, "total": 1}', "no jobs array"),
        (b"[1, 2]", "no jobs array"),
        (b'{"jobs": [{"place_id": "p0"}, 1], "total": 2}', "not an object"),
        (b'{"jobs": [{"place_id": "p0"}', "not JSON"),
    ],
)
async def test_a_bad_reprompt_page_is_a_protocol_error(make: Factory, pages, body, says):
    pages.bodies = {0: body}
    reprompt = make(VendorName.REPROMPT, base_url=pages.url, org=ORG)

    with pytest.raises(VendorProtocolError, match=says):
        await collect(reprompt, finished())
    assert gc.isenabled()


async def test_the_simulator_s_reprompt_jobs_arrive_value_for_value(make: Factory, sim, session):
    sim.config.reprompt.org = ORG
    reprompt = make(VendorName.REPROMPT, org=ORG)
    reprompt.results_page_size = 40
    rows = [
        {
            "place_id": f"s{n}",
            "name": f"Shop {n}",
            "full_address": f"{n} High St",
            "latitude": "51.5",
            "longitude": "" if n % 3 else "-0.12",
        }
        for n in range(100)
    ]
    [job] = await reprompt.submit(SubmitRequest(rows=rows))
    await sim.advance(48 * 3600)
    snapshot = await reprompt.status(job.vendor_job_id)

    records = flat(await collect(reprompt, snapshot))

    url = f"{sim.base_urls['reprompt']}/v1/{ORG}/place_enrichment/jobs"
    params = {"batchId": job.vendor_job_id, "limit": "1000", "offset": "0"}
    headers = {"Authorization": f"Bearer {sim.api_keys['reprompt']}"}
    async with session.get(url, params=params, headers=headers) as response:
        served = json.loads(await response.read())["jobs"]
    assert len(served) == 100
    assert [r.data for r in records] == served
    assert [json.loads(r.data_json) for r in records] == served
