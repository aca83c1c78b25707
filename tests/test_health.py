from __future__ import annotations

from tests.conftest import track


async def test_healthz_and_readyz(server, http):
    async with http.get(f"{server}/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}
    async with http.get(f"{server}/readyz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ready"}


async def test_readyz_is_503_when_the_schema_is_not_current(services, server, http):
    await services.store._writer.run(lambda conn: conn.execute("PRAGMA user_version = 0"))
    async with http.get(f"{server}/readyz") as response:
        assert response.status == 503
        assert "schema" in (await response.json())["reason"]


async def test_metrics_count_callbacks_rejections_and_latency(server, http):
    job = await track(http, server)
    for _ in range(2):
        async with http.post(job["callback_url"], data=b"{}") as response:
            assert response.status == 200
    async with http.post(f"{server}/hooks/crustdata/bad-token", data=b"{}") as response:
        assert response.status == 404
    async with http.get(f"{server}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    assert 'enrichwatch_callbacks_total{outcome="accepted",vendor="crustdata"} 1.0' in text
    assert 'enrichwatch_callbacks_total{outcome="duplicate",vendor="crustdata"} 1.0' in text
    assert (
        'enrichwatch_callback_rejections_total{reason="unknown_token",vendor="crustdata"} 1.0'
        in text
    )
    hooks = 'method="POST",route="/hooks/{vendor}/{token}"'
    assert f"enrichwatch_http_request_duration_seconds_count{{{hooks}}} 3.0" in text
    assert job["callback_url"].rsplit("/", 1)[1] not in text


async def test_metrics_keep_the_counters_when_the_database_cannot_be_read(services, server, http):
    """A scrape while the file cannot be read still serves the process's counters, says so in
    `enrichwatch_database_up`, and leaves the backlog gauges out instead of repeating the last
    scrape's figures; once the file reads again, so are they."""
    await track(http, server)
    await services.store._writer.run(lambda conn: conn.execute("ALTER TABLE work RENAME TO gone"))
    async with http.get(f"{server}/metrics") as response:
        assert response.status == 200
        unreadable = await response.text()
    assert "enrichwatch_database_up 0.0" in unreadable
    assert 'enrichwatch_http_requests_total{method="POST",route="/api/jobs"' in unreadable
    assert "enrichwatch_open_jobs{" not in unreadable
    assert "enrichwatch_work_items{" not in unreadable

    await services.store._writer.run(lambda conn: conn.execute("ALTER TABLE gone RENAME TO work"))
    async with http.get(f"{server}/metrics") as response:
        readable = await response.text()
    assert "enrichwatch_database_up 1.0" in readable
    assert 'enrichwatch_open_jobs{state="submitted",vendor="crustdata"} 1.0' in readable
    assert 'enrichwatch_work_items{kind="notify",state="pending"} 0.0' in readable
