"""What real vendors can send that the documented happy path does not show: odd rate-limit
headers, counts as strings or beyond their totals, bodies of the wrong shape, one job with a
status nobody documented, results not ready a moment after the job is, storage redirects,
and a request budget that must neither burst past the vendor's limit nor starve.

Each odd answer comes from a small aiohttp server on a loopback socket (or the simulator),
so the adapters read it through their real HTTP layer."""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from enrichwatch.config import Settings, load_settings
from enrichwatch.errors import VendorProtocolError, VendorTransientError, VendorUntrustedUrlError
from enrichwatch.models import JobState, VendorName
from enrichwatch.retry_after import MAX_RETRY_AFTER
from enrichwatch.runtime import Services, open_services
from enrichwatch.sim import SimConfig, SimServer
from enrichwatch.vendors import adapter_class
from enrichwatch.vendors.base import StatusSnapshot, SubmitRequest, VendorAdapter
from enrichwatch.vendors.crustdata import CrustdataAdapter
from tests.vendors.conftest import SETTINGS, flat

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CRUST_STATUS = "/batch/{id}"
IC_STATUS = "/public/v1/enrichment/batch/{id}/status/"
IC_RESULTS = "/public/v1/enrichment/batch/{id}/"
ECORE_LIST = "/api/v1/enrichment/status/"
ECORE_RESULTS = "/api/v1/enrichment/result/{id}/"
REPROMPT_BATCHES = "/v1/{org}/place_enrichment/batches"


@asynccontextmanager
async def odd_vendor(routes: Mapping[tuple[str, str], Handler]) -> AsyncIterator[str]:
    """A vendor that answers exactly as `routes` say, on a real loopback socket."""
    app = web.Application()
    for (method, path), handler in routes.items():
        app.router.add_route(method, path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def answer(body: Any = None, status: int = 200, text: str | None = None, **headers: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        payload = json.dumps(body) if text is None else text
        return web.Response(status=status, text=payload, headers=headers)

    return handle


def adapter(session: aiohttp.ClientSession, vendor: VendorName, url: str, **settings: Any) -> Any:
    built: VendorAdapter = adapter_class(vendor)(
        SETTINGS[vendor](base_url=url, api_key="key", **settings), session
    )
    return built


# --- Retry-After and x-ratelimit-* --------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["1e12", "inf", "Infinity", "NaN", "Fri, 01 Jan 2100 00:00:00 GMT", "-5", "soon", ""],
)
async def test_retry_after_that_is_garbage_huge_or_negative_stays_a_sane_delay(session, value):
    routes = {("GET", CRUST_STATUS): answer({"detail": "slow down"}, 429, **{"Retry-After": value})}
    async with odd_vendor(routes) as url:
        with pytest.raises(VendorTransientError) as caught:
            await adapter(session, VendorName.CRUSTDATA, url).status("b-1")

    delay = caught.value.retry_after
    assert delay is None or (math.isfinite(delay) and 0 <= delay <= MAX_RETRY_AFTER)


async def test_x_ratelimit_reset_sent_as_an_epoch_time_is_read_as_a_moment(session):
    reset_at = str(int(time.time()) + 30)
    headers = {
        "x-ratelimit-limit": "30",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": reset_at,
    }
    routes = {("GET", CRUST_STATUS): answer({"error": "rate limited"}, 429, **headers)}
    async with odd_vendor(routes) as url:
        crust = adapter(session, VendorName.CRUSTDATA, url)
        with pytest.raises(VendorTransientError) as caught:
            await crust.status("b-1")

    assert caught.value.retry_after is not None
    assert 20 <= caught.value.retry_after <= 31
    assert crust.rate_limit.reset is not None
    assert 20 <= crust.rate_limit.reset <= 31


@pytest.mark.parametrize("value", ["inf", "NaN", "-inf", "1e400", "lots"])
async def test_garbage_rate_limit_headers_do_not_break_a_good_answer(session, value):
    body = {"batch_id": "b-1", "status": "processing", "entities_requested": 4}
    headers = {
        "x-ratelimit-limit": value,
        "x-ratelimit-remaining": value,
        "x-ratelimit-reset": value,
    }
    async with odd_vendor({("GET", CRUST_STATUS): answer(body, **headers)}) as url:
        crust = adapter(session, VendorName.CRUSTDATA, url)
        snapshot = await crust.status("b-1")

    assert snapshot.state is JobState.RUNNING
    info = crust.rate_limit
    assert info is None or (info.limit, info.remaining, info.reset) == (None, None, None)


# --- counts as strings, fractions, null, beyond their totals -------------------------------


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({"total_rows": "10", "processed_rows": "7", "failed_count": "1"}, (7, 1, 10)),
        ({"total_rows": 10, "processed_rows": 7.0, "failed_count": None}, (7, None, 10)),
        ({"total_rows": 10, "processed_rows": "12.5", "failed_count": "n/a"}, (None, None, 10)),
        ({"total_rows": 10, "processed_rows": 15, "failed_count": 20}, (10, 10, 10)),
        ({"total_rows": -3, "processed_rows": -1, "failed_count": True}, (None, None, None)),
        (
            {"total_rows": {"n": 1}, "processed_rows": [1], "failed_count": 1e400},
            (None, None, None),
        ),
    ],
)
async def test_influencers_club_counts_of_any_shape_make_a_clean_snapshot(
    session, counts, expected
):
    body = {"batch_id": "b-1", "status": "processing", **counts, "credits_used": "NaN"}
    async with odd_vendor({("GET", IC_STATUS): answer(body)}) as url:
        snapshot = await adapter(session, VendorName.INFLUENCERS_CLUB, url).status("b-1")

    assert (snapshot.done, snapshot.failed, snapshot.total) == expected
    assert snapshot.credits_used is None


