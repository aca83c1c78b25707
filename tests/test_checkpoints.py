"""WAL checkpoints: off the event loop, and the log stays bounded under constant writes."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest

from enrichwatch.store.checkpointer import CheckpointRun
from enrichwatch.store.writer import Writer

LIMIT = 256 * 1024
ROW = "x" * 2000


def wal_size(path: Path) -> int:
    try:
        return os.stat(f"{path}-wal").st_size
    except FileNotFoundError:
        return 0


def insert_rows(count: int, start: int):
    def op(conn: sqlite3.Connection) -> None:
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [(f"row-{start + n}", ROW) for n in range(count)],
        )

    return op


def autocheckpoint(conn: sqlite3.Connection) -> int:
    value: int = conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    return value


async def test_the_wal_stays_bounded_under_sustained_writes(tmp_path):
    path = tmp_path / "bounded.db"
    writer = Writer(path, checkpoint_wal_bytes=LIMIT)
    await writer.start()
    try:
        assert await writer.run(autocheckpoint) == 0  # no commit checkpoints on the loop
        largest, written = 0, 0
        # About 40 MB of rows, written back to back with several writes in flight at once.
        for batch in range(200):
            await asyncio.gather(
                *(writer.run(insert_rows(25, (batch * 4 + k) * 25)) for k in range(4))
            )
            written += 4 * 25 * len(ROW)
            largest = max(largest, wal_size(path))
        runs = list(writer.checkpoints.runs)
    finally:
        await writer.close()
    assert written > 100 * LIMIT
    # Without checkpoints the log would hold every byte written (over 100 limits); bounded
    # means a few limits. Writes wait only while a checkpoint attempt is under way, and on a
    # starved machine an attempt can give up, so allow some slack over BEHIND_FACTOR.
    assert largest < 12 * LIMIT, f"WAL reached {largest} bytes"
    assert any(run.caught_up for run in runs)
    loop_thread = threading.get_ident()
    assert all(run.thread_id != loop_thread for run in runs)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM meta").fetchone()[0] == 200 * 4 * 25
    finally:
        conn.close()


async def test_a_checkpoint_waiting_for_a_reader_never_holds_the_loop(tmp_path):
    """A reader holding an old snapshot makes TRUNCATE wait its whole lock wait, a long
    checkpoint every time; the loop must keep turning through it, and writes must go on."""
    path = tmp_path / "reader.db"
    writer = Writer(path, checkpoint_wal_bytes=LIMIT)
    await writer.start()
    loop = asyncio.get_running_loop()
    finished: asyncio.Queue[CheckpointRun] = asyncio.Queue()

    def on_run(run: CheckpointRun) -> None:
        loop.call_soon_threadsafe(finished.put_nowait, run)

    writer.checkpoints.on_run = on_run
    ticks: list[float] = []

    async def ticking() -> None:
        while True:
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.001)

    ticker = asyncio.create_task(ticking())
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        await writer.run(insert_rows(10, 0))
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM meta").fetchone()  # holds its snapshot open
        start = 10
        while wal_size(path) < LIMIT:
            await writer.run(insert_rows(25, start))
            start += 25
        blocked = await asyncio.wait_for(finished.get(), 10)
        # Writes made while the reader pins the log still commit (off the loop if need be).
        await asyncio.wait_for(writer.run(insert_rows(1, start)), 10)
        reader.execute("COMMIT")
        await writer.run(insert_rows(25, start + 1))  # past the limit again: checkpoint anew
        while True:
            run = await asyncio.wait_for(finished.get(), 10)
            if run.caught_up:
                break
    finally:
        ticker.cancel()
        reader.close()
        await writer.close()
    assert not blocked.caught_up
    assert blocked.thread_id != threading.get_ident()
    # It waited the whole lock wait for the reader, and the loop ticked all the while.
    assert blocked.ended - blocked.started >= 0.2
    during = [tick for tick in ticks if blocked.started < tick < blocked.ended]
    assert len(during) >= 2


WRITER_SCRIPT = """
import asyncio, os, sys
from pathlib import Path
from enrichwatch.store.writer import Writer

def say(line):
    # One write per line: the checkpointer thread says its lines too, and print() writes a
    # line and its newline apart, so two threads' lines could interleave.
    os.write(1, (line + "\\n").encode())

async def main():
    writer = Writer(Path(sys.argv[1]), checkpoint_wal_bytes=64 * 1024)
    writer.checkpoints.on_run = lambda run: say("checkpoint")
    await writer.start()
    n = 0
    while True:
        await writer.run(lambda conn, n=n: conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)", (f"acked-{n}", "x" * 3000)))
        say(f"acked-{n}")
        n += 1

asyncio.run(main())
"""


async def test_kill_9_amid_checkpoints_loses_no_acknowledged_write(tmp_path):
    path = tmp_path / "killed.db"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER_SCRIPT,
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    acknowledged: set[str] = set()
    checkpoints = 0
    try:
        while checkpoints < 20:
            raw = await asyncio.wait_for(process.stdout.readline(), 30)
            if not raw:  # the writer ended: say why (its stderr is complete once it has)
                pytest.fail((await process.stderr.read()).decode())
            line = raw.decode().strip()
            if line == "checkpoint":
                checkpoints += 1
            else:
                acknowledged.add(line)
    finally:
        process.kill()
        await process.wait()
    # Whatever the writer printed before the kill was committed before it printed it.
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {row[0] for row in conn.execute("SELECT key FROM meta WHERE key LIKE 'acked-%'")}
    finally:
        conn.close()
    assert acknowledged
    assert acknowledged <= stored
