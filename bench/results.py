"""Results ingest: the reconciler's fetch pass (`reconciler.fetch.fetch_due_results`) taking a
finished job's results from the simulator over HTTP into SQLite through the Store, against the
same download and parse with nothing written (the adapter's `results()` stream consumed and
discarded), measured in the same run.

    python -m bench.results [--crustdata 100000 1000000] [--reprompt 5000 50000] [--rounds 1]

The simulator runs in this process (Crustdata with no failed records, so an N-record job has
N result lines), and keeps a finished job's results as bytes once made; one uncounted read
per job warms it. Each measurement runs in a fresh subprocess that opens enrichwatch on the
simulator's clock with an empty database, tracks the job, runs one check pass (which finds the
job finished and enqueues its fetch, as the reconciler does), then times the fetch pass alone.
It reports its peak RSS (VmHWM), the CPU it spent per record, its longest page write
(`store_results`, timed by the caller) and the longest the event loop went without turning;
this process reports the CPU the simulator spent per record in the same window, which bounds
what any reader can reach. With several rounds each row is the median round by records/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from enrichwatch.config import RepromptSettings, load_settings
from enrichwatch.logging import configure_logging
from enrichwatch.models import VendorName
from enrichwatch.runtime import open_services
from enrichwatch.sim import SimConfig, SimServer
from enrichwatch.sim.reprompt import sample_places
from enrichwatch.store.fetches import FETCH_WORK
from enrichwatch.vendors.base import ResultRecord, StatusSnapshot, SubmitRequest
from enrichwatch.vendors.reprompt import RepromptAdapter

BASELINE = "download + parse only"
STORED = "into SQLite (fetch pass)"
MODES = (BASELINE, STORED)
TARGET_RATE = 50_000
TARGET_PEAK_MB = 150
TARGET_WRITE_MS = 50
API_TOKEN = "bench-token-0000000000"
YEAR = 365 * 24 * 3600.0
SIM_CACHE_BYTES = 2 * 1024**3


def peak_rss_mb() -> float:
    """This process's peak RSS (Linux). Not `ru_maxrss`: a child started by fork and exec
    inherits that from its parent, which here holds the simulator and every job in it."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


