"""`/metrics` counts every vendor call, and each failed one by what came back, and reads how
many jobs are open and failing their checks from the database: the alerts an operator needs
when a key is revoked or a vendor is down. Against the simulator over real
HTTP, on its manual clock."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from pydantic import AnyHttpUrl, SecretStr

from enrichwatch.models import VendorName
from reconciler.checks import check_job_now
from tests.test_results_and_actions import world  # noqa: F401 (a fixture)

STATUS = 'endpoint="GET /api/v1/enrichment/status/{id}/",vendor="ecore"'


async def metrics(world) -> str:  # noqa: F811
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{world.url}/metrics") as response,
    ):
        return await response.text()


async def test_failed_vendor_calls_are_counted_by_what_came_back(world):  # noqa: F811
    job = await world.submit(VendorName.ECORE)
    settings = world.services.settings.ecore
    submitted = await metrics(world)
    submit = 'endpoint="POST /api/v1/enrichment/submit/",vendor="ecore"'
    assert f"enrichwatch_vendor_calls_total{{{submit}}} 1.0" in submitted
    assert "enrichwatch_vendor_call_failures_total{" not in submitted

    await check_job_now(world.rc, job.id)  # answered
    world.sim.faults.set("ecore", server_errors=1)
    await check_job_now(world.rc, job.id)
    right_key, settings.api_key = settings.api_key, SecretStr("revoked")
    await check_job_now(world.rc, job.id)
    settings.api_key = right_key

    text = await metrics(world)
    assert f"enrichwatch_vendor_calls_total{{{STATUS}}} 3.0" in text
    assert f'enrichwatch_vendor_call_failures_total{{answer="503",{STATUS}}} 1.0' in text
    assert f'enrichwatch_vendor_call_failures_total{{answer="401",{STATUS}}} 1.0' in text
    assert text.count("enrichwatch_vendor_call_failures_total{") == 2


async def test_no_answer_and_an_answer_that_is_no_json_are_counted_too(world):  # noqa: F811
    job = await world.submit(VendorName.ECORE)
    settings = world.services.settings.ecore

    async def proxy_page(request: web.Request) -> web.Response:
        return web.Response(text="<html>502 Bad Gateway</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", proxy_page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        settings.base_url = AnyHttpUrl(f"http://127.0.0.1:{port}")
        await check_job_now(world.rc, job.id)
    finally:
        await runner.cleanup()

    # A server that hangs up on every connection: no answer at all.
    hang_up = await asyncio.start_server(lambda _, writer: writer.close(), "127.0.0.1", 0)
    async with hang_up:
        port = hang_up.sockets[0].getsockname()[1]
        settings.base_url = AnyHttpUrl(f"http://127.0.0.1:{port}")
        await check_job_now(world.rc, job.id)

    text = await metrics(world)
    assert f'enrichwatch_vendor_call_failures_total{{answer="unreadable",{STATUS}}} 1.0' in text
    assert f'enrichwatch_vendor_call_failures_total{{answer="network",{STATUS}}} 1.0' in text


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Each sample of the exposition, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def ecore(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return (name, tuple(sorted({"vendor": "ecore", **labels}.items())))


async def test_open_jobs_and_failing_checks_are_read_from_the_database_at_each_scrape(world):  # noqa: F811
    jobs = [await world.submit(VendorName.ECORE) for _ in range(2)]
    before = samples(await metrics(world))
    assert before[("enrichwatch_database_up", ())] == 1
    assert before[ecore("enrichwatch_open_jobs", state="submitted")] == 2
    assert before[ecore("enrichwatch_open_jobs", state="running")] == 0
    assert before[ecore("enrichwatch_jobs_failing_checks")] == 0
    assert before[ecore("enrichwatch_checks_failing_seconds")] == 0
    assert before[("enrichwatch_work_items", (("kind", "notify"), ("state", "pending")))] == 0
    # Every vendor has its series, at 0.
    assert before[("enrichwatch_jobs_failing_checks", (("vendor", "crustdata"),))] == 0

    settings = world.services.settings.ecore
    right_key, settings.api_key = settings.api_key, SecretStr("revoked")
    await check_job_now(world.rc, jobs[0].id)
    world.sim.clock.advance(600)
    await check_job_now(world.rc, jobs[1].id)
    failing = samples(await metrics(world))
    assert failing[ecore("enrichwatch_jobs_failing_checks")] == 2
    assert failing[ecore("enrichwatch_checks_failing_seconds")] == 600
    # One notice for both jobs, waiting to be sent (the console's).
    assert failing[("enrichwatch_work_items", (("kind", "notify"), ("state", "pending")))] == 1

    settings.api_key = right_key
    for job in jobs:
        await check_job_now(world.rc, job.id)
    mended = samples(await metrics(world))
    assert mended[ecore("enrichwatch_jobs_failing_checks")] == 0
    assert mended[ecore("enrichwatch_checks_failing_seconds")] == 0
    states = [(await world.job(job.id)).state for job in jobs]
    for state in ("submitted", "queued", "running", "needs_action"):
        expected = sum(checked.value == state for checked in states)
        assert mended[ecore("enrichwatch_open_jobs", state=state)] == expected
    assert (ecore("enrichwatch_open_jobs", state="completed")) not in mended
