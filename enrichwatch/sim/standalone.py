"""Run the simulator as its own process, for the demo or for poking at it by hand.

It prints the environment lines that point enrichwatch at it, then serves until cancelled.
The clock runs scaled (`speed` simulated seconds per real second); POST
`/_sim/advance?seconds=N` jumps it, `/_sim/faults/{vendor}` injects faults, and
`/_sim/stats` shows what it saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

from enrichwatch.sim.config import VENDORS, SimConfig
from enrichwatch.sim.server import SimServer


def env_lines(server: SimServer) -> list[str]:
    """`ENRICHWATCH_*` settings that aim every vendor adapter at `server`."""
    lines = []
    for vendor in VENDORS:
        prefix = f"ENRICHWATCH_{vendor.upper()}__"
        lines.append(f"{prefix}BASE_URL={server.base_urls[vendor]}")
        lines.append(f"{prefix}API_KEY={server.api_keys[vendor]}")
    lines.append(f"ENRICHWATCH_CRUSTDATA__DOWNLOAD_HOSTS={json.dumps([server.storage.host])}")
    lines.append(f"ENRICHWATCH_ECORE__AUTH_SCHEME={server.config.ecore.auth_scheme}")
    if server.config.reprompt.org is not None:
        lines.append(f"ENRICHWATCH_REPROMPT__ORG={server.config.reprompt.org}")
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
