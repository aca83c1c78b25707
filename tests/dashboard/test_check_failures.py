"""The dashboard says how many checks of an open job failed in a row: a revoked key leaves
jobs open that would otherwise look merely slow. Against the simulator over real HTTP."""

from __future__ import annotations

import aiohttp
from pydantic import SecretStr

from enrichwatch.models import VendorName
from receiver.dashboard.auth import COOKIE
from receiver.dashboard.render import iso, when
from reconciler.checks import check_job_now
from tests.conftest import API_TOKEN
from tests.test_results_and_actions import world  # noqa: F401 (a fixture)

LOGGED_IN = {"Cookie": f"{COOKIE}={API_TOKEN}"}


async def page(world, path: str) -> str:  # noqa: F811
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{world.url}{path}", headers=LOGGED_IN) as response,
    ):
        assert response.status == 200
        return await response.text()


async def test_the_job_list_and_the_job_page_show_failed_checks(world):  # noqa: F811
    failing = await world.submit(VendorName.ECORE)
    await check_job_now(world.rc, failing.id)
    for path in ("/", f"/jobs/{failing.id}"):
        assert "failed</span>" not in await page(world, path)
    assert "Checks failing since" not in await page(world, f"/jobs/{failing.id}")

    world.services.settings.ecore.api_key = SecretStr("revoked")
    for _ in range(3):
        await check_job_now(world.rc, failing.id)

    for path in ("/", f"/jobs/{failing.id}"):
        assert '<span class="check-failures">3 checks failed</span>' in await page(world, path)
    began = (await world.job(failing.id)).failing_since
    assert began is not None
    assert (
        '<dt>Checks failing since</dt><dd class="error" data-failing-since>'
        f'<time datetime="{iso(began)}">{when(began)}</time>'
    ) in await page(world, f"/jobs/{failing.id}")
    # The timeline says what each failed check was, in the words the CLI uses.
    timeline = await page(world, f"/jobs/{failing.id}")
    assert timeline.count('<td class="details">status call failed: ecore: ') == 3
