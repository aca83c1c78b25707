from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio

from enrichwatch.sim import SimConfig, SimServer


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(seed=7)) as server:
        yield server


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client
