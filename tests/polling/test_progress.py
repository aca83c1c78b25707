from __future__ import annotations

import math
import random

import pytest

from enrichwatch.polling import ProgressEstimator, ProgressSample

ESTIMATOR = ProgressEstimator()


def linear(total: int, start: float, end: float, times: list[float]) -> list[ProgressSample]:
    """Progress of a job that ran at a constant rate from `start` to `end`, seen at `times`."""
    rate = total / (end - start)
    return [
        ProgressSample(t, min(total, max(0, math.floor((t - start) * rate))), total) for t in times
    ]


@pytest.mark.parametrize("seed", range(20))
def test_linear_progress_lands_near_the_truth(seed):
    rng = random.Random(seed)
    total, start = rng.randint(200, 20_000), rng.uniform(0, 50)
    end = start + rng.uniform(300, 5000)
    times = sorted(rng.uniform(start + 0.2 * (end - start), end * 0.95) for _ in range(3))
    estimate = ESTIMATOR.completion(linear(total, start, end, [start, *times]))
    assert estimate is not None
    assert estimate.quantile(0.5) == pytest.approx(end, rel=0.02)
    assert estimate.quantile(0.05) < end < estimate.quantile(0.95)


def test_time_spent_queued_widens_the_first_estimate_but_not_later_ones():
    samples = [ProgressSample(0, 0, 1000), *linear(1000, 200, 1200, [500, 800])]
    first, later = ESTIMATOR.completion(samples[:2]), ESTIMATOR.completion(samples)
    assert first is not None
    assert later is not None
    assert first.quantile(0.05) < 1200 < first.quantile(0.95)
    assert later.quantile(0.5) == pytest.approx(1200, rel=0.01)
    assert later.sigma < first.sigma


def test_more_samples_over_a_longer_stretch_narrow_the_estimate():
    times = [100, 200, 400, 800, 1600]
    samples = linear(10_000, 0, 4000, [0, *times])
    spreads = [ESTIMATOR.completion(samples[: n + 1]) for n in range(2, len(samples))]
    sigmas = [s.sigma for s in spreads if s is not None]
    assert sigmas == sorted(sigmas, reverse=True)


def test_a_stall_after_a_fast_start_does_not_send_the_estimate_to_infinity():
    samples = [
        ProgressSample(0, 0, 100),
        ProgressSample(100, 40, 100),
        ProgressSample(300, 41, 100),
    ]
    estimate = ESTIMATOR.completion(samples)
    assert estimate is not None
    assert estimate.quantile(0.5) < 1000


def test_stalled_progress_is_uncertain_not_certain():
    samples = [ProgressSample(0, 0, 100), ProgressSample(60, 50, 100), ProgressSample(600, 50, 100)]
    estimate = ESTIMATOR.completion(samples)
    assert estimate is not None
    assert estimate.sigma > 0.3
    assert all(math.isfinite(estimate.quantile(p)) for p in (0.01, 0.5, 0.99))


def test_no_rate_without_movement():
    assert ESTIMATOR.completion([]) is None
    assert ESTIMATOR.completion([ProgressSample(0, 0, 10), ProgressSample(50, 0, 10)]) is None
    assert ESTIMATOR.completion([ProgressSample(50, 5, 10)]) is None
    assert ESTIMATOR.completion([ProgressSample(0, 0, 0), ProgressSample(9, 0, 0)]) is None


def test_all_records_done_means_finishing_within_seconds():
    estimate = ESTIMATOR.completion([ProgressSample(0, 0, 10), ProgressSample(100, 10, 10)])
    assert estimate is not None
    assert 100 < estimate.quantile(0.5) < 120


def test_order_of_samples_does_not_matter():
    samples = linear(500, 0, 1000, [0, 300, 600])
    forward, backward = ESTIMATOR.completion(samples), ESTIMATOR.completion(samples[::-1])
    assert forward == backward
