from __future__ import annotations

import asyncio
import os

import aiohttp
import pytest

from enrichwatch.config import load_settings
from enrichwatch.sim import SimConfig, SimServer
from enrichwatch.sim.standalone import env_lines, serve_standalone


async def test_base_urls_keys_and_separate_storage_host(sim: SimServer) -> None:
    assert set(sim.base_urls) == {
        "crustdata",
        "influencers_club",
        "reprompt",
        "brightlocal",
        "ecore",
    }
    assert sim.base_urls["ecore"] == f"{sim.url}/ecore"
    assert sim.url.startswith("http://127.0.0.1:")
    assert sim.storage.base_url != sim.url
    assert sim.api_keys["crustdata"] == sim.config.crustdata.api_key


async def test_request_counts_and_stats_endpoint(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    auth = {"Authorization": f"Bearer {sim.api_keys['crustdata']}"}
    for _ in range(2):
        async with session.get(sim.base_urls["crustdata"] + "/batch/abc", headers=auth):
            pass
    async with session.get(sim.base_urls["ecore"] + "/api/v1/enrichment/status/x/"):
        pass
    async with session.get(sim.base_urls["ecore"] + "/no/such/path"):
        pass
    assert sim.stats.count("crustdata", "GET /batch/{id}") == 2
    assert sim.stats.by_endpoint("ecore") == {
        "GET /api/v1/enrichment/status/{id}/": 1,
        "GET <unmatched>": 1,
    }
    async with session.get(sim.url + "/_sim/stats") as response:
        stats = await response.json()
    assert stats["requests"]["crustdata"] == {"GET /batch/{id}": 2}
    assert stats["total"] == 4
    assert stats["violations"] == []
    assert stats["jobs"]["crustdata"] == []


async def test_control_endpoints(sim: SimServer, session: aiohttp.ClientSession) -> None:
    before = sim.clock.now()
    async with session.post(sim.url + "/_sim/advance", params={"seconds": "120"}) as response:
        assert (await response.json())["now"] == before + 120
    async with session.post(sim.url + "/_sim/faults/reprompt", json={"server_errors": 1}) as r:
        assert r.status == 200
    auth = {"Authorization": f"Bearer {sim.api_keys['reprompt']}"}
    url = sim.base_urls["reprompt"] + "/v1/o/place_enrichment/batches"
    async with session.get(url, headers=auth) as response:
        assert response.status == 503
    async with session.get(url, headers=auth) as response:
        assert response.status == 200
    async with session.post(sim.url + "/_sim/faults/reprompt", json={"bogus": 1}) as r:
        assert r.status == 400
    assert sim.stats.injected[("reprompt", "server_errors")] == 1


async def test_slow_fault_and_endpoint_filter(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    sim.set_fault(
        "ecore",
        slow_count=1,
        slow_seconds=0.01,
        rate_limit=1,
        endpoint="GET /api/v1/enrichment/status/",
    )
    auth = {"Authorization": f"Bearer {sim.api_keys['ecore']}"}
    async with session.get(
        sim.base_urls["ecore"] + "/api/v1/enrichment/status/x/", headers=auth
    ) as r:
        assert r.status == 404
    async with session.get(
        sim.base_urls["ecore"] + "/api/v1/enrichment/status/", headers=auth
    ) as r:
        assert r.status == 429
        assert r.headers["Retry-After"] == "30"
    assert sim.stats.injected[("ecore", "slow")] == 1
    with pytest.raises(TypeError):
        sim.set_fault("ecore", nonsense=True)
    with pytest.raises(KeyError):
        sim.set_fault("acme")


async def test_env_lines_point_at_the_sim(sim: SimServer) -> None:
    lines = env_lines(sim)
    assert f"ENRICHWATCH_CRUSTDATA__BASE_URL={sim.base_urls['crustdata']}" in lines
    assert f"ENRICHWATCH_ECORE__API_KEY={sim.api_keys['ecore']}" in lines
    assert f"ENRICHWATCH_CRUSTDATA__DOWNLOAD_HOSTS={sim.storage.host}" in lines


async def test_env_lines_as_a_shell_or_env_file_gives_them_load_as_printed(
    sim: SimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No quoting needed: each line is NAME=VALUE as printed."""
    for name in [n for n in os.environ if n.upper().startswith("ENRICHWATCH_")]:
        monkeypatch.delenv(name)
    for line in env_lines(sim):
        name, value = line.split("=", 1)
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.crustdata.download_hosts == [sim.storage.host]
    assert str(settings.ecore.base_url).rstrip("/") == sim.base_urls["ecore"]


async def test_standalone_serves_until_stopped(session: aiohttp.ClientSession) -> None:
    printed: list[str] = []
    stop, ready = asyncio.Event(), asyncio.Event()

    def echo(line: str) -> None:
        printed.append(line)
        if "BRIGHTLOCAL__BASE_URL" in line:
            ready.set()

    task = asyncio.create_task(serve_standalone(speed=60.0, seed=3, echo=echo, stop=stop))
    await asyncio.wait_for(ready.wait(), timeout=5)
    url = next(line for line in printed if "BRIGHTLOCAL__BASE_URL" in line).split("=", 1)[1]
    async with session.get(url.rsplit("/", 1)[0] + "/_sim/clock") as response:
        assert (await response.json())["speed"] == 60.0
    stop.set()
    await asyncio.wait_for(task, timeout=5)


async def test_views_expose_counts(session: aiohttp.ClientSession) -> None:
    async with SimServer(SimConfig(seed=5)) as sim:
        crust = sim.crustdata.add_job(100)
        await sim.advance_to((crust.job.terminal_at() or 0) + 1)
        (view,) = sim.crustdata.views()
    assert (view.vendor_status, view.total, view.processed) == ("completed", 100, 100)
    assert view.succeeded + view.failed == 100
