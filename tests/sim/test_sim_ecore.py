from __future__ import annotations

import csv
import io
from typing import Any

import aiohttp
import pytest

from enrichwatch.sim import SimServer

BASE = "/api/v1/enrichment"


def rows(n: int) -> list[dict[str, str]]:
    return [{"first_name": f"F{i}", "last_name": f"L{i}", "company_name": "Acme"} for i in range(n)]


async def call(
    sim: SimServer, session: aiohttp.ClientSession, method: str, path: str, **kwargs: Any
) -> tuple[int, Any]:
    headers = {"Authorization": f"{sim.config.ecore.auth_scheme} {sim.api_keys['ecore']}"}
    async with session.request(
        method, sim.base_urls["ecore"] + path, headers=headers, **kwargs
    ) as response:
        if response.content_type == "text/csv":
            return response.status, await response.text()
        return response.status, await response.json()


async def submit(sim: SimServer, session: aiohttp.ClientSession, n: int, **extra: Any) -> str:
    status, body = await call(
        sim,
        session,
        "POST",
        f"{BASE}/submit/",
        json={"category": "contact", "records": rows(n), **extra},
    )
    assert status == 201, body
    assert body["status"] == "queued"
    job_id: str = body["job_id"]
    return job_id


async def finish(sim: SimServer, job_id: str) -> None:
    end = sim.ecore.jobs[job_id].job.terminal_at()
    assert end is not None
    await sim.advance_to(end + 1)


async def test_auth(sim: SimServer, session: aiohttp.ClientSession) -> None:
    url = sim.base_urls["ecore"] + f"{BASE}/status/"
    async with session.get(url, headers={"Authorization": "Bearer wrong"}) as response:
        assert response.status == 401
        assert await response.json() == {"detail": "Invalid token."}
    sim.config.ecore.auth_scheme = "Token"
    async with session.get(url, headers={"Authorization": f"Bearer {sim.api_keys['ecore']}"}) as r:
        assert r.status == 401
    async with session.get(url, headers={"Authorization": f"Token {sim.api_keys['ecore']}"}) as r:
        assert r.status == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"records": rows(1)}, "category"),
        ({"category": "people", "records": rows(1)}, "category"),
        ({"category": "contact", "records": []}, "records"),
        ({"category": "contact", "records": ["x"]}, "records"),
        ({"category": "contact", "records": rows(1), "criteria": {"titles": ["CTO"]}}, "criteria"),
    ],
)
async def test_submit_validation(
    sim: SimServer, session: aiohttp.ClientSession, body: dict[str, Any], field: str
) -> None:
    status, answer = await call(sim, session, "POST", f"{BASE}/submit/", json=body)
    assert status == 400
    assert field in answer


async def test_insufficient_wallet(sim: SimServer, session: aiohttp.ClientSession) -> None:
    sim.config.ecore.wallet = 12
    status, body = await call(
        sim, session, "POST", f"{BASE}/submit/", json={"category": "contact", "records": rows(50)}
    )
    assert status == 402
    assert body == {
        "error": "Insufficient credits. You need 50 credits but have 12.",
        "required": 50,
        "balance": 12,
    }
    await submit(sim, session, 12)
    assert sim.config.ecore.wallet == 0


async def test_lifecycle_and_result_pages(sim: SimServer, session: aiohttp.ClientSession) -> None:
    job_id = await submit(sim, session, 450)
    status, body = await call(sim, session, "GET", f"{BASE}/result/{job_id}/")
    assert (status, body) == (400, {"error": "Results not ready."})
    seen = []
    for _ in range(100):
        _, body = await call(sim, session, "GET", f"{BASE}/status/{job_id}/")
        seen.append(body["status"])
        if body["status"] == "completed":
            break
        await sim.advance(5)
    assert seen[0] == "queued"
    assert "in-progress" in seen
    assert set(body) == {"job_id", "status", "submitted_at", "updated_at"}
    _, page = await call(sim, session, "GET", f"{BASE}/result/{job_id}/", params={"page_size": 200})
    assert (page["total_records"], page["page"], page["page_size"], len(page["data"])) == (
        450,
        1,
        200,
        200,
    )
    _, last = await call(
        sim, session, "GET", f"{BASE}/result/{job_id}/", params={"page": 3, "page_size": 200}
    )
    assert len(last["data"]) == 50
    _, beyond = await call(
        sim, session, "GET", f"{BASE}/result/{job_id}/", params={"page": 4, "page_size": 200}
    )
    assert beyond["data"] == []
    _, default = await call(sim, session, "GET", f"{BASE}/result/{job_id}/")
    assert default["page_size"] == 50
    row = default["data"][0]
    assert row["imported_first_name"] == "F0"
    assert "enrichment_status" not in row
    for bad in ({"page_size": 201}, {"page_size": 0}, {"page": 0}):
        status, body = await call(sim, session, "GET", f"{BASE}/result/{job_id}/", params=bad)
        assert status == 400