class StallMonitor:
    """The longest the event loop went without running a 1 ms timer, less that 1 ms."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            self.longest = max(self.longest, time.perf_counter() - before - 0.001)

    def __enter__(self) -> StallMonitor:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def run_one(
    mode: str, vendor: str, base_url: str, key: str, storage: str, job_id: str, now: float
) -> dict[str, Any]:
    """One measurement, in the subprocess: set up, then time the fetch (or the bare read)."""
    from reconciler import Reconciler
    from reconciler.checks import check_due_jobs
    from reconciler.fetch import fetch_due_results

    configure_logging(level="warning")
    name = VendorName(vendor)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        overrides: dict[str, Any] = {vendor: {"base_url": base_url, "api_key": key}}
        if name is VendorName.CRUSTDATA:
            overrides[vendor]["download_hosts"] = [storage]
        settings = load_settings(db=db, api_token=API_TOKEN, **overrides)
        async with open_services(settings, clock=lambda: now) as services:
            store = services.store
            job, _ = await store.track_job(name, job_id, "bench")
            rc = Reconciler(services)
            await check_due_jobs(rc)
            checked = await store.get_job(job.id)
            if checked.results_state != "pending":
                raise RuntimeError(f"the check did not enqueue a fetch: {checked}")
            # Each page write timed from the fetcher's side: the loop runs parts of it.
            records, longest_write = 0, 0.0
            store_results = store.store_results

            async def timed_store_results(
                job_id: int, page: Sequence[ResultRecord], *, item_id: int, lease_s: float
            ) -> int:
                nonlocal longest_write
                began = time.perf_counter()
                stored = await store_results(job_id, page, item_id=item_id, lease_s=lease_s)
                longest_write = max(longest_write, time.perf_counter() - began)
                return stored

            store.store_results = timed_store_results  # type: ignore[method-assign, assignment]
            print("start", flush=True)  # the parent starts counting the simulator's CPU
            with StallMonitor() as stalls:
                started, cpu_started = time.perf_counter(), time.process_time()
                if mode == STORED:
                    if await fetch_due_results(rc) != 1:
                        raise RuntimeError("the fetch pass did not finish the job")
                else:
                    # The fetcher's steps without the writes: the snapshot the check left in
                    # the work item, and the adapter's stream, each page dropped.
                    (item,) = await store.claim_work(
                        FETCH_WORK, owner=rc.owner, lease_s=900, limit=5
                    )
                    snapshot = StatusSnapshot.model_validate(item.payload["snapshot"])
                    async for page in services.adapter(name).results(snapshot):
                        records += len(page)
                seconds = time.perf_counter() - started
                cpu = time.process_time() - cpu_started
            print("stop", flush=True)
            peak_mb = peak_rss_mb()
            done = await store.get_job(job.id)
        consistent = True
        if mode == STORED:
            conn = sqlite3.connect(db)
            try:
                count, low, high = conn.execute(
                    "SELECT COUNT(*), MIN(position), MAX(position) FROM results WHERE job_id = ?",
                    (job.id,),
                ).fetchone()
            finally:
                conn.close()
            records = count
            # The primary key makes positions unique; 0..n-1 with n rows makes them complete.
            consistent = (
                done.results_state == "stored"
                and done.results_count == count
                and (count == 0 or (low, high) == (0, count - 1))
            )
    return {
        "records": records,
        "seconds": seconds,
        "cpu_us": cpu / max(records, 1) * 1e6,
        "peak_mb": peak_mb,
        "stall_ms": stalls.longest * 1000,
        "write_ms": longest_write * 1000,
        "consistent": consistent,
    }


async def prepare(sim: SimServer, vendor: str, size: int) -> str:
    """A finished job of `size` result records at the simulator; returns its id."""
    if vendor == "crustdata":
        job = sim.crustdata.add_job(size)  # no record fails (see `measure`): one line each
        await sim.advance(YEAR)
        return job.batch_id
    settings = RepromptSettings(base_url=sim.base_urls[vendor], api_key=sim.api_keys[vendor])
    rows = sample_places(size)
    async with aiohttp.ClientSession() as session:
        (submitted,) = await RepromptAdapter(settings, session).submit(
            SubmitRequest(rows=rows, name="bench")
        )
    await sim.advance(YEAR)
    return submitted.vendor_job_id  # every place has a result, failed or not


async def measure_once(sim: SimServer, mode: str, vendor: str, job_id: str) -> dict[str, Any]:
    """One subprocess measurement, and the simulator's CPU between its start and stop."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.results",
        "--run",
        mode,
        vendor,
        sim.base_urls[vendor],
        sim.api_keys[vendor],
        sim.storage.host,
        job_id,
        repr(sim.clock.now()),
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    sim_cpu, lines = 0.0, []
    while line := (await process.stdout.readline()).decode().strip():
        if line == "start":
            sim_cpu = -time.process_time()
        elif line == "stop":
            sim_cpu += time.process_time()
        else:
            lines.append(line)
    if await process.wait() != 0:
        raise RuntimeError(f"{mode} failed for {vendor} job {job_id}")
    result: dict[str, Any] = json.loads(lines[-1])
    result["rate"] = result["records"] / result["seconds"]
    result["sim_cpu_us"] = sim_cpu / max(result["records"], 1) * 1e6
    return result


async def measure(cases: list[tuple[str, int]], rounds: int) -> list[dict[str, Any]]:
    config = SimConfig(seed=1, start_time=time.time())
    config.crustdata.profile.record_failure_rate = 0.0
    rows: list[dict[str, Any]] = []
    async with SimServer(config) as sim:
        sim.storage.cache_limit = SIM_CACHE_BYTES
        for vendor, size in cases:
            job_id = await prepare(sim, vendor, size)
            # A first read, not counted, makes the simulator render the job's results once
            # (it keeps finished results as bytes), so every counted read meets the same warm
            # simulator and measures the reader, not the simulator making the file.
            await measure_once(sim, BASELINE, vendor, job_id)
            runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
            for _ in range(rounds):
                for mode in MODES:
                    runs[mode].append(await measure_once(sim, mode, vendor, job_id))
            for mode, results in runs.items():
                middle = statistics.median_low(r["rate"] for r in results)
                chosen = next(r for r in results if r["rate"] == middle)
                rows.append({"vendor": vendor, "size": size, "mode": mode, **chosen})
    return rows


