from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from enrichwatch.sim import SimServer

PATH = "/public/v1/enrichment/batch/"


def auth(sim: SimServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {sim.api_keys['influencers_club']}"}


def form(
    csv_text: str | bytes | None = "email\na@x.com\nb@y.com\nc@z.com\n", **fields: str
) -> aiohttp.FormData:
    data = aiohttp.FormData()
    if csv_text is not None:
        data.add_field("file", csv_text, filename="batch.csv", content_type="text/csv")
    for key, value in {"enrichment_mode": "basic", **fields}.items():
        data.add_field(key, value)
    return data


async def create(
    sim: SimServer, session: aiohttp.ClientSession, data: aiohttp.FormData
) -> tuple[int, Any]:
    async with session.post(
        sim.base_urls["influencers_club"] + PATH, data=data, headers=auth(sim)
    ) as r:
        return r.status, await r.json()


async def get(sim: SimServer, session: aiohttp.ClientSession, path: str) -> tuple[int, Any]:
    async with session.get(sim.base_urls["influencers_club"] + path, headers=auth(sim)) as r:
        return r.status, await r.json()


async def test_auth_failures(sim: SimServer, session: aiohttp.ClientSession) -> None:
    url = sim.base_urls["influencers_club"] + PATH + "nope/status/"
    async with session.get(url) as response:
        assert response.status == 401
        assert await response.json() == {"detail": "Authentication credentials were not provided."}
    async with session.get(url, headers={"Authorization": "Bearer wrong"}) as response:
        assert response.status == 401


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (form(None), "file"),
        (form("handle,email\nx,y\n"), "file"),
        (form("email\n"), "file"),
        (form(enrichment_mode="mega"), "enrichment_mode"),
        (form("handle\nnasa\n", enrichment_mode="full"), "platform"),
        (form(platform="myspace"), "platform"),
        (form(metadata="{not json"), "metadata"),
    ],
)
async def test_create_validation(
    sim: SimServer, session: aiohttp.ClientSession, data: aiohttp.FormData, field: str
) -> None:
    status, body = await create(sim, session, data)
    assert status == 400
    assert field in body
    assert isinstance(body[field], list)


async def test_file_size_limit(sim: SimServer, session: aiohttp.ClientSession) -> None:
    sim.config.influencers_club.max_file_bytes = 1000
    status, body = await create(sim, session, form("email\n" + "a@b.co\n" * 200))
    assert status == 400
    assert "10 MB" in body["file"][0]


async def test_batch_lifecycle_and_json_results(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    csv_text = "handle\n" + "".join(f"creator{i}\n" for i in range(1200))
    status, created = await create(
        sim,
        session,
        form(csv_text, enrichment_mode="raw", platform="instagram", metadata='{"campaign": "Q4"}'),
    )
    assert status == 200
    assert created["status"] == "validating"
    batch_id = created["batch_id"]
    _, first = await get(sim, session, f"{PATH}{batch_id}/status/")
    assert first["status"] == "queued"
    assert first["metadata"] == {"campaign": "Q4"}
    assert first["credits_used"] == "0.00"
    status, _ = await get(sim, session, f"{PATH}{batch_id}/?format=json")
    assert status == 400
    seen = []
    for _ in range(100):
        await sim.advance(15)
        _, body = await get(sim, session, f"{PATH}{batch_id}/status/")
        seen.append(body["status"])
        assert body["processed_rows"] == body["success_count"] + body["failed_count"]
        if body["status"] == "finished":
            break
    assert "processing" in seen
    assert body == body | {"total_rows": 1200, "processed_rows": 1200, "status_message": None}
    assert body["credits_used"] == f"{body['success_count'] * 0.03:.2f}"
    status, results = await get(sim, session, f"{PATH}{batch_id}/?format=json")
    assert status == 200
    assert len(results) == 1200
    assert [r["input_value"] for r in results[:2]] == ["creator0", "creator1"]
    assert sum(r["status"] == "failed" for r in results) == body["failed_count"]
    ok = next(r for r in results if r["status"] == "success")
    assert ok["enrichment_data"]["platform"] == "instagram"
    status, _ = await get(sim, session, f"{PATH}{batch_id}/")
    assert status == 404
    status, _ = await get(sim, session, f"{PATH}{batch_id}/?format=csv")
    assert status == 404
    status, _ = await get(sim, session, f"{PATH}unknown/?format=json")
    assert status == 404


async def test_single_record_results(sim: SimServer, session: aiohttp.ClientSession) -> None:
    sim.config.influencers_club.profile.record_failure_rate = 0.0
    _, created = await create(sim, session, form("only@one.com\n", enrichment_mode="advanced"))
    await sim.advance(3600)
    status, results = await get(sim, session, f"{PATH}{created['batch_id']}/?format=json")
    assert status == 200
    assert results == [
        {
            "input_value": "only@one.com",
            "status": "success",
            "enrichment_data": results[0]["enrichment_data"],
        }
    ]


async def test_paused_for_credits_then_resumed(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    sim.config.influencers_club.profile.credit_pause_rate = 1.0
    _, created = await create(sim, session, form())
    batch_id = created["batch_id"]
    url = sim.base_urls["influencers_club"] + f"{PATH}{batch_id}/resume/"
    async with session.post(url, json={}, headers=auth(sim)) as response:
        assert response.status == 400
    await sim.advance(3600)
    _, paused = await get(sim, session, f"{PATH}{batch_id}/status/")
    assert paused["status"] == "paused_insufficient_credits"
    assert paused["status_message"]
    async with session.post(url, json={}, headers=auth(sim)) as response:
        assert response.status == 200
    await sim.advance(3600)
    _, done = await get(sim, session, f"{PATH}{batch_id}/status/")
    assert done["status"] == "finished"


async def test_rate_limit_per_account(sim: SimServer, session: aiohttp.ClientSession) -> None:
    sim.config.influencers_club.rpm = 4
    codes = []
    for _ in range(5):
        async with session.get(
            sim.base_urls["influencers_club"] + PATH + "x/status/", headers=auth(sim)
        ) as response:
            codes.append(response.status)
            retry = response.headers.get("Retry-After")
    assert codes == [404, 404, 404, 404, 429]
    assert retry == "60"
    assert len(sim.stats.rate_limit_violations("influencers_club")) == 1
    assert sim.stats.by_endpoint("influencers_club") == {
        "GET /public/v1/enrichment/batch/{id}/status/": 5
    }


async def test_failed_batch(sim: SimServer, session: aiohttp.ClientSession) -> None:
    sim.config.influencers_club.profile.job_failure_rate = 1.0
    _, created = await create(sim, session, form())
    await sim.advance(3600)
    _, body = await get(sim, session, f"{PATH}{created['batch_id']}/status/")
    assert body["status"] == "failed"
    status, _ = await get(sim, session, f"{PATH}{created['batch_id']}/?format=json")
    assert status == 400
