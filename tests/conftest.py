from __future__ import annotations

import asyncio
import json
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import aiohttp
import pytest
import pytest_asyncio

from enrichwatch.config import Settings, load_settings
from enrichwatch.models import VendorName
from enrichwatch.runtime import Services, open_services
from enrichwatch.sim import SimServer
from receiver import serving

API_TOKEN = "test-api-token-0123456789"
T = TypeVar("T")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(db=tmp_path / "enrichwatch.db", api_token=API_TOKEN, port=0)


@pytest_asyncio.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    async with open_services(settings) as services:
        yield services


@pytest_asyncio.fixture
async def server(services: Services) -> AsyncIterator[str]:
    """The receiver on a real loopback socket; yields its base URL."""
    async with serving(services, "127.0.0.1", 0) as url:
        yield url


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_TOKEN}"}


async def track(
    http: aiohttp.ClientSession, server: str, vendor: str = "crustdata", vendor_job_id: str = "b-1"
) -> dict:
    async with http.post(
        f"{server}/api/jobs",
        json={"vendor": vendor, "vendor_job_id": vendor_job_id, "name": "test job"},
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    ) as response:
        assert response.status in (200, 201), await response.text()
        return await response.json()


def snapshot(db: Path) -> list[str]:
    """Everything in the database except the readiness probe, for "nothing changed" checks."""
    conn = sqlite3.connect(db)
    try:
        return [line for line in conn.iterdump() if "ready_probe" not in line]
    finally:
        conn.close()


def query(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    """Rows read on a connection of the test's own, as another process would see them."""
    conn = sqlite3.connect(db, timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


async def eventually(condition: Callable[[], T], timeout: float = 20, what: str = "") -> T:
    """Wait until `condition()` is truthy, looking every 20 ms; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.02)


def result_positions(
    sim: SimServer, vendor: VendorName, vendor_job_id: str, count: int
) -> list[int]:
    """The positions a finished job's results are stored at: 0 to count - 1, except
    BrightLocal's, kept at their job ids (its jobs finish in any order)."""
    if vendor is VendorName.BRIGHTLOCAL:
        return [job.job_id for job in sim.brightlocal.batches[int(vendor_job_id)].jobs]
    return list(range(count))


async def spawn(*args: str, **options: Any) -> asyncio.subprocess.Process:
    """`python -m enrichwatch ARGS` as a real child process; `options` go to
    `asyncio.create_subprocess_exec` (env, stdout, stderr, cwd, …)."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "enrichwatch", *args, **options
    )


READY = {"serve": "listening on", "receiver": "listening on", "reconciler": "reconciler running"}
"""What each long-running command prints to stdout once it is ready."""


class Command:
    """A running `python -m enrichwatch ...`; its log goes to a file, because a pipe nobody
    reads fills up and stalls the process."""

    def __init__(self, process: asyncio.subprocess.Process, line: str, log: Path) -> None:
        self.process = process
        self.line = line
        self.log = log

    @property
    def url(self) -> str:
        """Where a receiver listens, from its ready line ("… listening on URL")."""
        return self.line.rsplit(" ", 1)[1]

    async def stop(self) -> str:
        """SIGTERM, wait for a clean exit, and return what it logged."""
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), 30)
        text = self.log.read_text()
        assert code == 0, text
        return text

    async def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()


@asynccontextmanager
async def started(args: list[str], env: dict[str, str], log: Path) -> AsyncIterator[Command]:
    """`enrichwatch ARGS` until the block ends (killed if still running), once it has printed
    its ready line."""
    with log.open("ab") as err:
        process = await spawn(*args, env=env, stdout=asyncio.subprocess.PIPE, stderr=err)
    try:
        assert process.stdout is not None
        while True:
            line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
            assert line, f"{args[0]} exited early: {log.read_text()}"
            if READY[args[0]] in line:
                break
        yield Command(process, line.strip(), log)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


class CliResult(NamedTuple):
    """What a CLI run left: its exit code and what it printed."""

    code: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


async def run_cli(env: dict[str, str], *args: str, cwd: Path | None = None) -> CliResult:
    """`enrichwatch ARGS` to its end (at most 30 s), its output captured."""
    process = await spawn(
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:  # it outlived the wait: never leave it running
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return CliResult(process.returncode, stdout.decode(), stderr.decode())


def notified(db: Path, job_id: int) -> list[str]:
    """The outcomes the job's notification rows were made for, oldest first (one channel
    configured: one row each)."""
    rows = query(
        db,
        "SELECT json_extract(payload, '$.outcome') AS outcome FROM work WHERE kind = 'notify' "
        "AND job_id = ? ORDER BY id",
        (job_id,),
    )
    return [row["outcome"] for row in rows]


def free_port() -> int:
    """A port for a service to bind on each of its starts, so its URLs stay valid."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def sim_env(sim: SimServer) -> dict[str, str]:
    """ENRICHWATCH_* variables aiming every vendor at the simulator."""
    env = {}
    for vendor in VendorName:
        prefix = f"ENRICHWATCH_{vendor.value.upper()}__"
        env[prefix + "BASE_URL"] = sim.base_urls[vendor.value]
        env[prefix + "API_KEY"] = sim.api_keys[vendor.value]
    env["ENRICHWATCH_CRUSTDATA__DOWNLOAD_HOSTS"] = json.dumps([sim.storage.host])
    return env