@pytest.mark.parametrize(
    ("vendor", "route", "body"),
    [
        (
            VendorName.INFLUENCERS_CLUB,
            IC_STATUS,
            {
                "batch_id": "b-1",
                "status": "paused_insufficient_credits",
                "status_message": {"code": "credits", "needed": 12},
            },
        ),
        (
            VendorName.CRUSTDATA,
            CRUST_STATUS,
            {"batch_id": "b-1", "status": "failed", "error_message": ["quota", 3]},
        ),
        (
            VendorName.ECORE,
            "/api/v1/enrichment/status/{id}/",
            {"job_id": "b-1", "status": "failed", "error": {"detail": "upload failed"}},
        ),
    ],
)
async def test_an_error_message_that_is_not_text_still_makes_a_snapshot(
    session, vendor, route, body
):
    async with odd_vendor({("GET", route): answer(body)}) as url:
        snapshot = await adapter(session, vendor, url).status("b-1")

    assert isinstance(snapshot.error, str)
    assert snapshot.error


async def test_crustdata_counts_as_strings_and_past_the_total_are_read_and_bounded(session):
    body = {
        "batch_id": "b-1",
        "status": "processing",
        "entities_requested": "10",
        "result_count": "12",
    }
    async with odd_vendor({("GET", CRUST_STATUS): answer(body)}) as url:
        snapshot = await adapter(session, VendorName.CRUSTDATA, url).status("b-1")

    assert (snapshot.done, snapshot.total) == (10, 10)


async def test_a_null_id_in_a_status_body_keeps_the_id_asked_for(session):
    body = {"batch_id": None, "status": "queued", "total_rows": 3}
    async with odd_vendor({("GET", IC_STATUS): answer(body)}) as url:
        snapshot = await adapter(session, VendorName.INFLUENCERS_CLUB, url).status("b-1")

    assert snapshot.vendor_job_id == "b-1"


# --- bodies of the wrong shape on submit ---------------------------------------------------


@pytest.mark.parametrize("reply", ["null", "[]", '"ok"', '{"status": "pending"}', ""])
async def test_a_crustdata_submit_answered_without_a_batch_id_is_settled_from_the_list(
    session, reply
):
    routes = {
        ("POST", "/batch/person/enrich"): answer(text=reply),
        ("GET", "/batch"): answer({"jobs": [], "next_cursor": None, "has_more": False}),
    }
    request = SubmitRequest(rows=[{"business_emails": "a@example.com"}])
    async with odd_vendor(routes) as url:
        with pytest.raises(VendorTransientError) as caught:
            await adapter(session, VendorName.CRUSTDATA, url).submit(request)

    assert "no job was created" in caught.value.message


