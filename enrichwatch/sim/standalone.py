"""Run the simulator as its own process, for the demo or for poking at it by hand.

It prints the environment lines that point enrichwatch at it, then serves until cancelled.
The clock runs scaled (`speed` simulated seconds per real second); POST
`/_sim/advance?seconds=N` jumps it, `/_sim/faults/{vendor}` injects faults, and
`/_sim/stats` shows what it saw.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from enrichwatch.sim.config import SimConfig
from enrichwatch.sim.server import SimServer


def env_lines(server: SimServer) -> list[str]:
    """`ENRICHWATCH_*` settings that aim every vendor adapter at `server`."""
    lines = []
    for vendor, section in server.vendor_settings().items():
        for key, value in section.items():
            # A list as comma-separated words: no quoting needed, pasted into a shell.
            text = ",".join(value) if isinstance(value, list) else str(value)
            lines.append(f"ENRICHWATCH_{vendor.upper()}__{key.upper()}={text}")
    return lines


async def serve_standalone(
    port: int = 0,
    speed: float | None = 60.0,
    seed: int = 0,
    *,
    config: SimConfig | None = None,
    storage_port: int = 0,
    echo: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until `stop` is set or the task is cancelled."""
    config = config or SimConfig(seed=seed, speed=speed)
    echo = echo or _say
    async with SimServer(config, port=port, storage_port=storage_port) as server:
        echo(f"# enrichwatch vendor simulator at {server.url} (speed={speed}, seed={seed})")
        for line in env_lines(server):
            echo(line)
        await (stop or asyncio.Event()).wait()


def _say(line: str) -> None:
    print(line, flush=True)  # a parent process reads these lines while we keep running


def run_standalone(port: int = 0, speed: float | None = 60.0, seed: int = 0) -> None:
    """Blocking entry point for `enrichwatch sim`; Ctrl-C stops it cleanly."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_standalone(port, speed, seed))
