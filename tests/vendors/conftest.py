from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from enrichwatch.config import (
    BrightLocalSettings,
    CrustdataSettings,
    ECoreSettings,
    InfluencersClubSettings,
    RepromptSettings,
    VendorSettings,
)
from enrichwatch.models import VendorName
from enrichwatch.sim import SimConfig, SimServer
from enrichwatch.vendors import adapter_class
from enrichwatch.vendors.base import CreatedHook, ResultRecord, StatusSnapshot, VendorAdapter

SETTINGS: dict[VendorName, type[VendorSettings]] = {
    VendorName.CRUSTDATA: CrustdataSettings,
    VendorName.INFLUENCERS_CLUB: InfluencersClubSettings,
    VendorName.REPROMPT: RepromptSettings,
    VendorName.BRIGHTLOCAL: BrightLocalSettings,
    VendorName.ECORE: ECoreSettings,
}


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[SimServer]:
    # A manual clock that starts at the real time, so the vendors' timestamps and ours agree
    # (ambiguous-submit matching compares them).
    async with SimServer(SimConfig(seed=3, start_time=time.time())) as server:
        yield server


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def calls() -> Counter[tuple[str, str]]:
    return Counter()


Factory = Callable[..., Any]


@pytest.fixture
def make(
    sim: SimServer, session: aiohttp.ClientSession, calls: Counter[tuple[str, str]]
) -> Factory:
    """Build a vendor's adapter pointed at the simulator; keyword arguments override the
    vendor settings (so a test can break the key or the allow-list)."""

    def build(vendor: VendorName, on_created: CreatedHook | None = None, **overrides: Any) -> Any:
        values: dict[str, Any] = {
            "base_url": sim.base_urls[vendor.value],
            "api_key": sim.api_keys[vendor.value],
        }
        if vendor is VendorName.CRUSTDATA:
            values["download_hosts"] = [sim.storage.host]
        values.update(overrides)
        settings = SETTINGS[vendor](**values)

        def count(name: VendorName, endpoint: str) -> None:
            calls[(name.value, endpoint)] += 1

        adapter: VendorAdapter = adapter_class(vendor)(
            settings, session, on_call=count, on_created=on_created
        )
        return adapter

    return build


async def collect(
    adapter: VendorAdapter, snapshot: StatusSnapshot, start: int = 0
) -> list[list[ResultRecord]]:
    return [page async for page in adapter.results(snapshot, start)]


def flat(pages: list[list[ResultRecord]]) -> list[ResultRecord]:
    return [record for page in pages for record in page]
