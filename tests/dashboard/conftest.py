"""The dashboard in a real headless Chromium (Debian's, driven by Playwright), against the
receiver and reconciler running on the vendor simulator's clock."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import pytest_asyncio
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from enrichwatch.config import load_settings
from enrichwatch.models import VendorName
from enrichwatch.runtime import Services, open_services
from enrichwatch.sim import SimConfig, SimServer
from enrichwatch.submission import submit_batch
from enrichwatch.vendors.base import SubmitRequest
from receiver import serving
from reconciler import Reconciler, reconcile_once
from tests.conftest import API_TOKEN
from tests.settling import next_due
from tests.test_reconciler import place_rows

REPO = Path(__file__).resolve().parents[2]
# The page polls every two seconds; give a change a few polls to show.
expect.set_options(timeout=15_000)

BATCHES: dict[VendorName, tuple[list[dict[str, str]], dict]] = {
    VendorName.CRUSTDATA: (
        [
            {"professional_network_profile_urls": f"https://www.linkedin.com/in/p{n}/"}
            for n in range(12)
        ],
        {},
    ),
    VendorName.BRIGHTLOCAL: (
        [{"profile-url": f"https://example.com/biz/{n}", "country": "USA"} for n in range(4)],
        {},
    ),
    VendorName.INFLUENCERS_CLUB: (
        [{"handle": f"creator{n}"} for n in range(40)],
        {"enrichment_mode": "full", "platform": "instagram"},
    ),
    VendorName.ECORE: (
        [{"email": f"lead{n}@example.com"} for n in range(35)],
        {"category": "contact"},
    ),
    VendorName.REPROMPT: (
        place_rows(12),
        {},
    ),
}


@pytest.fixture
def artifacts() -> Path:
    """Where screenshots go: $ENRICHWATCH_TEST_ARTIFACTS, or test-artifacts/ in the repo."""
    path = Path(os.environ.get("ENRICHWATCH_TEST_ARTIFACTS") or REPO / "test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest_asyncio.fixture
async def browser():
    executable = shutil.which("chromium")
    assert executable, "the dashboard tests need Debian's chromium package (apt install chromium)"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def watched_page(
    browser: Browser, *, not_found: frozenset[str] = frozenset(), **options
) -> AsyncIterator[Page]:
    """A page in a fresh context; whatever the browser reports as an error (a script error,
    a resource the page could not load, a blocked style or script) fails the test, but the
    404 of a URL in `not_found`, a page opened to see it is not there."""
    context = await browser.new_context(**options)
    errors: list[str] = []
    try:
        page = await context.new_page()
        page.on("console", lambda message: _keep_error(errors, message, not_found))
        page.on("pageerror", lambda error: errors.append(str(error)))
        yield page
    finally:
        await context.close()
    assert errors == []


def _keep_error(errors: list[str], message: ConsoleMessage, not_found: frozenset[str]) -> None:
    # A refused login answers 401 on purpose; the browser logs that as a failed load.
    if message.type != "error" or "401 (Unauthorized)" in message.text:
        return
    if "404 (Not Found)" in message.text and message.location.get("url") in not_found:
        return
    errors.append(f"{message.text} ({message.location.get('url')})")


@pytest_asyncio.fixture
async def page(browser: Browser):
    async with watched_page(browser, viewport={"width": 1280, "height": 900}) as page:
        yield page


@asynccontextmanager
async def open_world(db: Path, **settings: Any) -> AsyncIterator[World]:
    """The simulator, and enrichwatch (receiver and reconciler) running on its clock, with
    `settings` over the defaults."""
    config = SimConfig(seed=5, start_time=time.time())
    config.influencers_club.profile.noise = 0.0  # steady progress, so every check shows more
    async with SimServer(config) as sim:
        overrides = sim.vendor_settings()
        loaded = load_settings(db=db, api_token=API_TOKEN, **overrides, **settings)
        async with (
            open_services(loaded, clock=sim.clock.now) as services,
            serving(services, "127.0.0.1", 0) as url,
        ):
            yield World(sim, services, url, Reconciler(services))


class World(NamedTuple):
    sim: SimServer
    services: Services
    url: str
    rc: Reconciler


@pytest_asyncio.fixture
async def world(tmp_path):
    """The simulator, and enrichwatch (receiver and reconciler) running on its clock."""
    async with open_world(tmp_path / "dashboard.db") as world:
        yield world


async def reconcile_until(world: World, condition: Callable[[], Awaitable[bool]]) -> None:
    """Reconcile passes, the clock jumping to the next thing due, until `condition()` holds."""
    for _ in range(200):
        await reconcile_once(world.rc)
        if await condition():
            return
        due = next_due(world.services.store.path)
        if due is None:
            break
        await world.sim.advance_to(max(due, world.sim.clock.now()))
    raise AssertionError("the condition was never met")


async def submit(services, url, vendor: VendorName):
    rows, options = BATCHES[vendor]
    outcome = await submit_batch(
        services,
        vendor,
        SubmitRequest(rows=rows, name=f"{vendor.value} sample", options=options),
        public_url=url,
    )
    (job,) = outcome.jobs
    return job


async def log_in(page: Page, url: str, token: str = API_TOKEN) -> None:
    await page.goto(f"{url}/")
    await expect(page).to_have_url(re.compile(r"/login\?next="))
    await page.get_by_label("API token").fill(token)
    await page.get_by_role("button", name="Log in").click()


async def screenshot(page: Page, artifacts: Path, name: str) -> None:
    await page.screenshot(path=artifacts / f"dashboard-{name}.png", full_page=True)