def report(args: argparse.Namespace, rows: list[dict[str, Any]]) -> bool:
    command = "python -m bench.results"
    command += " --crustdata " + " ".join(map(str, args.crustdata))
    command += " --reprompt " + " ".join(map(str, args.reprompt))
    command += f" --rounds {args.rounds}"
    print(command + "\n")
    print(
        "| vendor | job size | path | records | seconds | records/s | fetcher CPU µs/record "
        "| simulator CPU µs/record | peak RSS MB | longest page write ms | longest loop stall ms |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        write = f"{row['write_ms']:.0f}" if row["mode"] == STORED else "-"
        print(
            f"| {row['vendor']} | {row['size']:,} | {row['mode']} | {row['records']:,} "
            f"| {row['seconds']:.1f} | {row['rate']:,.0f} | {row['cpu_us']:.1f} "
            f"| {row['sim_cpu_us']:.1f} | {row['peak_mb']:.0f} "
            f"| {write} | {row['stall_ms']:.0f} |"
        )
    baseline = {(r["vendor"], r["size"]): r for r in rows if r["mode"] == BASELINE}
    stored = [row for row in rows if row["mode"] == STORED]
    print("\nwhat SQLite costs, against the baseline of the same job:")
    for row in stored:
        base = baseline[row["vendor"], row["size"]]
        print(
            f"- {row['vendor']} {row['size']:,}: {row['rate'] / base['rate']:.0%} of its "
            f"records/s, {row['cpu_us'] - base['cpu_us']:+.1f} µs CPU/record, "
            f"{row['peak_mb'] - base['peak_mb']:+.0f} MB peak"
        )
    complete = all(row["records"] == row["size"] for row in rows)
    consistent = all(row["consistent"] for row in stored)
    fast = all(row["rate"] >= TARGET_RATE for row in stored)
    small = all(row["peak_mb"] < TARGET_PEAK_MB for row in stored)
    smooth = all(row["write_ms"] < TARGET_WRITE_MS for row in stored)
    peaks = [row["peak_mb"] for row in stored]
    ceilings = ", ".join(
        f"{r['vendor']} {r['size']:,}: {1e6 / r['sim_cpu_us']:,.0f}/s"
        for r in rows
        if r["mode"] == BASELINE
    )
    print(f"\nthe simulator alone could serve at most (1 / its CPU per record): {ceilings}\n")
    print(f"every record read and stored: {'met' if complete else 'MISSED'}")
    print(
        "stored positions are 0..n-1 and results_count matches: "
        f"{'met' if consistent else 'MISSED'}"
    )
    print(f"into SQLite >= {TARGET_RATE:,} records/s at every size: {'met' if fast else 'MISSED'}")
    print(
        f"into SQLite peak RSS < {TARGET_PEAK_MB} MB at every size "
        f"({min(peaks):.0f}-{max(peaks):.0f} MB): {'met' if small else 'MISSED'}"
    )
    print(
        f"longest page write (the loop is held for parts of it) < {TARGET_WRITE_MS} ms: "
        f"{'met' if smooth else 'MISSED'}"
    )
    return complete and consistent and fast and small and smooth


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crustdata", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--reprompt", type=int, nargs="*", default=[5_000, 50_000])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--run", nargs=7, metavar=("MODE", "VENDOR", "BASE", "KEY", "S", "J", "T"))
    args = parser.parse_args()
    if args.run:
        mode, vendor, base, key, storage, job_id, now = args.run
        result = asyncio.run(run_one(mode, vendor, base, key, storage, job_id, float(now)))
        print(json.dumps(result))
        return 0
    cases = [("crustdata", n) for n in args.crustdata] + [("reprompt", n) for n in args.reprompt]
    rows = asyncio.run(measure(cases, args.rounds))
    return 0 if report(args, rows) else 1


if __name__ == "__main__":
    sys.exit(main())