@pytest.mark.parametrize("reply", ["[]", '"ok"', "", "<html>ok</html>"])
async def test_a_reprompt_submit_answered_without_an_object_reads_its_batch_back(session, reply):
    batch = {"id": "our-batch", "batch_name": "x", "status": "pending", "jobs": {"pending": ["p1"]}}
    routes = {
        ("POST", REPROMPT_BATCHES): answer(text=reply),
        ("GET", REPROMPT_BATCHES + "/{id}"): answer(batch),
    }
    request = SubmitRequest(
        rows=[
            {
                "place_id": "p1",
                "name": "A",
                "full_address": "1 St",
                "latitude": "1",
                "longitude": "2",
            }
        ],
        options={"batch_id": "our-batch"},
    )
    async with odd_vendor(routes) as url:
        (job,) = await adapter(session, VendorName.REPROMPT, url, org="acme").submit(request)

    assert job.vendor_job_id == "our-batch"


async def test_an_ecore_submit_answered_without_a_job_id_is_settled_from_the_list(session):
    now = datetime.now(UTC).isoformat()
    routes = {
        ("POST", "/api/v1/enrichment/submit/"): answer({"detail": "accepted"}),
        ("GET", ECORE_LIST): answer([{"job_id": "j-7", "status": "queued", "submitted_at": now}]),
    }
    request = SubmitRequest(rows=[{"email": "a@example.com"}])
    async with odd_vendor(routes) as url:
        (job,) = await adapter(session, VendorName.ECORE, url).submit(request)

    assert job.vendor_job_id == "j-7"


# --- one odd job in a list ------------------------------------------------------------------


ODD_LISTS = {
    VendorName.ECORE: (
        ECORE_LIST,
        [{"job_id": "good", "status": "completed"}, {"job_id": "odd", "status": "archived"}],
        JobState.COMPLETED,
    ),
    VendorName.CRUSTDATA: (
        "/batch",
        {
            "jobs": [
                {"batch_id": "good", "status": "processing", "entities_requested": 2},
                {"batch_id": "odd", "status": "cancelled"},
            ],
            "next_cursor": None,
            "has_more": False,
        },
        JobState.RUNNING,
    ),
    VendorName.REPROMPT: (
        REPROMPT_BATCHES,
        {
            "batches": [
                {"id": "good", "status": "in_progress", "status_counts": {"completed": 1}},
                {"id": "odd", "status": "archived"},
            ],
            "total": 2,
        },
        JobState.RUNNING,
    ),
}
"""Per vendor with a list endpoint: its route, a list with one job in an undocumented status,
and the state of the other."""


@pytest.mark.parametrize("vendor", list(ODD_LISTS))
async def test_one_job_with_an_undocumented_status_does_not_fail_the_others(session, vendor):
    route, body, good_state = ODD_LISTS[vendor]
    extra = {"org": "acme"} if vendor is VendorName.REPROMPT else {}
    async with odd_vendor({("GET", route): answer(body)}) as url:
        found = await adapter(session, vendor, url, **extra).list_status(["good", "odd"])

    assert list(found) == ["good"]
    assert found["good"].state is good_state


# --- results not ready a moment after the job is ----------------------------------------------


def snapshot_of(state: JobState, vendor_status: str) -> StatusSnapshot:
    return StatusSnapshot(
        vendor_job_id="b-1", state=state, vendor_status=vendor_status, results_available=True
    )


async def test_influencers_club_results_file_not_generated_yet_is_transient(session):
    not_yet = answer({"detail": "No results file available."}, 400)
    async with odd_vendor({("GET", IC_RESULTS): not_yet}) as url:
        ic = adapter(session, VendorName.INFLUENCERS_CLUB, url)
        finished = snapshot_of(JobState.COMPLETED, "finished")
        with pytest.raises(VendorTransientError):
            flat([page async for page in ic.results(finished)])


@pytest.mark.parametrize(
    ("status", "body"), [(404, {"detail": "Not found."}), (400, {"error": "Results not ready."})]
)
async def test_ecore_results_not_stored_yet_are_transient(session, status, body):
    async with odd_vendor({("GET", ECORE_RESULTS): answer(body, status)}) as url:
        ecore = adapter(session, VendorName.ECORE, url)
        completed = snapshot_of(JobState.COMPLETED, "completed")
        with pytest.raises(VendorTransientError):
            flat([page async for page in ecore.results(completed)])


