"""A stop with a download under way: the grace period bounds it, and the download it cuts
off is logged as cut off (499), not as a failure of the service."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3

from enrichwatch.models import VendorName
from enrichwatch.store import Store
from tests.conftest import API_TOKEN, started


async def test_a_download_still_going_at_a_stop_is_cut_off_and_logged_as_499(tmp_path):
    db = tmp_path / "stop.db"
    async with Store.open(db) as store:
        job, _ = await store.track_job(VendorName.ECORE, "big", None)
    conn = sqlite3.connect(db)
    with conn:
        conn.executemany(
            "INSERT INTO results (job_id, position, input_id, status, data) VALUES (?, ?, ?, ?, ?)",
            (
                (job.id, n, f"r{n}", "ok", json.dumps({"n": n, "pad": "x" * 200}))
                for n in range(40_000)
            ),
        )
    conn.close()
    env = {
        **os.environ,
        "ENRICHWATCH_DB": str(db),
        "ENRICHWATCH_PORT": "0",
        "ENRICHWATCH_API_TOKEN": API_TOKEN,
        "ENRICHWATCH_LOG_FORMAT": "json",
        "ENRICHWATCH_SHUTDOWN_TIMEOUT": "1",
    }
    async with started(["receiver"], env, tmp_path / "receiver.log") as receiver:
        host, port = receiver.url.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"GET /api/jobs/{job.id}/results HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {API_TOKEN}\r\n\r\n".encode()
        )
        await writer.drain()
        # The answer has begun; the client then reads no more, as a slow one would.
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        log = await receiver.stop()
        writer.close()
    (line,) = [
        json.loads(text)
        for text in log.splitlines()
        if '"request_finished"' in text and "/results" in text
    ]
    assert line["status"] == 499
    assert '"request_failed"' not in log
