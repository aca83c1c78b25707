"""Peak memory of reading a Crustdata result set, streamed (what the adapter does) against
reading each file whole (the naive way), measured in the same run against the simulator.

    python -m bench.streaming [--sizes 10000 100000 1000000]

The simulator runs in this process; each reader runs in a fresh subprocess that reports its
own peak RSS, so one measurement never inherits another's memory.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import sys
import time
from pathlib import Path

import aiohttp

from enrichwatch.config import CrustdataSettings
from enrichwatch.sim import SimConfig, SimServer
from enrichwatch.vendors.crustdata import CrustdataAdapter

MODES = ("streamed", "whole files")


def peak_rss_kib() -> int:
    """VmHWM, not ru_maxrss: a child inherits its parent's ru_maxrss across fork and exec, and
    the parent here holds the simulator."""
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])


async def read(mode: str, base_url: str, key: str, storage: str, batch_id: str) -> dict[str, float]:
    settings = CrustdataSettings(base_url=base_url, api_key=key, download_hosts=[storage])
    started = time.perf_counter()
    records = 0
    async with aiohttp.ClientSession() as session:
        adapter = CrustdataAdapter(settings, session)
        snapshot = await adapter.status(batch_id)
        if mode == "streamed":
            async for page in adapter.results(snapshot):
                records += len(page)
        else:
            parsed = []
            for url in snapshot.raw["download_urls"]:
                async with session.get(url) as response:
                    body = await response.read()
                parsed.extend(json.loads(line) for line in gzip.decompress(body).splitlines())
            records = len(parsed)
    peak_kib = peak_rss_kib()
    return {
        "records": records,
        "expected": snapshot.raw["result_count"],
        "seconds": time.perf_counter() - started,
        "peak_mb": peak_kib / 1024,
    }


async def measure(sizes: list[int]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    async with SimServer(SimConfig(seed=1, start_time=time.time())) as sim:
        for size in sizes:
            job = sim.crustdata.add_job(size)
            await sim.advance(365 * 24 * 3600)
            for mode in MODES:
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "bench.streaming",
                    "--read",
                    mode,
                    sim.base_urls["crustdata"],
                    sim.api_keys["crustdata"],
                    sim.storage.host,
                    job.batch_id,
                    stdout=asyncio.subprocess.PIPE,
                )
                out, _ = await process.communicate()
                if process.returncode != 0:
                    raise RuntimeError(f"reader failed for {mode} at {size} records")
                rows.append({"size": size, "mode": mode, **json.loads(out)})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--read", nargs=5, metavar=("MODE", "BASE", "KEY", "STORAGE", "BATCH"))
    args = parser.parse_args()
    if args.read:
        print(json.dumps(asyncio.run(read(*args.read))))
        return 0
    rows = asyncio.run(measure(args.sizes))
    print("python -m bench.streaming --sizes " + " ".join(map(str, args.sizes)) + "\n")
    print("| job size | reader | records read (of result_count) | seconds | peak RSS MB |")
    print("|---:|---|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['size']:,} | {row['mode']} | {row['records']:,} of {row['expected']:,} | "
            f"{row['seconds']:.1f} | {row['peak_mb']:.0f} |"
        )
    streamed = [row["peak_mb"] for row in rows if row["mode"] == "streamed"]
    flat = max(streamed) - min(streamed) < 20  # type: ignore[operator]
    complete = all(row["records"] == row["expected"] for row in rows)
    print(
        f"\nstreamed peak memory flat across sizes (spread < 20 MB): {'met' if flat else 'MISSED'}"
    )
    print(f"every reader got every record: {'met' if complete else 'MISSED'}")
    return 0 if flat and complete else 1


if __name__ == "__main__":
    sys.exit(main())