# --- storage redirects ----------------------------------------------------------------------


def crust_snapshot(links: list[str]) -> StatusSnapshot:
    raw = {"batch_id": "b-1", "status": "completed", "result_count": 2, "download_urls": links}
    return StatusSnapshot(
        vendor_job_id="b-1",
        state=JobState.COMPLETED,
        vendor_status="completed",
        results_available=True,
        raw=raw,
    )


async def test_a_storage_redirect_within_the_allowed_hosts_is_followed(session):
    lines = b"".join(
        json.dumps({"original_identifier": f"id-{i}"}).encode() + b"\n" for i in (1, 2)
    )
    seen: list[str | None] = []

    async def moved(request: web.Request) -> web.StreamResponse:
        raise web.HTTPTemporaryRedirect("/eu/part-000.jsonl.gz")

    async def part(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Authorization"))
        return web.Response(body=gzip.compress(lines), content_type="application/gzip")

    routes = {("GET", "/us/part-000.jsonl.gz"): moved, ("GET", "/eu/part-000.jsonl.gz"): part}
    async with odd_vendor(routes) as url:
        host = url.removeprefix("http://")
        crust = adapter(session, VendorName.CRUSTDATA, url, download_hosts=[host])
        records = flat(
            [page async for page in crust.results(crust_snapshot([f"{url}/us/part-000.jsonl.gz"]))]
        )

    assert [record.input_id for record in records] == ["id-1", "id-2"]
    assert seen == [None]


async def test_a_storage_redirect_to_another_host_is_refused(session):
    async def away(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("http://collector.invalid/steal")

    async with odd_vendor({("GET", "/us/part-000.jsonl.gz"): away}) as url:
        host = url.removeprefix("http://")
        crust = adapter(session, VendorName.CRUSTDATA, url, download_hosts=[host])
        with pytest.raises(VendorUntrustedUrlError):
            flat(
                [
                    page
                    async for page in crust.results(crust_snapshot([f"{url}/us/part-000.jsonl.gz"]))
                ]
            )


# --- the request budget ----------------------------------------------------------------------


async def test_a_check_deferred_by_the_budget_is_made_when_the_budget_allows(settings: Settings):
    """A job deferred for want of budget must be affordable at the time it was deferred to;
    re-reserving a token on every deferral would push it back for ever."""
    from reconciler.checks import _affordable
    from reconciler.state import Reconciler

    clock = [1_000_000.0]
    async with open_services(settings, clock=lambda: clock[0]) as services:
        rc = Reconciler(services)
        vendor = VendorName.CRUSTDATA
        while _affordable(rc, vendor, []):
            pass
        for _ in range(5):
            ((_, ready),) = rc.deferred[-1:]
            clock[0] = ready
            if _affordable(rc, vendor, []):
                break
        else:
            pytest.fail("the deferred check was deferred again at every time it was due")


async def test_adapters_built_for_one_account_share_one_request_budget(settings: Settings):
    async with open_services(settings) as services:
        first = services.adapter(VendorName.CRUSTDATA)
        second = services.adapter(VendorName.CRUSTDATA)
        other = services.adapter(VendorName.INFLUENCERS_CLUB)

        assert first.budget is not None
        assert first.budget is second.budget
        assert other.budget is not None
        assert other.budget is not first.budget
        assert (first.budget.limit, other.budget.limit) == (30, 300)


async def test_calls_from_every_path_stay_within_the_documented_rate(tmp_path: Path):
    """Submits, status checks and list pages, from several adapters of one account, together
    never exceed the vendor's limit: a call past it is not sent, and says when it may be."""
    async with SimServer(SimConfig(seed=5, start_time=time.time())) as sim:
        limit = CrustdataAdapter.limits.requests_per_minute
        assert limit is not None
        sim.config.crustdata.rpm = int(limit)
        overrides: dict[str, Any] = sim.vendor_settings()
        settings = load_settings(db=tmp_path / "b.db", **overrides)
        async with open_services(settings, clock=sim.clock.now) as services:
            submitted = await services.adapter(VendorName.CRUSTDATA).submit(
                SubmitRequest(rows=[{"business_emails": "a@example.com"}])
            )
            job_id = submitted[0].vendor_job_id
            refused: list[VendorTransientError] = []

            async def reads(n: int) -> None:
                adapter = services.adapter(VendorName.CRUSTDATA)
                for _ in range(n):
                    try:
                        await adapter.status(job_id)
                        await adapter.list_status([job_id, "other"])
                    except VendorTransientError as exc:
                        refused.append(exc)

            # 1 submit + up to 40 reads: the window holds 30.
            await asyncio.gather(reads(10), reads(10))
            assert _crustdata_calls(sim) == int(limit)
            assert sim.stats.rate_limit_violations("crustdata") == []
            assert refused
            assert all(exc.status is None and exc.retry_after for exc in refused)
            assert all(0 < (exc.retry_after or 0) <= 62 for exc in refused)

            sim.clock.advance(max(exc.retry_after or 0 for exc in refused))
            assert (await services.adapter(VendorName.CRUSTDATA).status(job_id)).vendor_job_id
        assert sim.stats.rate_limit_violations("crustdata") == []


@asynccontextmanager
async def two_processes_and_a_crustdata_job(
    tmp_path: Path,
) -> AsyncIterator[tuple[SimServer, Services, Services, str]]:
    """Two services on one database file, as two processes would open them, and a Crustdata
    job submitted through the first; the simulator holds Crustdata to its documented rate."""
    async with SimServer(SimConfig(seed=5, start_time=time.time())) as sim:
        limit = CrustdataAdapter.limits.requests_per_minute
        assert limit is not None
        sim.config.crustdata.rpm = int(limit)
        settings = load_settings(db=tmp_path / "b.db", **sim.vendor_settings())
        async with (
            open_services(settings, clock=sim.clock.now) as one,
            open_services(settings, clock=sim.clock.now) as two,
        ):
            submitted = await one.adapter(VendorName.CRUSTDATA).submit(
                SubmitRequest(rows=[{"business_emails": "a@example.com"}])
            )
            yield sim, one, two, submitted[0].vendor_job_id


async def test_processes_on_one_database_draw_on_one_request_budget(tmp_path: Path):
    """A separate receiver, a CLI action and the reconciler each open their own services on
    the same database file; the vendor counts their calls together, and so must they."""
    async with two_processes_and_a_crustdata_job(tmp_path) as (sim, one, two, job_id):
        limit = CrustdataAdapter.limits.requests_per_minute
        assert limit is not None
        refused: list[VendorTransientError] = []

        async def reads(services: Services, n: int) -> None:
            adapter = services.adapter(VendorName.CRUSTDATA)
            for _ in range(n):
                try:
                    await adapter.status(job_id)
                except VendorTransientError as exc:
                    refused.append(exc)

        # 1 submit + 40 reads from two processes: the window holds 30.
        await asyncio.gather(reads(one, 20), reads(two, 20))
        assert _crustdata_calls(sim) == int(limit)
        assert sim.stats.rate_limit_violations("crustdata") == []
        assert len(refused) == 40 + 1 - int(limit)

        # The window is named by a digest: the key itself is not in the database.
        accounts = await one.store._fetchall("SELECT DISTINCT account FROM request_sends", ())
        key = one.settings.crustdata.api_key
        assert key is not None
        assert [row["account"].startswith("crustdata:") for row in accounts] == [True]
        assert key.get_secret_value() not in (tmp_path / "b.db").read_bytes().decode("latin-1")


async def test_a_429_heard_by_one_process_pauses_the_account_in_every_process(tmp_path: Path):
    async with two_processes_and_a_crustdata_job(tmp_path) as (sim, one, two, job_id):
        sim.faults.set("crustdata", rate_limit=1, retry_after=40)
        with pytest.raises(VendorTransientError):
            await one.adapter(VendorName.CRUSTDATA).status(job_id)
        sent = _crustdata_calls(sim)

        with pytest.raises(VendorTransientError) as paused:
            await two.adapter(VendorName.CRUSTDATA).status(job_id)
        assert _crustdata_calls(sim) == sent
        assert 35 <= (paused.value.retry_after or 0) <= 40

        sim.clock.advance(41)
        assert (await two.adapter(VendorName.CRUSTDATA).status(job_id)).vendor_job_id


def _crustdata_calls(sim: SimServer) -> int:
    return sum(n for (vendor, _), n in sim.stats.requests.items() if vendor == "crustdata")


# --- an HTML page or nothing where JSON was due ---------------------------------------------

STATUS_ROUTES = {
    VendorName.CRUSTDATA: CRUST_STATUS,
    VendorName.INFLUENCERS_CLUB: IC_STATUS,
    VendorName.REPROMPT: REPROMPT_BATCHES + "/{id}",
    VendorName.BRIGHTLOCAL: "/v4/batch",
    VendorName.ECORE: "/api/v1/enrichment/status/{id}/",
}


@pytest.mark.parametrize("vendor", list(VendorName))
@pytest.mark.parametrize("reply", ["<html><body>Down for maintenance</body></html>", ""])
async def test_a_status_answered_with_an_html_page_or_nothing_is_transient(session, vendor, reply):
    async with odd_vendor({("GET", STATUS_ROUTES[vendor]): answer(text=reply)}) as url:
        extra = {"org": "acme"} if vendor is VendorName.REPROMPT else {}
        with pytest.raises(VendorTransientError):
            await adapter(session, vendor, url, **extra).status("17")


@pytest.mark.parametrize("reply", ["<html>502 Bad Gateway</html>", ""])
async def test_a_results_page_answered_with_an_html_page_or_nothing_is_transient(session, reply):
    routes = {
        ("GET", ECORE_RESULTS): answer(text=reply),
        ("GET", "/v1/{org}/place_enrichment/jobs"): answer(text=reply),
    }
    async with odd_vendor(routes) as url:
        ecore = adapter(session, VendorName.ECORE, url)
        reprompt = adapter(session, VendorName.REPROMPT, url, org="acme")
        for client in (ecore, reprompt):
            done = snapshot_of(JobState.COMPLETED, "completed")
            with pytest.raises(VendorTransientError):
                flat([page async for page in client.results(done)])


# --- status words the docs use that the adapter did not know ----------------------------------


@pytest.mark.parametrize(
    ("word", "state"), [("running", JobState.RUNNING), ("completed", JobState.COMPLETED)]
)
async def test_influencers_club_status_words_from_its_endpoint_summary_are_understood(
    session, word, state
):
    """The status endpoint's summary lists "queued/running/completed/failed" beside the enum
    the field reference gives; a batch reported in those words must still move on."""
    body = {"batch_id": "b-1", "status": word, "total_rows": 2, "processed_rows": 2}
    async with odd_vendor({("GET", IC_STATUS): answer(body)}) as url:
        snapshot = await adapter(session, VendorName.INFLUENCERS_CLUB, url).status("b-1")

    assert snapshot.state is state
    assert snapshot.results_available is (state is JobState.COMPLETED)


@pytest.mark.parametrize("vendor", list(VendorName))
async def test_an_undocumented_status_is_a_protocol_error_not_a_crash(session, vendor):
    """Nothing guesses what an unknown status means: the check fails cleanly (and the job
    keeps its state) until someone teaches the adapter the word."""
    ids = {"batch_id": "17", "job_id": "17", "id": "17"}
    body = {**ids, "status": "Archived-Unknown", "success": True}
    async with odd_vendor({("GET", STATUS_ROUTES[vendor]): answer(body)}) as url:
        extra = {"org": "acme"} if vendor is VendorName.REPROMPT else {}
        with pytest.raises(VendorProtocolError, match="unknown status"):
            await adapter(session, vendor, url, **extra).status("17")


@pytest.mark.parametrize("cut", [b"", b"\x1f"])
async def test_a_result_part_cut_before_its_gzip_frame_is_transient_not_empty(session, cut):
    """An empty body (or half the magic) for a part is a cut download: reading it as a part
    without records would leave a silent gap in the results."""
    first = gzip.compress(json.dumps({"original_identifier": "id-1"}).encode() + b"\n")

    async def part(request: web.Request) -> web.StreamResponse:
        body = first if request.match_info["n"] == "000" else cut
        return web.Response(body=body, content_type="application/gzip")

    async with odd_vendor({("GET", "/out/part-{n}.jsonl.gz"): part}) as url:
        host = url.removeprefix("http://")
        crust = adapter(session, VendorName.CRUSTDATA, url, download_hosts=[host])
        links = [f"{url}/out/part-000.jsonl.gz", f"{url}/out/part-001.jsonl.gz"]
        with pytest.raises(VendorTransientError, match="ended"):
            flat([page async for page in crust.results(crust_snapshot(links))])
