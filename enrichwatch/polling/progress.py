"""Extrapolating a job's progress counts to a completion time, with honest uncertainty.

Vendors process in chunks, on shared workers: the rate wobbles and sometimes stalls. So the
estimate is the average rate over as long a stretch as the samples allow (recent hiccups
average out), and its spread grows when that stretch is short, when the remaining stretch is
short (a short future has no time to average out), and when few records have moved.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from enrichwatch.polling.durations import LogNormalAfter

_FINISHING = LogNormalAfter(0.0, math.log(5.0), 1.0)
"""All records counted but the job not yet marked finished: it usually is within seconds."""


# Measured from a sample without progress, the span may include time the job sat queued. It
# is taken to have run for between a quarter and all of it (log-uniform): median and spread.
_QUEUED_SHARE_MEDIAN = 0.5
_QUEUED_SHARE_SPREAD = math.log(4) / math.sqrt(12)


@dataclass(frozen=True)
class ProgressSample:
    """One status call's progress: at clock time `at`, `done` of `total` records had a final
    outcome. Include the submission as a sample with `done=0`, so the first real sample
    already yields a rate."""

    at: float
    done: int
    total: int


@dataclass(frozen=True)
class ProgressEstimator:
    """Turns progress samples into a completion-time distribution.

    `rate_sigma` is the log-spread of a job's processing rate measured over `rate_timescale`
    seconds; averaged over a longer stretch the spread shrinks like 1/sqrt(stretch).
    """

    rate_sigma: float = 0.6
    rate_timescale: float = 120.0
    floor_sigma: float = 0.05

    def completion(self, samples: Sequence[ProgressSample]) -> LogNormalAfter | None:
        """Completion after the last sample, or None while no record has moved (no rate)."""
        ordered = sorted((s for s in samples if s.total > 0), key=lambda s: s.at)
        if not ordered or ordered[-1].done <= 0:
            return None
        last = ordered[-1]
        if last.done >= last.total:
            return LogNormalAfter(last.at, _FINISHING.mu, _FINISHING.sigma)
        estimates = [self._from(baseline, last) for baseline in _baselines(ordered)]
        return min(estimates, key=lambda e: e.sigma, default=None)

    def _from(self, baseline: ProgressSample, last: ProgressSample) -> LogNormalAfter:
        span, moved = last.at - baseline.at, last.done - baseline.done
        start_unknown = baseline.done == 0
        if start_unknown:
            span *= _QUEUED_SHARE_MEDIAN
        remaining = (last.total - last.done) * span / moved
        sigma = self._sigma(span, remaining, moved, start_unknown)
        return LogNormalAfter(last.at, math.log(remaining), sigma)

    def _sigma(self, span: float, remaining: float, moved: int, start_unknown: bool) -> float:
        scale = self.rate_timescale
        wobble = self.rate_sigma**2 * (min(1.0, scale / span) + min(1.0, scale / remaining))
        start = _QUEUED_SHARE_SPREAD**2 if start_unknown else 0.0
        return math.sqrt(wobble + 1.0 / moved + start + self.floor_sigma**2)


def _baselines(ordered: list[ProgressSample]) -> list[ProgressSample]:
    """Samples to measure the rate from, each ending at the last one: the last sample before
    any progress (its span may include queueing) and the first that showed progress (no
    queueing, but less movement, e.g. when a stall followed a fast start). The caller keeps
    whichever promises the smaller error."""
    last = ordered[-1]
    earlier = [s for s in ordered if s.at < last.at and s.done < last.done]
    if not earlier:
        return []
    first_moving = next((s for s in earlier if s.done > 0), None)
    before_moving = [s for s in earlier if first_moving is None or s.at < first_moving.at]
    return [s for s in (*before_moving[-1:], first_moving) if s is not None]
