from __future__ import annotations

from typing import Any

import aiohttp

from enrichwatch.sim import SimServer


class BL:
    def __init__(self, sim: SimServer, session: aiohttp.ClientSession) -> None:
        self.sim, self.session = sim, session
        self.base, self.key = sim.base_urls["brightlocal"], sim.api_keys["brightlocal"]

    async def send(self, method: str, path: str, **params: Any) -> tuple[int, Any]:
        params = {"api-key": self.key, **params}
        if method in ("GET", "DELETE"):
            kwargs: dict[str, Any] = {"params": params}
        else:
            kwargs = {"data": params}
        async with self.session.request(method, self.base + path, **kwargs) as response:
            return response.status, await response.json()

    async def create(self, **params: Any) -> str:
        status, body = await self.send("POST", "/v4/batch", **params)
        assert status == 201
        assert body["success"] is True
        batch_id: str = body["batch-id"]
        return batch_id

    async def add(self, batch_id: Any, url: str = "https://g.co/maps/1") -> tuple[int, Any]:
        return await self.send(
            "POST", "/v4/ld/fetch-reviews", **{"batch-id": batch_id, "profile-url": url}
        )


async def test_invalid_api_key(sim: SimServer, session: aiohttp.ClientSession) -> None:
    bl = BL(sim, session)
    bl.key = "wrong"
    status, body = await bl.send("POST", "/v4/batch")
    assert status == 401
    assert body == {"errors": {"INVALID_API_KEY": "Invalid API key specified"}}
    async with session.get(bl.base + "/v4/batch") as response:
        assert response.status == 401


async def test_create_add_commit_and_poll_growing_results(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    sim.config.brightlocal.profile.record_failure_rate = 0.25
    bl = BL(sim, session)
    batch_id = await bl.create()
    assert isinstance(batch_id, str)
    status, body = await bl.send("GET", "/v4/batch", **{"batch-id": batch_id})
    assert (status, body["status"], body["results"]) == (200, "Created", {})
    job_ids = []
    for i in range(8):
        status, added = await bl.add(int(batch_id), f"https://g.co/maps/{i}")
        assert status == 201
        job_ids.append(added["job-id"])
    assert job_ids == sorted(job_ids)
    assert all(isinstance(j, int) for j in job_ids)
    status, _ = await bl.send("PUT", "/v4/batch", **{"batch-id": batch_id})
    assert status == 200
    _, body = await bl.send("GET", "/v4/batch", **{"batch-id": batch_id})
    assert body["status"] == "Committed"
    assert body["statuses"] == {"Pending": 8}
    sizes, states = [], []
    for _ in range(60):
        await sim.advance(3)
        _, body = await bl.send("GET", "/v4/batch", **{"batch-id": batch_id})
        sizes.append(len(body["results"].get("LdFetchReviews", [])))
        states.append(body["status"])
        if body["status"] == "Finished":
            break
    assert "Running" in states
    assert states[-1] == "Finished"
    assert sizes == sorted(sizes)
    assert sizes[-1] == 8
    assert body["statuses"] == {"Completed": 6, "Failed": 2}
    done = next(r for r in body["results"]["LdFetchReviews"] if r["status"] == "Completed")
    assert done["results"][0]["reviews"]
    assert done["job-id"] in job_ids


async def test_commit_errors_and_adding_after_commit(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    bl = BL(sim, session)
    batch_id = await bl.create()
    status, body = await bl.send("PUT", "/v4/batch", **{"batch-id": batch_id})
    assert (status, body) == (
        400,
        {
            "success": False,
            "errors": {"INVALID_JOBS_COUNT": "Batch can't be committed with no jobs"},
        },
    )
    await bl.add(batch_id)
    status, _ = await bl.send("PUT", "/v4/batch", **{"batch-id": batch_id})
    assert status == 200
    status, body = await bl.send("PUT", "/v4/batch", **{"batch-id": batch_id})
    assert status == 400
    assert "BATCH_ALREADY_COMMITTED" in body["errors"]
    status, body = await bl.add(batch_id)
    assert status == 400
    assert body["success"] is False


async def test_bad_job_params_and_unknown_batches(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    bl = BL(sim, session)
    batch_id = await bl.create()
    status, body = await bl.send(
        "POST", "/v4/ld/fetch-reviews", **{"batch-id": batch_id, "country": "United States"}
    )
    assert status == 400
    assert set(body["errors"]) == {"INVALID_PROFILE_URL", "INVALID_COUNTRY"}
    status, body = await bl.send("GET", "/v4/batch", **{"batch-id": "99999"})
    assert (status, body["errors"]) == (404, {"INVALID_BATCH_ID": "Batch ID not found"})
    status, _ = await bl.send("GET", "/v4/batch")
    assert status == 400
    async with session.get(bl.base + "/v4/ld/fetch-reviews", params={"api-key": bl.key}) as r:
        assert r.status == 405
        assert "INVALID_METHOD" in (await r.json())["errors"]


async def test_delete_and_stop(sim: SimServer, session: aiohttp.ClientSession) -> None:
    bl = BL(sim, session)
    batch_id = await bl.create()
    await bl.add(batch_id)
    status, _ = await bl.send("PUT", "/v4/batch/stop", **{"batch-id": batch_id})
    assert status == 400
    await bl.send("PUT", "/v4/batch", **{"batch-id": batch_id})
    status, _ = await bl.send("PUT", "/v4/batch/stop", **{"batch-id": batch_id})
    assert status == 200
    await sim.advance(3600)
    _, body = await bl.send("GET", "/v4/batch", **{"batch-id": batch_id})
    assert body["status"] == "Stopped"
    assert body["statuses"] == {"Pending": 1}
    status, _ = await bl.send("DELETE", "/v4/batch", **{"batch-id": batch_id})
    assert status == 200
    status, body = await bl.send("DELETE", "/v4/batch", **{"batch-id": batch_id})
    assert status == 404
    assert body["errors"] == {"INVALID_BATCH_ID": "Batch ID not found"}


async def test_stop_on_job_error(sim: SimServer, session: aiohttp.ClientSession) -> None:
    sim.config.brightlocal.profile.record_failure_rate = 0.5
    bl = BL(sim, session)
    batch_id = await bl.create(**{"stop-on-job-error": "1"})
    for i in range(6):
        await bl.add(batch_id, f"https://g.co/{i}")
    await bl.send("PUT", "/v4/batch", **{"batch-id": batch_id})
    await sim.advance(3600)
    _, body = await bl.send("GET", "/v4/batch", **{"batch-id": batch_id})
    assert body["status"] == "Stopped"
    assert body["statuses"].get("Failed") == 1
    assert body["statuses"].get("Pending", 0) > 0


async def test_batch_id_as_int_when_configured(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    sim.config.brightlocal.batch_id_as_string = False
    bl = BL(sim, session)
    status, body = await bl.send("POST", "/v4/batch")
    assert isinstance(body["batch-id"], int)
    status, _ = await bl.add(str(body["batch-id"]))
    assert status == 201
