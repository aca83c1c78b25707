"""The benchmark's bound for pollers without progress counts must really be a bound: no
schedule that knows the simulation's true duration distribution may beat it."""

from __future__ import annotations

import math
import random

import pytest

from bench.polling import (
    MEDIAN,
    SIGMA,
    SIZE_CORRELATION,
    SIZE_MEDIAN,
    SIZE_SIGMA,
    make_traces,
    no_counts_bound,
    percentile,
)


def informed_schedule(start_z: float, gap: float) -> tuple[float, float]:
    """Calls/job and p95 delay of a schedule that knows each job's median duration given its
    size, checks first `start_z` sigmas before it, then every `gap` seconds."""
    spread = SIGMA * math.sqrt(1 - SIZE_CORRELATION**2)
    calls, delays = [], []
    for trace in make_traces(random.Random(3), 4000):
        z_size = math.log(trace.size / SIZE_MEDIAN) / SIZE_SIGMA
        median = MEDIAN * math.exp(SIGMA * SIZE_CORRELATION * z_size)
        at, n = median * math.exp(-start_z * spread), 1
        while at < trace.duration:
            at, n = at + gap, n + 1
        calls.append(n)
        delays.append(at - trace.duration)
    return sum(calls) / len(calls), percentile(delays, 0.95)


@pytest.mark.parametrize(("start_z", "gap"), [(1.0, 120.0), (1.5, 30.0), (2.0, 60.0), (0.5, 300.0)])
def test_no_informed_schedule_beats_the_bound(start_z: float, gap: float) -> None:
    calls, p95 = informed_schedule(start_z, gap)
    assert calls >= no_counts_bound(p95)


def test_the_bound_falls_as_the_allowed_delay_grows() -> None:
    assert no_counts_bound(30) > no_counts_bound(60) > no_counts_bound(120) >= 1.0
