from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import aiohttp
import pytest

from enrichwatch.sim import SimConfig, SimServer

URLS = [f"https://www.linkedin.com/in/person-{i}/" for i in range(40)]


def headers(sim: SimServer, version: bool = True) -> dict[str, str]:
    out = {"Authorization": f"Bearer {sim.api_keys['crustdata']}"}
    if version:
        out["x-api-version"] = "2025-11-01"
    return out


async def submit(
    sim: SimServer, session: aiohttp.ClientSession, path: str = "/batch/person/enrich", **body: Any
) -> aiohttp.ClientResponse:
    body.setdefault("professional_network_profile_urls", URLS)
    return await session.post(sim.base_urls["crustdata"] + path, json=body, headers=headers(sim))


async def status(sim: SimServer, session: aiohttp.ClientSession, batch_id: str) -> dict[str, Any]:
    async with session.get(
        f"{sim.base_urls['crustdata']}/batch/{batch_id}", headers=headers(sim, version=False)
    ) as response:
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


async def finish(sim: SimServer, session: aiohttp.ClientSession, batch_id: str) -> dict[str, Any]:
    end = sim.crustdata.jobs[batch_id].job.terminal_at()
    assert end is not None
    await sim.advance(end - sim.clock.now() + 1)
    return await status(sim, session, batch_id)


async def test_rejects_missing_or_wrong_key(sim: SimServer, session: aiohttp.ClientSession) -> None:
    url = sim.base_urls["crustdata"] + "/batch"
    for auth in ({}, {"Authorization": "Bearer nope"}):
        async with session.get(url, headers=auth) as response:
            assert response.status == 401
            assert (await response.json())["error"]["type"] == "unauthorized"
            assert "x-ratelimit-limit" in response.headers


async def test_submit_requires_version_header(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    async with session.post(
        sim.base_urls["crustdata"] + "/batch/person/enrich",
        json={"professional_network_profile_urls": URLS},
        headers=headers(sim, version=False),
    ) as response:
        assert response.status == 400
        body = await response.json()
        assert body["error"]["message"] == "Missing required header: x-api-version"


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/batch/person/enrich", {"professional_network_profile_urls": None}, "exactly one"),
        (
            "/batch/person/enrich",
            {"business_emails": ["a@b.com"], "professional_network_profile_urls": URLS},
            "exactly one",
        ),
        ("/batch/person/enrich", {"chunk_size": 5}, "chunk_size must be between 10 and 1000"),
        ("/batch/person/enrich", {"chunk_size": 1001}, "chunk_size must be between 10 and 1000"),
        ("/batch/person/enrich", {"fields": ["no_such.field"]}, "Unsupported field"),
        ("/batch/person/contact/enrich", {}, "fields is required"),
        (
            "/batch/person/contact/enrich",
            {"fields": ["business_email"], "professional_network_profile_urls": URLS * 8},
            "Maximum 300",
        ),
        ("/batch/company/enrich", {"professional_network_profile_urls": None}, "exactly one"),
        ("/batch/person/enrich", {"webhook_url": "ftp://x"}, "webhook_url"),
    ],
)
async def test_submit_validation(
    sim: SimServer, session: aiohttp.ClientSession, path: str, body: dict[str, Any], needle: str
) -> None:
    async with await submit(sim, session, path, **body) as response:
        assert response.status == 400
        error = (await response.json())["error"]
        assert needle in error["message"]
        if needle == "Unsupported field":
            assert "basic_profile" in error["metadata"]["available_fields"]
    assert sim.crustdata.jobs == {}


