"""A faithful, deterministic simulator of the five vendors' batch APIs, for tests and demos.

    async with SimServer(SimConfig(seed=1)) as sim:
        base = sim.base_urls["crustdata"]      # http://127.0.0.1:PORT/crustdata
        key = sim.api_keys["crustdata"]
        ...submit a job over HTTP...
        await sim.advance(600)                 # ten simulated minutes, callbacks delivered
        sim.stats.count("crustdata")           # requests seen

Jobs progress on a `SimClock` (manual, or scaled real time for demos); faults, callback
behaviour and limits are configurable at runtime.
"""

from __future__ import annotations

from enrichwatch.sim.clock import SimClock
from enrichwatch.sim.config import (
    BrightLocalConfig,
    CallbackConfig,
    CrustdataConfig,
    ECoreConfig,
    InfluencersClubConfig,
    JobProfile,
    RepromptConfig,
    SimConfig,
)
from enrichwatch.sim.faults import FaultPlan
from enrichwatch.sim.server import SimServer
from enrichwatch.sim.standalone import run_standalone

__all__ = [
    "BrightLocalConfig",
    "CallbackConfig",
    "CrustdataConfig",
    "ECoreConfig",
    "FaultPlan",
    "InfluencersClubConfig",
    "JobProfile",
    "RepromptConfig",
    "SimClock",
    "SimConfig",
    "SimServer",
    "run_standalone",
]
