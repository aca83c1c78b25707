from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from enrichwatch.sim import SimConfig, SimServer

URLS = ["https://www.linkedin.com/in/a/", "https://www.linkedin.com/in/b/"]


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A stand-in for the enrichwatch receiver that records every callback it is sent."""

    url: str = ""
    hits: list[Hit] = field(default_factory=list)
    status: int = 200
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def paths(self) -> list[str]:
        return [hit.path for hit in self.hits]


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()

    async def record(request: web.Request) -> web.Response:
        state.hits.append(Hit(request.path_qs, dict(request.headers), await request.read()))
        state.arrived.set()
        return web.Response(status=state.status, text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield state
    await runner.cleanup()


async def crust_submit(sim: SimServer, session: aiohttp.ClientSession, webhook: str | None) -> str:
    body: dict[str, object] = {"professional_network_profile_urls": URLS}
    if webhook is not None:
        body["webhook_url"] = webhook
    async with session.post(
        sim.base_urls["crustdata"] + "/batch/person/enrich",
        json=body,
        headers={
            "Authorization": f"Bearer {sim.api_keys['crustdata']}",
            "x-api-version": "2025-11-01",
        },
    ) as response:
        assert response.status == 200
        batch_id: str = (await response.json())["batch_id"]
        return batch_id


def end_of(sim: SimServer, batch_id: str) -> float:
    end = sim.crustdata.jobs[batch_id].job.terminal_at()
    assert end is not None
    return end


async def test_crustdata_callback_arrives_after_delay(
    sim: SimServer, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    sim.set_callbacks("crustdata", delay=30)
    batch_id = await crust_submit(sim, session, f"{receiver.url}/hooks/crustdata/tok")
    end = end_of(sim, batch_id)
    await sim.advance(end - sim.clock.now() + 29)
    assert receiver.hits == []
    await sim.advance(1)
    assert receiver.paths() == ["/hooks/crustdata/tok"]
    payload = json.loads(receiver.hits[0].body)
    assert payload["batch_id"] == batch_id
    assert payload["status"] == "completed"
    assert receiver.hits[0].headers["Content-Type"] == "application/json"
    assert "x-crustdata-signature" not in receiver.hits[0].headers
    delivery = sim.callbacks.delivered("crustdata")[0]
    assert delivery.status == 200
    assert delivery.sent_at == pytest.approx(end + 30)


async def test_callbacks_go_out_in_due_order_with_clock_at_due_time(
    sim: SimServer, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    ids = [await crust_submit(sim, session, f"{receiver.url}/{i}") for i in range(3)]
    await sim.advance(10_000)
    by_end = sorted(range(3), key=lambda i: end_of(sim, ids[i]))
    assert receiver.paths() == [f"/{i}" for i in by_end]
    sent = [d.sent_at or 0.0 for d in sim.callbacks.deliveries]
    assert sent == sorted(sent)
    assert sim.clock.now() == pytest.approx(sim.config.start_time or 1_767_225_600.0 + 10_000)


async def test_lost_and_duplicated_callbacks(
    sim: SimServer, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    sim.set_callbacks("crustdata", loss_probability=1.0)
    await crust_submit(sim, session, f"{receiver.url}/lost")
    await sim.advance(10_000)
    assert receiver.hits == []
    assert [d.lost for d in sim.callbacks.deliveries] == [True]

    sim.set_callbacks(
        "crustdata", loss_probability=0.0, duplicate_probability=1.0, duplicate_delay=5
    )
    batch_id = await crust_submit(sim, session, f"{receiver.url}/dup")
    await sim.advance(10_000)
    assert receiver.paths() == ["/dup", "/dup"]
    assert receiver.hits[0].body == receiver.hits[1].body
    first, second = sim.callbacks.delivered()
    assert second.duplicate
    assert second.sent_at is not None
    assert first.sent_at is not None
    assert second.sent_at - first.sent_at == pytest.approx(5)
    assert json.loads(receiver.hits[0].body)["batch_id"] == batch_id


async def test_jitter_can_reorder_callbacks(
    session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    config = SimConfig(seed=3)
    config.crustdata.callbacks.jitter = 600
    config.crustdata.max_active_jobs = 50
    async with SimServer(config) as sim:
        ids = [await crust_submit(sim, session, f"{receiver.url}/{i}") for i in range(12)]
        await sim.advance(10_000)
        by_end = [f"/{i}" for i in sorted(range(12), key=lambda i: end_of(sim, ids[i]))]
    assert sorted(receiver.paths()) == sorted(by_end)
    assert receiver.paths() != by_end


async def test_failure_callback_is_configurable(
    sim: SimServer, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    sim.config.crustdata.profile.job_failure_rate = 1.0
    await crust_submit(sim, session, f"{receiver.url}/quiet")
    await sim.advance(10_000)
    assert receiver.hits == []
    sim.config.crustdata.callback_on_failure = True
    await crust_submit(sim, session, f"{receiver.url}/loud")
    await sim.advance(10_000)
    assert receiver.paths() == ["/loud"]
    assert json.loads(receiver.hits[0].body)["status"] == "failed"


async def test_signed_callbacks(
    sim: SimServer, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    sim.config.crustdata.sign_callbacks = True
    await crust_submit(sim, session, f"{receiver.url}/signed")
    await sim.advance(10_000)
    hit = receiver.hits[0]
    stamp, v1 = (part.split("=", 1)[1] for part in hit.headers["x-crustdata-signature"].split(","))
    key = sim.api_keys["crustdata"].encode()
    expected = hmac.new(key, stamp.encode() + b"." + hit.body, hashlib.sha256).hexdigest()
    assert v1 == expected
    assert hit.headers["x-crustdata-event-id"]


async def test_unreachable_receiver_is_recorded(
    sim: SimServer, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    receiver.status = 500
    await crust_submit(sim, session, f"{receiver.url}/broken")
    await crust_submit(sim, session, "http://127.0.0.1:9/nothing-listens")
    await sim.advance(10_000)
    statuses = sorted((d.status or 0, d.error is not None) for d in sim.callbacks.deliveries)
    assert statuses == [(0, True), (500, False)]


async def brightlocal_batch(sim: SimServer, session: aiohttp.ClientSession, **create: str) -> str:
    base, key = sim.base_urls["brightlocal"], sim.api_keys["brightlocal"]
    async with session.post(f"{base}/v4/batch", data={"api-key": key, **create}) as response:
        batch_id: str = (await response.json())["batch-id"]
    for i in range(3):
        async with session.post(
            f"{base}/v4/ld/fetch-reviews",
            data={"api-key": key, "batch-id": batch_id, "profile-url": f"https://g.co/{i}"},
        ) as response:
            assert response.status == 201
    async with session.put(f"{base}/v4/batch", data={"api-key": key, "batch-id": batch_id}):
        pass
    return batch_id


@pytest.mark.parametrize("fmt", ["json", "form"])
async def test_brightlocal_callback_formats(
    sim: SimServer, session: aiohttp.ClientSession, receiver: Receiver, fmt: str
) -> None:
    sim.config.brightlocal.profile.record_failure_rate = 0.0
    batch_id = await brightlocal_batch(
        sim, session, callback=f"{receiver.url}/bl", callback_request_format=fmt
    )
    await sim.advance(10_000)
    assert receiver.paths() == ["/bl"]
    hit = receiver.hits[0]
    if fmt == "json":
        body = json.loads(hit.body)
        assert hit.headers["Content-Type"] == "application/json"
        assert body["status"] == "Finished"
        assert len(body["results"]["LdFetchReviews"]) == 3
    else:
        form = parse_qs(hit.body.decode())
        assert hit.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert form["status"] == ["Finished"]
        assert form["batch-id"] == [batch_id]
        assert json.loads(form["statuses"][0]) == {"Completed": 3}


async def test_brightlocal_callback_on_stop(
    sim: SimServer, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    batch_id = await brightlocal_batch(
        sim, session, callback=f"{receiver.url}/stopped", callback_request_format="json"
    )
    base, key = sim.base_urls["brightlocal"], sim.api_keys["brightlocal"]
    async with session.put(
        f"{base}/v4/batch/stop", data={"api-key": key, "batch-id": batch_id}
    ) as response:
        assert response.status == 200
    await sim.advance(sim.config.brightlocal.callbacks.delay)
    assert json.loads(receiver.hits[0].body)["status"] == "Stopped"


async def test_scaled_clock_delivers_in_the_background(
    session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    config = SimConfig(seed=1, speed=100_000.0)
    async with SimServer(config) as sim:
        await crust_submit(sim, session, f"{receiver.url}/scaled")
        await asyncio.wait_for(receiver.arrived.wait(), timeout=5)
    assert receiver.paths() == ["/scaled"]
