"""`/metrics` counts every vendor call, and each failed one by what came back: the alert an
operator needs when a key is revoked or a vendor is down. Against the simulator over real
HTTP, on its manual clock."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web
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
