"""Driving enrichwatch against the simulator's clock until nothing is left to do."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from enrichwatch.runtime import Services
from enrichwatch.sim import SimServer
from reconciler import Reconciler, reconcile_once


async def settle(sim: SimServer, services: Services, rc: Reconciler, max_passes: int = 400) -> None:
    """Alternate reconcile passes with jumps of the clock to the next thing due."""
    for _ in range(max_passes):
        await reconcile_once(rc)
        due = next_due(services.store.path)
        if due is None:
            return
        await sim.advance_to(max(due, sim.clock.now()))
    raise AssertionError("jobs did not settle")


def next_due(db: Path) -> float | None:
    """When the next open job or pending work item falls due; None when nothing is left."""
    conn = sqlite3.connect(db)
    try:
        (job_due,) = conn.execute(
            "SELECT MIN(next_check_at) FROM jobs "
            "WHERE state NOT IN ('completed', 'failed', 'expired')"
        ).fetchone()
        (work_due,) = conn.execute(
            "SELECT MIN(next_attempt_at) FROM work WHERE state = 'pending'"
        ).fetchone()
    finally:
        conn.close()
    times = [t for t in (job_due, work_due) if t is not None]
    return min(times) if times else None
