"""A real world for the CLI to look at: the vendor simulator (manual clock) serving all five
vendor APIs over HTTP, enrichwatch's receiver on a real socket taking the simulator's
callbacks, reconcile passes run by the test, and the CLI run as a real subprocess on the same
SQLite file."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest_asyncio

from enrichwatch.config import load_settings
from enrichwatch.models import VendorName
from enrichwatch.runtime import Services, open_services
from enrichwatch.sim import SimConfig, SimServer
from enrichwatch.store import JobRecord
from enrichwatch.submission import submit_batch
from enrichwatch.vendors.base import SubmitRequest
from receiver import serving
from reconciler import Reconciler
from tests.conftest import API_TOKEN, CliResult, run_cli, sim_env
from tests.settling import settle
from tests.test_reconciler import INPUTS

TERMINAL_HINTS = ("TTY_COMPATIBLE", "FORCE_COLOR", "COLUMNS", "LINES")
"""Variables that make rich take a pipe for a terminal, or size it: a test's CLI output is
piped, and is read as piped output, whatever the shell running the tests has set."""


def clean_env(**settings: str) -> dict[str, str]:
    """The environment with no ENRICHWATCH_* setting but the ones given, and no terminal
    hints."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ENRICHWATCH_") and k not in TERMINAL_HINTS
    }
    return env | {f"ENRICHWATCH_{k.upper()}": v for k, v in settings.items()}


def cli_env(sim: SimServer, db: Path) -> dict[str, str]:
    return {**clean_env(db=str(db), log_level="warning"), **sim_env(sim)}


def assert_one_line_error(result: CliResult, code: int = 1) -> str:
    """A refusal: the exit code, no traceback, and a single `Error:` line saying why."""
    assert result.code == code, (result.out, result.err)
    assert "Traceback" not in result.err + result.out
    errors = [line for line in result.error_lines if line.startswith("Error:")]
    assert len(errors) == 1, result.err
    if code == 1:
        assert result.error_lines == errors
    return errors[0]


@dataclass
class World:
    sim: SimServer
    services: Services
    url: str
    rc: Reconciler
    env: dict[str, str]
    jobs: dict[VendorName, JobRecord]

    @property
    def db(self) -> Path:
        return self.services.store.path

    async def submit(self, vendor: VendorName) -> JobRecord:
        rows, options = INPUTS[vendor]
        request = SubmitRequest(rows=rows, name=f"cli {vendor.value}", options=options)
        outcome = await submit_batch(self.services, vendor, request, public_url=self.url)
        (job,) = outcome.submitted
        return job

    async def settle(self) -> None:
        await settle(self.sim, self.services, self.rc)  # type: ignore[no-untyped-call]

    async def cli(self, *args: str) -> CliResult:
        return await run_cli(self.env, *args)


@pytest_asyncio.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    """One finished job at each vendor, BrightLocal's callback lost on the way."""
    async with SimServer(SimConfig(seed=29, start_time=time.time())) as sim:
        sim.set_callbacks("brightlocal", loss_probability=1.0)
        overrides = sim.vendor_settings()
        db = tmp_path / "cli.db"
        settings = load_settings(db=db, api_token=API_TOKEN, **overrides)
        async with (
            open_services(settings, clock=sim.clock.now) as services,
            serving(services, "127.0.0.1", 0) as url,
        ):
            world = World(sim, services, url, Reconciler(services), cli_env(sim, db), {})
            for vendor in VendorName:
                world.jobs[vendor] = await world.submit(vendor)
            await world.settle()
            yield world