async def test_exactly_one_page_and_csv(sim: SimServer, session: aiohttp.ClientSession) -> None:
    job_id = await submit(sim, session, 50)
    await finish(sim, job_id)
    _, page = await call(sim, session, "GET", f"{BASE}/result/{job_id}/")
    assert len(page["data"]) == page["total_records"] == 50
    status, text = await call(
        sim, session, "GET", f"{BASE}/result/{job_id}/", params={"report_type": "csv"}
    )
    assert status == 200
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert len(parsed) == 50
    header = text.splitlines()[0].split(",")
    assert header[:3] == ["imported_company_name", "imported_first_name", "imported_last_name"]
    assert "enrichment_status" in header
    assert {r["enrichment_status"] for r in parsed} <= {"enriched", "not_enriched"}


async def test_pause_gives_partial_results_and_resume_finishes(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    job_id = await submit(sim, session, 400)
    control = "/api/v1/enrichment-control/"
    status, body = await call(
        sim, session, "POST", control, json={"csv_file_id": job_id, "action": "pause"}
    )
    assert status == 400
    ejob = sim.ecore.jobs[job_id]
    await sim.advance_to(ejob.job.run_start + 30)
    status, body = await call(
        sim, session, "POST", control, json={"csv_file_id": job_id, "action": "pause"}
    )
    assert (status, body["status"]) == (200, "paused")
    await sim.advance(3600)
    _, state = await call(sim, session, "GET", f"{BASE}/status/{job_id}/")
    assert state["status"] == "paused"
    _, partial = await call(
        sim, session, "GET", f"{BASE}/result/{job_id}/", params={"page_size": 200}
    )
    assert 0 < partial["total_records"] < 400
    status, _ = await call(
        sim, session, "POST", control, json={"csv_file_id": job_id, "action": "stop"}
    )
    assert status == 400
    status, _ = await call(
        sim, session, "POST", control, json={"csv_file_id": "nope", "action": "resume"}
    )
    assert status == 404
    status, body = await call(
        sim, session, "POST", control, json={"csv_file_id": job_id, "action": "resume"}
    )
    assert (status, body["status"]) == (200, "in-progress")
    await finish(sim, job_id)
    _, state = await call(sim, session, "GET", f"{BASE}/status/{job_id}/")
    assert state["status"] == "completed"


async def test_list_newest_first_and_not_found(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    first = await submit(sim, session, 1)
    await sim.advance(1)
    second = await submit(sim, session, 1, category="account")
    _, listing = await call(sim, session, "GET", f"{BASE}/status/")
    assert [j["job_id"] for j in listing] == [second, first]
    for path in (f"{BASE}/status/nope/", f"{BASE}/result/nope/"):
        status, body = await call(sim, session, "GET", path)
        assert (status, body) == (404, {"detail": "Not found."})


async def test_daily_quota_for_test_tokens(sim: SimServer, session: aiohttp.ClientSession) -> None:
    sim.config.ecore.daily_quota = 2
    codes = [(await call(sim, session, "GET", f"{BASE}/status/"))[0] for _ in range(3)]
    assert codes == [200, 200, 429]
    assert [v.kind for v in sim.stats.rate_limit_violations("ecore")] == ["quota"]
    await sim.advance(86_400)
    assert (await call(sim, session, "GET", f"{BASE}/status/"))[0] == 200


async def test_each_token_is_an_account_that_sees_only_its_own_jobs(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    ours = await submit(sim, session, 2)
    sim.config.ecore.other_account_keys = ("another-users-token",)
    theirs = sim.ecore.add_job(rows(1), account="another-users-token").job_id
    url = sim.base_urls["ecore"] + BASE
    other = {"Authorization": "Bearer another-users-token"}
    async with session.get(f"{url}/status/", headers=other) as response:
        assert [j["job_id"] for j in await response.json()] == [theirs]
    for path in (f"/status/{ours}/", f"/result/{ours}/"):
        async with session.get(url + path, headers=other) as response:
            assert (response.status, await response.json()) == (404, {"detail": "Not found."})
    control = sim.base_urls["ecore"] + "/api/v1/enrichment-control/"
    pause = {"csv_file_id": ours, "action": "pause"}
    async with session.post(control, json=pause, headers=other) as response:
        assert response.status == 404
    _, listing = await call(sim, session, "GET", f"{BASE}/status/")
    assert [j["job_id"] for j in listing] == [ours]
    status, _ = await call(sim, session, "GET", f"{BASE}/status/{theirs}/")
    assert status == 404
