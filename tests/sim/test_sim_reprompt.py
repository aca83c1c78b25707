from __future__ import annotations

import io
import json
from typing import Any

import aiohttp
import pytest

from enrichwatch.sim import SimServer


def auth(sim: SimServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {sim.api_keys['reprompt']}"}


def places(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "place_id": f"store_{i:03d}",
            "inputs": {"name": f"Store {i}", "full_address": "1 Main St"},
        }
        for i in range(start, start + n)
    ]


async def call(
    sim: SimServer, session: aiohttp.ClientSession, method: str, path: str, **kwargs: Any
) -> tuple[int, Any]:
    url = sim.base_urls["reprompt"] + "/v1/acme/place_enrichment" + path
    headers = auth(sim) | kwargs.pop("headers", {})
    async with session.request(method, url, headers=headers, **kwargs) as response:
        return response.status, await response.json()


async def finish(sim: SimServer, batch_id: str) -> None:
    batch = sim.reprompt.batches[("acme", batch_id)]
    ends = [r.job.terminal_at() for r in batch.rounds]
    await sim.advance_to(max(e for e in ends if e is not None) + 1)


async def test_auth_and_org(sim: SimServer, session: aiohttp.ClientSession) -> None:
    url = sim.base_urls["reprompt"] + "/v1/acme/place_enrichment/batches"
    async with session.get(url) as response:
        assert response.status == 401
        assert await response.json() == {"detail": "Not authenticated"}
    async with session.get(url, headers={"Authorization": "Bearer bad"}) as response:
        assert response.status == 401
    async with session.get(url, headers={"apiKey": sim.api_keys["reprompt"]}) as response:
        assert response.status == 200
    sim.config.reprompt.org = "other"
    async with session.get(url, headers=auth(sim)) as response:
        assert response.status == 403


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"jobs": places(1)}, 422),
        ({"batch_name": "x"}, 422),
        ({"batch_name": "x", "jobs": [{"inputs": {}}]}, 422),
        (
            {
                "batch_name": "x",
                "jobs": places(1),
                "attributes": ["websites"],
                "attribute_set": "core",
            },
            400,
        ),
        ({"batch_name": "x", "jobs": places(1), "attribute_set": "everything"}, 422),
    ],
)
async def test_submit_validation(
    sim: SimServer, session: aiohttp.ClientSession, body: dict[str, Any], status: int
) -> None:
    code, answer = await call(sim, session, "POST", "/batches", json=body)
    assert code == status
    assert "detail" in answer


async def test_batch_size_cap(sim: SimServer, session: aiohttp.ClientSession) -> None:
    jobs = [{"place_id": str(i), "inputs": {}} for i in range(50_001)]
    payload = io.BytesIO(json.dumps({"batch_name": "big", "jobs": jobs}).encode())
    code, answer = await call(
        sim,
        session,
        "POST",
        "/batches",
        data=payload,
        headers={"Content-Type": "application/json"},
    )
    assert code == 400
    assert "50000" in answer["detail"]