async def test_identifier_cap_and_comma_separated_string(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    too_many = [f"https://www.linkedin.com/in/p{i}" for i in range(10_001)]
    async with await submit(sim, session, professional_network_profile_urls=too_many) as response:
        assert response.status == 400
    async with await submit(
        sim,
        session,
        "/batch/company/enrich",
        professional_network_profile_urls=None,
        domains="acme.com, globex.com",
    ) as response:
        assert response.status == 200
        body = await response.json()
    assert body["identifier_count"] == 2
    assert body["entity"] == "company"


async def test_job_progresses_with_the_clock_to_completed(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    async with await submit(sim, session, fields=["basic_profile.name"], chunk_size=10) as response:
        created = await response.json()
    assert created["status"] == "pending"
    assert created["status_url"] == f"/batch/{created['batch_id']}"
    assert (await status(sim, session, created["batch_id"]))["status"] == "pending"
    seen, processed = [], []
    for _ in range(40):
        await sim.advance(5)
        body = await status(sim, session, created["batch_id"])
        seen.append((body["status"], body["result_count"]))
        processed.append(sim.crustdata.views()[0].processed)
        if body["status"] == "completed":
            break
    statuses = [s for s, _ in seen]
    assert "processing" in statuses
    assert statuses[-1] == "completed"
    counts = [c for _, c in seen]
    assert counts == sorted(counts)
    assert all(n % 10 == 0 for n in processed[:-1])
    assert body["entities_fulfilled"] == body["result_count"] < 40
    assert body["completed_at"] > body["created_at"]
    assert "download_url" in body
    assert "error_message" not in body


async def test_multipart_gzip_download_without_content_encoding(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    sim.config.crustdata.part_size = 7
    async with await submit(sim, session) as response:
        batch_id = (await response.json())["batch_id"]
    body = await finish(sim, session, batch_id)
    count = body["result_count"]
    assert len(body["download_urls"]) == -(-count // 7)
    assert body["download_url"].startswith(sim.storage.base_url)
    assert not sim.storage.base_url.startswith(sim.url)
    parts: list[str] = []
    for url in body["download_urls"]:
        async with session.get(url) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/gzip"
            assert "Content-Encoding" not in response.headers
            raw = await response.read()
        assert raw[:2] == b"\x1f\x8b"
        parts.extend(gzip.decompress(raw).decode().splitlines())
    async with session.get(body["download_url"]) as response:
        merged = gzip.decompress(await response.read()).decode().splitlines()
    assert parts == merged
    assert len(merged) == count
    first = json.loads(merged[0])
    assert set(first) == {"original_identifier", "internal_id", "data"}
    assert first["original_identifier"] in URLS
    assert "basic_profile" in first["data"]
    assert not any(r.had_authorization for r in sim.storage.requests)


async def test_contact_enrich_lists_every_profile(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    async with await submit(
        sim, session, "/batch/person/contact/enrich", fields=["business_email"]
    ) as response:
        created = await response.json()
    assert created["action"] == "contact_enrich"
    body = await finish(sim, session, created["batch_id"])
    assert body["result_count"] == len(URLS)
    async with session.get(body["download_url"]) as response:
        lines = gzip.decompress(await response.read()).decode().splitlines()
    empty = [json.loads(line) for line in lines if not json.loads(line)["data"]["business_email"]]
    assert len(empty) == len(URLS) - body["entities_fulfilled"]


async def test_links_expire_and_fresh_status_gives_fresh_links(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    sim.config.crustdata.link_ttl = 3600
    async with await submit(sim, session) as response:
        batch_id = (await response.json())["batch_id"]
    body = await finish(sim, session, batch_id)
    await sim.advance(3601)
    async with session.get(body["download_url"]) as response:
        assert response.status == 403
        text = await response.text()
    assert "<Code>AccessDenied</Code>" in text
    assert "Request has expired" in text
    fresh = await status(sim, session, batch_id)
    async with session.get(fresh["download_url"]) as response:
        assert response.status == 200
    tampered = fresh["download_url"].replace("X-Amz-Expires=3600", "X-Amz-Expires=9999")
    async with session.get(tampered) as response:
        assert response.status == 403
        assert "SignatureDoesNotMatch" in await response.text()


async def test_storage_rejects_and_records_authorization_header(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    async with await submit(sim, session) as response:
        batch_id = (await response.json())["batch_id"]
    body = await finish(sim, session, batch_id)
    async with session.get(body["download_url"], headers=headers(sim)) as response:
        assert response.status == 400
        assert "InvalidArgument" in await response.text()
    assert [r.had_authorization for r in sim.storage.requests] == [True]


async def test_zero_results_still_links_to_missing_file(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    sim.config.crustdata.profile.record_failure_rate = 1.0
    async with await submit(sim, session) as response:
        batch_id = (await response.json())["batch_id"]
    body = await finish(sim, session, batch_id)
    assert body["status"] == "completed"
    assert body["result_count"] == 0
    for url in [body["download_url"], *body["download_urls"]]:
        async with session.get(url) as response:
            assert response.status == 404
            assert "NoSuchKey" in await response.text()


async def test_failed_job_has_error_message(sim: SimServer, session: aiohttp.ClientSession) -> None:
    sim.config.crustdata.profile.job_failure_rate = 1.0
    async with await submit(sim, session) as response:
        batch_id = (await response.json())["batch_id"]
    body = await finish(sim, session, batch_id)
    assert body["status"] == "failed"
    assert body["error_message"]
    assert "download_url" not in body


async def test_list_is_newest_first_with_cursor_and_filters(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    sim.config.crustdata.max_active_jobs = 100
    ids = []
    for _ in range(5):
        async with await submit(sim, session) as response:
            ids.append((await response.json())["batch_id"])
        await sim.advance(1)
    url = sim.base_urls["crustdata"] + "/batch"
    auth = headers(sim, version=False)
    async with session.get(url, params={"limit": 2}, headers=auth) as response:
        page = await response.json()
    assert [j["batch_id"] for j in page["jobs"]] == ids[::-1][:2]
    assert page["has_more"] is True
    assert "download_url" not in page["jobs"][0]
    async with session.get(
        url, params={"limit": 2, "cursor": page["next_cursor"]}, headers=auth
    ) as response:
        second = await response.json()
    assert [j["batch_id"] for j in second["jobs"]] == ids[::-1][2:4]
    async with session.get(url, params={"limit": 0}, headers=auth) as response:
        assert len((await response.json())["jobs"]) == 1
    async with session.get(url, params={"limit": 500}, headers=auth) as response:
        everything = await response.json()
    assert len(everything["jobs"]) == 5
    assert everything == {**everything, "has_more": False, "next_cursor": None}
    async with session.get(url, params={"status": "completed"}, headers=auth) as response:
        assert (await response.json())["jobs"] == []
    async with session.get(url, params={"status": "done"}, headers=auth) as response:
        assert response.status == 400


async def test_sixth_active_job_is_refused(sim: SimServer, session: aiohttp.ClientSession) -> None:
    for _ in range(5):
        async with await submit(sim, session) as response:
            assert response.status == 200
    async with await submit(sim, session) as response:
        assert response.status == 429
        assert (await response.json())["error"]["type"] == "too_many_active_jobs"
    assert [v.kind for v in sim.stats.rate_limit_violations("crustdata")] == ["concurrency"]
    await sim.advance(3600)
    async with await submit(sim, session) as response:
        assert response.status == 200


async def test_sliding_window_rate_limit_with_headers(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    sim.config.crustdata.rpm = 3
    url = sim.base_urls["crustdata"] + "/batch"
    auth = headers(sim, version=False)
    remaining = []
    for _ in range(3):
        async with session.get(url, headers=auth) as response:
            assert response.status == 200
            remaining.append(response.headers["x-ratelimit-remaining"])
            assert response.headers["x-ratelimit-limit"] == "3"
    assert remaining == ["2", "1", "0"]
    await sim.advance(10)
    async with session.get(url, headers=auth) as response:
        assert response.status == 429
        assert response.headers["x-ratelimit-remaining"] == "0"
        assert response.headers["x-ratelimit-reset"] == "50"
        assert (await response.json())["error"]["type"] == "rate_limit_exceeded"
    assert [v.kind for v in sim.stats.rate_limit_violations()] == ["rate_limit"]
    await sim.advance(50)
    async with session.get(url, headers=auth) as response:
        assert response.status == 200


async def test_insufficient_credits(sim: SimServer, session: aiohttp.ClientSession) -> None:
    sim.config.crustdata.credits = 10
    async with await submit(sim, session) as response:
        assert response.status == 402
        error = (await response.json())["error"]
    assert error["type"] == "insufficient_credits"
    assert error["metadata"] == {"required": 40, "available": 10}


async def test_injected_faults(sim: SimServer, session: aiohttp.ClientSession) -> None:
    sim.set_fault("crustdata", rate_limit=1, retry_after=7, server_errors=1, truncate_gzip=1)
    url = sim.base_urls["crustdata"] + "/batch"
    auth = headers(sim, version=False)
    async with session.get(url, headers=auth) as response:
        assert response.status == 503
    async with session.get(url, headers=auth) as response:
        assert response.status == 429
        assert response.headers["x-ratelimit-reset"] == "7"
    async with session.get(url, headers=auth) as response:
        assert response.status == 200
    assert sim.stats.rate_limit_violations() == []
    async with await submit(sim, session) as response:
        batch_id = (await response.json())["batch_id"]
    body = await finish(sim, session, batch_id)
    async with session.get(body["download_url"]) as response:
        truncated = await response.read()
    with pytest.raises(EOFError):
        gzip.decompress(truncated)
    async with session.get(body["download_url"]) as response:
        assert zlib.decompress(await response.read(), 31)


async def test_expire_links_fault(sim: SimServer, session: aiohttp.ClientSession) -> None:
    async with await submit(sim, session) as response:
        batch_id = (await response.json())["batch_id"]
    body = await finish(sim, session, batch_id)
    sim.set_fault("crustdata", expire_links=True)
    async with session.get(body["download_url"]) as response:
        assert response.status == 403
    sim.clear_faults()
    async with session.get(body["download_url"]) as response:
        assert response.status == 200


async def test_large_job_streams_in_parts(sim: SimServer, session: aiohttp.ClientSession) -> None:
    crust = sim.crustdata.add_job(30_000)
    body = await finish(sim, session, crust.batch_id)
    assert len(body["download_urls"]) == -(-body["result_count"] // 5000)
    lines = 0
    decompressor = zlib.decompressobj(31)
    async with session.get(body["download_urls"][-1]) as response:
        async for chunk in response.content.iter_chunked(1 << 14):
            lines += decompressor.decompress(chunk).count(b"\n")
    assert decompressor.eof
    assert lines == body["result_count"] - 5000 * (len(body["download_urls"]) - 1)


async def test_same_seed_gives_same_ids_and_timeline(session: aiohttp.ClientSession) -> None:
    timelines = []
    for _ in range(2):
        async with SimServer(SimConfig(seed=99)) as sim:
            async with await submit(sim, session) as response:
                batch_id = (await response.json())["batch_id"]
            body = await finish(sim, session, batch_id)
            timelines.append((batch_id, body["completed_at"], body["result_count"]))
    assert timelines[0] == timelines[1]
