from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from enrichwatch.config import Settings, load_settings
from enrichwatch.runtime import Services, open_services
from receiver import serving

API_TOKEN = "test-api-token-0123456789"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(db=tmp_path / "enrichwatch.db", api_token=API_TOKEN, port=0)


@pytest_asyncio.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    async with open_services(settings) as services:
        yield services


@pytest_asyncio.fixture
async def server(services: Services) -> AsyncIterator[str]:
    """The receiver on a real loopback socket; yields its base URL."""
    async with serving(services, "127.0.0.1", 0) as url:
        yield url


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_TOKEN}"}


async def track(
    http: aiohttp.ClientSession, server: str, vendor: str = "crustdata", vendor_job_id: str = "b-1"
) -> dict:
    async with http.post(
        f"{server}/api/jobs",
        json={"vendor": vendor, "vendor_job_id": vendor_job_id, "name": "test job"},
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    ) as response:
        assert response.status in (200, 201), await response.text()
        return await response.json()


def snapshot(db: Path) -> list[str]:
    """Everything in the database except the readiness probe, for "nothing changed" checks."""
    conn = sqlite3.connect(db)
    try:
        return [line for line in conn.iterdump() if "ready_probe" not in line]
    finally:
        conn.close()
