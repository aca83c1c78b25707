"""A real `enrichwatch serve` process, killed with SIGKILL mid-stream: every acknowledged
callback is in the database after restart, and the service starts cleanly."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import aiohttp

from tests.conftest import spawn, started

TOKEN = "crash-test-token-000000"


def serve_env(db: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ENRICHWATCH_DB": str(db),
        "ENRICHWATCH_PORT": "0",
        "ENRICHWATCH_API_TOKEN": TOKEN,
        "ENRICHWATCH_LOG_LEVEL": "warning",
    }


async def test_sigkill_mid_stream_loses_no_acknowledged_callback(tmp_path):
    db = tmp_path / "crash.db"
    acknowledged: set[bytes] = set()
    enough = asyncio.Event()

    log = tmp_path / "serve.log"
    async with started(["serve"], serve_env(db), log) as service, aiohttp.ClientSession() as http:
        callback_urls = []
        for n in range(5):
            async with http.post(
                f"{service.url}/api/jobs",
                json={"vendor": "crustdata", "vendor_job_id": f"b-{n}"},
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as response:
                callback_urls.append((await response.json())["callback_url"])

        async def sender(worker: int):
            n = 0
            while True:
                body = f'{{"worker": {worker}, "n": {n}}}'.encode()
                try:
                    async with http.post(callback_urls[n % 5], data=body) as response:
                        if response.status == 200:
                            acknowledged.add(body)
                except aiohttp.ClientError:
                    return  # the server is gone
                if len(acknowledged) >= 300:
                    enough.set()
                n += 1

        senders = [asyncio.create_task(sender(w)) for w in range(20)]
        await asyncio.wait_for(enough.wait(), 60)
        await service.kill()
        await asyncio.wait_for(asyncio.gather(*senders), 30)

    assert len(acknowledged) >= 300
    async with started(["serve"], serve_env(db), log) as service, aiohttp.ClientSession() as http:
        async with http.get(f"{service.url}/readyz") as response:
            assert response.status == 200
        conn = sqlite3.connect(db)
        stored = {row[0] for row in conn.execute("SELECT body FROM inbox")}
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        events = conn.execute("SELECT COUNT(*) FROM events WHERE type = 'webhook.received'")
        assert events.fetchone()[0] == len(stored)
        conn.close()
    assert acknowledged <= stored


async def test_sigterm_stops_cleanly(tmp_path):
    env = serve_env(tmp_path / "term.db")
    async with started(["serve"], env, tmp_path / "serve.log") as service:
        async with aiohttp.ClientSession() as http, http.get(f"{service.url}/healthz") as response:
            assert response.status == 200
        log = await service.stop()
    assert "Traceback" not in log


async def test_bad_setting_fails_at_start_naming_it(tmp_path):
    process = await spawn(
        "serve",
        env={**os.environ, "ENRICHWATCH_PORT": "eighty", "ENRICHWATCH_DB": str(tmp_path / "x.db")},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    assert process.returncode != 0
    assert "ENRICHWATCH_PORT" in stderr.decode()
    assert "Traceback" not in stderr.decode()
    assert not (tmp_path / "x.db").exists()


async def test_receiver_alone_stores_callbacks_and_stops_cleanly(tmp_path):
    db = tmp_path / "receiver.db"
    async with (
        started(["receiver"], serve_env(db), tmp_path / "receiver.log") as receiver,
        aiohttp.ClientSession() as http,
    ):
        async with http.post(
            f"{receiver.url}/api/jobs",
            json={"vendor": "ecore", "vendor_job_id": "e-1"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as response:
            callback_url = (await response.json())["callback_url"]
        async with http.post(callback_url, data=b"{}") as response:
            assert response.status == 200
        await receiver.stop()
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM inbox").fetchone()[0] == 1
    conn.close()