async def test_status_moves_through_the_vocabulary(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    sim.config.reprompt.profile.record_failure_rate = 0.1
    code, created = await call(
        sim, session, "POST", "/batches", json={"batch_name": "Q1", "jobs": places(60)}
    )
    assert code == 200
    assert created["status"] == "pending"
    assert len(created["jobs"]["pending"]) == 60
    start_delay = sim.reprompt.batches[("acme", created["id"])].rounds[0].job.plan.start_delay
    await sim.advance(start_delay * 0.75)
    _, waiting = await call(sim, session, "GET", f"/batches/{created['id']}")
    assert waiting["status"] == "queued"
    assert len(waiting["jobs"]["queued"]) == 60
    seen = []
    for _ in range(100):
        _, body = await call(sim, session, "GET", f"/batches/{created['id']}")
        seen.append(body["status"])
        assert sum(len(v) for v in body["jobs"].values()) == 60
        if body["status"] in ("completed", "failed"):
            break
        await sim.advance(5)
    assert seen[0] == "queued"
    assert "in_progress" in seen
    assert seen[-1] == "completed"
    assert body["metadata"]["status_counts"] == {k: len(v) for k, v in body["jobs"].items()}
    assert len(body["jobs"]["failed"]) == 6


async def test_results_pagination_edges(sim: SimServer, session: aiohttp.ClientSession) -> None:
    _, created = await call(
        sim, session, "POST", "/batches", json={"batch_name": "p", "jobs": places(25)}
    )
    batch_id = created["id"]
    await finish(sim, batch_id)
    _, one = await call(sim, session, "GET", "/jobs", params={"batchId": batch_id, "limit": 25})
    assert (one["total"], one["limit"], one["offset"], len(one["jobs"])) == (25, 25, 0, 25)
    collected, offset = [], 0
    while True:
        _, page = await call(
            sim,
            session,
            "GET",
            "/jobs",
            params={"batchId": batch_id, "limit": 10, "offset": offset},
        )
        collected.extend(page["jobs"])
        offset += page["limit"]
        if offset >= page["total"]:
            break
    assert [j["place_id"] for j in collected] == [f"store_{i:03d}" for i in range(25)]
    _, past = await call(sim, session, "GET", "/jobs", params={"batchId": batch_id, "offset": 25})
    assert past["jobs"] == []
    done = next(j for j in collected if j["status"] == "completed")
    assert set(done["outputs"]) == {"websites", "phoneNumbers", "categories", "openingHours"}
    assert set(done["job_metadata"]["attribute_status"].values()) == {"completed"}
    code, _ = await call(sim, session, "GET", "/jobs", params={"batchId": batch_id, "limit": 0})
    assert code == 422
    code, _ = await call(sim, session, "GET", "/jobs", params={"batchId": "missing"})
    assert code == 404


async def test_append_with_existing_batch_id(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    body = {"batch_name": "a", "batch_id": "my-batch", "jobs": places(3)}
    _, first = await call(sim, session, "POST", "/batches", json=body)
    assert first["id"] == "my-batch"
    _, second = await call(sim, session, "POST", "/batches", json=body | {"jobs": places(2, 3)})
    assert sum(len(v) for v in second["jobs"].values()) == 5


async def test_reprocess_failed_only_reopens_the_batch(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    sim.config.reprompt.profile.record_failure_rate = 0.2
    _, created = await call(
        sim, session, "POST", "/batches", json={"batch_name": "r", "jobs": places(20)}
    )
    batch_id = created["id"]
    await finish(sim, batch_id)
    _, done = await call(sim, session, "GET", f"/batches/{batch_id}")
    failed = done["jobs"]["failed"]
    assert done["status"] == "completed"
    assert len(failed) == 4
    code, again = await call(sim, session, "POST", f"/batches/{batch_id}/reprocess", json={})
    assert code == 200
    assert set(again["jobs"]["pending"]) == set(failed)
    assert again["status"] == "in_progress"
    await finish(sim, batch_id)
    _, final = await call(sim, session, "GET", f"/batches/{batch_id}")
    assert len(final["jobs"]["failed"]) < 4


async def test_failed_batch_and_list(sim: SimServer, session: aiohttp.ClientSession) -> None:
    sim.config.reprompt.profile.record_failure_rate = 0.8
    _, bad = await call(
        sim, session, "POST", "/batches", json={"batch_name": "Bad run", "jobs": places(10)}
    )
    sim.config.reprompt.profile.record_failure_rate = 0.0
    await sim.advance(1)
    _, good = await call(
        sim, session, "POST", "/batches", json={"batch_name": "Good run", "jobs": places(10)}
    )
    await finish(sim, good["id"])
    await finish(sim, bad["id"])
    _, listing = await call(sim, session, "GET", "/batches", params={"limit": 1})
    assert listing["total"] == 2
    assert [b["id"] for b in listing["batches"]] == [good["id"]]
    assert listing["batches"][0]["status"] == "completed"
    _, second = await call(sim, session, "GET", "/batches", params={"limit": 1, "offset": 1})
    assert second["batches"][0]["status"] == "failed"
    _, found = await call(sim, session, "GET", "/batches", params={"query": "bad"})
    assert [b["id"] for b in found["batches"]] == [bad["id"]]
