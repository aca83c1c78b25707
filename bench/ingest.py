"""Sustained callback ingest, each request committed to SQLite before its 200, against a bare
aiohttp handler that does no I/O, measured in the same run with the same load generator.

    python -m bench.ingest [--requests 20000] [--concurrency 50] [--rounds 5]
                           [--log-level warning|info]

Each server runs in its own process; the senders run in this one. Each round loads the two
servers back to back, in turn first, so drift on a shared machine hits both alike; the
throughput ratio is taken per round and its median reported, with each server's median round.

The receiver logs at `warning` by default here, as the bare handler logs nothing; `--log-level
info` (the service's default) adds the one JSON line it writes per request. Either way its log
goes to a file, as to a real log sink.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

TOKEN = "bench-token-0000000000"
TARGET_RATIO = 0.6
TARGET_P99_MS = 25.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux), to report server CPU per request, which
    other load on a shared machine disturbs far less than requests/s."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@asynccontextmanager
async def server(argv: list[str], env: dict[str, str], log: Path):
    with log.open("ab") as sink:
        process = await asyncio.create_subprocess_exec(
            *argv, env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE, stderr=sink
        )
    try:
        while True:
            line = (await process.stdout.readline()).decode()
            if not line:
                raise RuntimeError(f"{argv} exited before listening")
            if "listening on" in line:
                yield line.rsplit(" ", 1)[1].strip(), process.pid
                return
    finally:
        process.terminate()
        await process.wait()


async def callback_urls(http: aiohttp.ClientSession, url: str, jobs: int) -> list[str]:
    urls = []
    for n in range(jobs):
        async with http.post(
            f"{url}/api/jobs",
            json={"vendor": "crustdata", "vendor_job_id": f"bench-{n}"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as response:
            urls.append((await response.json())["callback_url"])
    return urls


async def load(
    urls: list[str], requests: int, concurrency: int, tag: str, pid: int
) -> dict[str, float]:
    latencies: list[float] = []
    counter = iter(range(requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def sender() -> None:
            for n in counter:
                body = f'{{"batch_id": "{tag}-{n}", "status": "completed"}}'.encode()
                started = time.perf_counter()
                async with http.post(urls[n % len(urls)], data=body) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"unexpected {response.status}")
                latencies.append(time.perf_counter() - started)

        cpu_before, started = cpu_seconds(pid), time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        elapsed, cpu = time.perf_counter() - started, cpu_seconds(pid) - cpu_before
    latencies.sort()
    return {
        "rps": requests / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "cpu_us": cpu / requests * 1e6,
    }


async def run(
    requests: int, concurrency: int, rounds: int, log_level: str
) -> dict[str, list[dict[str, float]]]:
    results: dict[str, list[dict[str, float]]] = {"bare aiohttp handler": [], "enrichwatch": []}
    with tempfile.TemporaryDirectory() as tmp:
        bare_argv = [sys.executable, "-m", "bench.bare_server"]
        # The receiver alone: a reconciler would poll vendors for the benchmark's jobs.
        ingest_argv = [sys.executable, "-m", "enrichwatch", "receiver"]
        ingest_env = {
            "ENRICHWATCH_DB": str(Path(tmp) / "bench.db"),
            "ENRICHWATCH_PORT": "0",
            "ENRICHWATCH_API_TOKEN": TOKEN,
            "ENRICHWATCH_LOG_LEVEL": log_level,
        }
        async with (
            server(bare_argv, {}, Path(tmp) / "bare.log") as (bare_url, bare_pid),
            server(ingest_argv, ingest_env, Path(tmp) / "receiver.log") as (ingest_url, ingest_pid),
            aiohttp.ClientSession() as http,
        ):
            ingest_urls = await callback_urls(http, ingest_url, 100)
            bare_urls = [u.replace(ingest_url, bare_url) for u in ingest_urls]
            warmup = max(requests // 10, 100)
            await load(bare_urls, warmup, concurrency, "warm", bare_pid)
            await load(ingest_urls, warmup, concurrency, "warm", ingest_pid)
            targets = {
                "bare aiohttp handler": (bare_urls, bare_pid),
                "enrichwatch": (ingest_urls, ingest_pid),
            }
            for round_ in range(rounds):
                # Alternate which goes first, so drift within a round favours neither.
                names = list(targets) if round_ % 2 == 0 else list(reversed(targets))
                for name in names:
                    urls, pid = targets[name]
                    results[name].append(await load(urls, requests, concurrency, f"r{round_}", pid))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--log-level", choices=("warning", "info"), default="warning")
    args = parser.parse_args()
    results = asyncio.run(run(args.requests, args.concurrency, args.rounds, args.log_level))
    medians = {name: _median_round(runs) for name, runs in results.items()}
    ingest = medians["enrichwatch"]
    ratios = [
        i["rps"] / b["rps"]
        for b, i in zip(results["bare aiohttp handler"], results["enrichwatch"], strict=True)
    ]
    ratio = statistics.median(ratios)
    print(
        f"callback ingest: {args.requests} requests x {args.rounds} rounds, "
        f"{args.concurrency} concurrent senders, receiver logging at {args.log_level}, "
        "median round of each\n"
    )
    print("| server | requests/s | p50 ms | p99 ms | server CPU µs/request |")
    print("|---|---:|---:|---:|---:|")
    for name, r in medians.items():
        print(
            f"| {name} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
            f"| {r['cpu_us']:.0f} |"
        )
    ok_ratio = ratio >= TARGET_RATIO
    ok_p99 = ingest["p99_ms"] < TARGET_P99_MS
    print(f"\nthroughput ratio per round: {', '.join(f'{r:.2f}' for r in ratios)}")
    print(
        f"median throughput ratio enrichwatch / bare: {ratio:.2f} "
        f"(target >= {TARGET_RATIO}: {'met' if ok_ratio else 'MISSED'})"
    )
    print(
        f"enrichwatch p99: {ingest['p99_ms']:.2f} ms "
        f"(target < {TARGET_P99_MS:.0f} ms: {'met' if ok_p99 else 'MISSED'})"
    )
    return 0 if ok_ratio and ok_p99 else 1


def _median_round(runs: list[dict[str, float]]) -> dict[str, float]:
    middle = statistics.median_low(run["rps"] for run in runs)
    return next(run for run in runs if run["rps"] == middle)


if __name__ == "__main__":
    sys.exit(main())
