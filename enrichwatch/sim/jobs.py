"""The shared model of a simulated batch job, whose state is a pure function of the clock.

Nothing ticks in the background: a job stores its plan (drawn once from the seed) and the
few things a client did to it (pause, resume, stop), and every read computes progress from
`clock.now()`. That keeps the sim deterministic per seed, makes jumps in a manual clock
free, and lets a million-record job cost a few hundred bytes.

Which records fail follows a low-discrepancy sequence (`floor(k * rate + phase)`), so the
number of failures among the first k records is O(1) to compute and always agrees with the
per-record status the results endpoints report.
"""

from __future__ import annotations

import bisect
import math
import random
import uuid
from dataclasses import dataclass
from enum import StrEnum

from enrichwatch.sim.config import JobProfile

_KNOTS = 12
_EPS = 1e-6
_TOLERANCE = 1e-4
"""Seconds of slack when comparing work done with a threshold: timestamps near 1.7e9 carry
rounding error of ~1e-7, and `progress(terminal_at())` must already show the end."""


class Phase(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED_CREDITS = "paused_credits"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"


TERMINAL_PHASES = frozenset({Phase.COMPLETED, Phase.FAILED, Phase.STOPPED})


class RecordState(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Progress:
    phase: Phase
    total: int
    processed: int
    failed: int

    @property
    def succeeded(self) -> int:
        return self.processed - self.failed

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES


@dataclass(frozen=True)
class JobPlan:
    start_delay: float
    duration: float
    knots: tuple[float, ...]
    """Cumulative progress at equally spaced fractions of the duration; 0 first, 1 last."""
    failure_rate: float
    failure_phase: float
    fail_fraction: float | None
    pause_fraction: float | None

    @classmethod
    def draw(cls, profile: JobProfile, total: int, rng: random.Random) -> JobPlan:
        median = profile.base_seconds + profile.seconds_per_record * total
        duration = max(_EPS, median * math.exp(rng.gauss(0.0, profile.sigma)))
        jitter = rng.uniform(-profile.start_jitter, profile.start_jitter)
        steps = [math.exp(rng.gauss(0.0, profile.noise)) for _ in range(_KNOTS)]
        acc, knots = 0.0, [0.0]
        for step in steps:
            acc += step
            knots.append(acc)
        phase = rng.random()
        fail_roll, pause_roll, fail_at = rng.random(), rng.random(), rng.uniform(0.1, 0.9)
        fail_fraction = fail_at if fail_roll < profile.job_failure_rate else None
        paused = fail_fraction is None and pause_roll < profile.credit_pause_rate
        return cls(
            start_delay=max(0.0, profile.start_delay + jitter),
            duration=duration,
            knots=tuple(k / acc for k in knots),
            failure_rate=min(1.0, max(0.0, profile.record_failure_rate)),
            failure_phase=phase,
            fail_fraction=fail_fraction,
            pause_fraction=profile.credit_pause_at if paused else None,
        )

    def curve(self, x: float) -> float:
        """Fraction of records done after fraction `x` of the duration."""
        if x <= 0.0:
            return 0.0
        if x >= 1.0:
            return 1.0
        scaled = x * _KNOTS
        i = int(scaled)
        lo, hi = self.knots[i], self.knots[i + 1]
        return lo + (hi - lo) * (scaled - i)

    def inverse(self, y: float) -> float:
        """The earliest fraction of the duration at which `curve` reaches `y`."""
        if y <= 0.0:
            return 0.0
        if y >= 1.0:
            return 1.0
        i = max(0, bisect.bisect_left(self.knots, y) - 1)
        lo, hi = self.knots[i], self.knots[i + 1]
        return (i + (y - lo) / (hi - lo)) / _KNOTS


def job_rng(seed: int, vendor: str, index: int) -> random.Random:
    """One independent stream per (seed, vendor, n-th job), unaffected by other vendors."""
    return random.Random(f"{seed}:{vendor}:{index}")


def rng_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class SimJob:
    """Progress of `total` records processed in position order."""

    def __init__(
        self,
        key: str,
        total: int,
        plan: JobPlan,
        created_at: float,
        *,
        granularity: int = 1,
        stop_on_failure: bool = False,
    ) -> None:
        self.key = key
        self.total = total
        self.plan = plan
        self.created_at = created_at
        self.run_start = created_at + plan.start_delay
        self.granularity = max(1, granularity)
        self.paused_total = 0.0
        self.paused_since: float | None = None
        self.stopped_at: float | None = None
        self.resumed_at: float | None = None
        self._halts: list[tuple[float, int, Phase]] = []
        """Where the run stops short (work done, records processed, phase), earliest first."""
        self._pause: tuple[float, int] | None = None
        halts: list[tuple[float, int, Phase]] = []
        if plan.fail_fraction is not None:
            cap = math.floor(total * plan.fail_fraction)
            halts.append((self._work_for(cap), cap, Phase.FAILED))
        first = self.first_failure()
        if stop_on_failure and first is not None:
            halts.append((self._work_for(first + 1), first + 1, Phase.STOPPED))
        self._halts = sorted(halts)
        if plan.pause_fraction is not None and total > 0:
            cap = math.floor(total * plan.pause_fraction)
            self._pause = (self._work_for(cap), cap)

    # -- failure pattern ---------------------------------------------------------------

    def failed_before(self, k: int) -> int:
        """How many of the first `k` records fail."""
        if k <= 0:
            return 0
        return math.floor(k * self.plan.failure_rate + self.plan.failure_phase)

    def is_failed(self, pos: int) -> bool:
        return self.failed_before(pos + 1) > self.failed_before(pos)

    def succeeded_before(self, k: int) -> int:
        return k - self.failed_before(k)

    def success_position(self, j: int) -> int:
        """Position of the j-th (0-based) succeeding record."""
        lo, hi = j, self.total
        while lo < hi:
            mid = (lo + hi) // 2
            if self.succeeded_before(mid + 1) > j:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def first_failure(self) -> int | None:
        rate, phase = self.plan.failure_rate, self.plan.failure_phase
        if rate <= 0.0:
            return None
        k = max(1, math.ceil((1.0 - phase) / rate) - 1)
        while self.failed_before(k) < 1:
            k += 1
        while k > 1 and self.failed_before(k - 1) >= 1:
            k -= 1
        return k - 1 if k - 1 < self.total else None

    # -- time --------------------------------------------------------------------------

    def _work_for(self, records: int) -> float:
        if self.total == 0:
            return 0.0
        return self.plan.inverse(records / self.total) * self.plan.duration + _EPS

    def _work(self, now: float) -> float:
        t = now
        if self.paused_since is not None:
            t = min(t, self.paused_since)
        if self.stopped_at is not None:
            t = min(t, self.stopped_at)
        return max(0.0, t - self.run_start - self.paused_total)

    def progress(self, now: float) -> Progress:
        work = self._work(now) + _TOLERANCE
        processed = self._curve_records(work)
        phase = Phase.RUNNING
        if self._halt is not None and work >= self._halt[0]:
            processed, phase = self._halt[1], self._halt[2]
        elif self._pause is not None and work >= self._pause[0]:
            processed, phase = self._pause[1], Phase.PAUSED_CREDITS
        elif self.stopped_at is not None:
            phase = Phase.STOPPED
        elif now < self.run_start:
            phase = Phase.QUEUED
        elif self.paused_since is not None:
            phase = Phase.PAUSED
        elif work >= self.plan.duration:
            processed, phase = self.total, Phase.COMPLETED
        if self._halt is not None:
            processed = min(processed, self._halt[1])
        if self._pause is not None:
            processed = min(processed, self._pause[1])
        return Progress(phase, self.total, processed, self.failed_before(processed))

    def _curve_records(self, work: float) -> int:
        if self.total == 0:
            return 0
        done = math.floor(self.total * self.plan.curve(work / self.plan.duration) + 1e-9)
        if done >= self.total:
            return self.total
        return done - done % self.granularity

    def terminal_at(self) -> float | None:
        """When the job ends given what has happened so far; None while it waits on a client."""
        if self.stopped_at is not None:
            return self.stopped_at
        if self.paused_since is not None or self._pause is not None:
            return None
        work = self.plan.duration if self._halt is None else self._halt[0]
        return self.run_start + self.paused_total + work

    def processed_at(self, records: int) -> float:
        """When the first `records` records will have been processed (no future pauses)."""
        return self.run_start + self.paused_total + self._work_for(records)

    def record_state(self, pos: int, progress: Progress) -> RecordState:
        if pos < progress.processed:
            return RecordState.FAILED if self.is_failed(pos) else RecordState.SUCCEEDED
        if progress.phase in (Phase.FAILED, Phase.STOPPED):
            return RecordState.CANCELLED
        if progress.phase == Phase.QUEUED:
            return RecordState.PENDING
        in_flight = max(self.granularity, math.ceil(self.total * 0.02))
        if progress.phase == Phase.RUNNING and pos < progress.processed + in_flight:
            return RecordState.IN_PROGRESS
        return RecordState.QUEUED

    # -- client actions ----------------------------------------------------------------

    def pause(self, now: float) -> bool:
        if self.progress(now).phase != Phase.RUNNING:
            return False
        self.paused_since = now
        return True

    @property
    def _halt(self) -> tuple[float, int, Phase] | None:
        return self._halts[0] if self._halts else None

    def resume(self, now: float) -> bool:
        """Go on from a pause, or from a failure mid-run (influencers.club resumes those); the
        run carries on where it stopped, as if the time in between had been a pause."""
        phase = self.progress(now).phase
        if phase == Phase.FAILED and self._halt is not None:
            began = self.run_start + self.paused_total + self._halt[0]
            self.paused_total += max(0.0, now - began)
            self._halts.pop(0)
        elif phase == Phase.PAUSED_CREDITS and self._pause is not None:
            began = self.run_start + self.paused_total + self._pause[0]
            self.paused_total += max(0.0, now - began)
            self._pause = None
        elif phase == Phase.PAUSED and self.paused_since is not None:
            self.paused_total += now - self.paused_since
            self.paused_since = None
        else:
            return False
        self.resumed_at = now
        return True

    def stop(self, now: float) -> bool:
        if self.progress(now).terminal:
            return False
        self.stopped_at = now
        return True

    def last_change(self, now: float) -> float:
        """The latest moment the job's phase changed, for `updated_at` fields."""
        moments = [self.created_at]
        if now >= self.run_start:
            moments.append(self.run_start)
        for moment in (self.paused_since, self.resumed_at, self.stopped_at, self.terminal_at()):
            if moment is not None and moment <= now:
                moments.append(moment)
        if self._pause is not None:
            began = self.run_start + self.paused_total + self._pause[0]
            if began <= now:
                moments.append(began)
        return max(moments)
