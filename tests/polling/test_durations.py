from __future__ import annotations

import math
import random

import pytest

from enrichwatch.polling import DurationModel, DurationPrior, LogNormal, PastJob
from enrichwatch.polling.durations import LogNormalAfter, as_log_normal, blend


def history(rng: random.Random, n: int, *, slope: float = 0.5, sigma: float = 0.4) -> list[PastJob]:
    """Durations log-normal around 600 s at size 100, growing as size**slope."""
    jobs = []
    for _ in range(n):
        size = round(math.exp(rng.uniform(math.log(5), math.log(5000))))
        mu = math.log(600) + slope * math.log(size / 100)
        jobs.append(PastJob(size, math.exp(rng.gauss(mu, sigma))))
    return jobs


@pytest.mark.parametrize("seed", range(3))
def test_learned_quantiles_converge_on_the_true_log_normal(seed):
    model = DurationModel(history(random.Random(seed), 3000))
    for size in (10, 100, 1000):
        learned = model.duration(size)
        truth = LogNormal(math.log(600) + 0.5 * math.log(size / 100), 0.4)
        assert learned.mu == pytest.approx(truth.mu, abs=0.03)
        assert learned.sigma == pytest.approx(truth.sigma, rel=0.05)
        for p in (0.05, 0.5, 0.95):
            assert learned.quantile(p) == pytest.approx(truth.quantile(p), rel=0.06)


def test_without_history_the_prior_is_vague_and_a_little_history_outweighs_it():
    prior = DurationPrior(median=300, sigma=1.5, weight=2)
    empty = DurationModel([], prior).duration(100)
    assert empty.median == pytest.approx(300)
    assert empty.sigma > 1.5
    learned = DurationModel(history(random.Random(1), 30), prior).duration(100)
    assert learned.median == pytest.approx(600, rel=0.3)
    assert learned.sigma < 0.8


def test_fewer_jobs_give_wider_predictions():
    rng = random.Random(2)
    jobs = history(rng, 2000)
    few, many = DurationModel(jobs[:15]), DurationModel(jobs)
    assert few.duration(100).sigma > many.duration(100).sigma


def test_unknown_size_is_predicted_from_all_jobs_and_is_wider():
    model = DurationModel(history(random.Random(3), 2000))
    assert model.duration(None).sigma > model.duration(100).sigma


def test_conditional_quantiles_lie_after_the_anchor_and_rise_with_p():
    duration = LogNormal(math.log(600), 1.0)
    for elapsed in (0.0, 60.0, 600.0, 6000.0, 1e6):
        completion = duration.completion(started=1000.0, alive_at=1000.0 + elapsed)
        values = [completion.quantile(p) for p in (0.001, 0.05, 0.5, 0.95, 0.999)]
        assert all(v >= 1000.0 + elapsed for v in values)
        assert values == sorted(values)
        assert all(math.isfinite(v) for v in values)


def test_a_job_that_outlived_most_of_its_peers_is_expected_to_take_longer_still():
    duration = LogNormal(math.log(600), 1.0)
    fresh = duration.completion(0.0, 0.0).quantile(0.5)
    old = duration.completion(0.0, 3000.0).quantile(0.5)
    assert fresh == pytest.approx(600)
    assert old > 3000.0 + fresh / 2


def test_conditioning_matches_sampling():
    duration, rng = LogNormal(math.log(600), 0.8), random.Random(4)
    survivors = sorted(
        d
        for d in (math.exp(rng.gauss(duration.mu, duration.sigma)) for _ in range(200_000))
        if d > 900
    )
    completion = duration.completion(0.0, 900.0)
    for p in (0.1, 0.5, 0.9):
        assert completion.quantile(p) == pytest.approx(survivors[int(p * len(survivors))], rel=0.02)


def test_blend_is_narrower_than_either_estimate_and_lies_between_them():
    early = LogNormalAfter(100.0, math.log(200), 0.5)
    late = LogNormalAfter(100.0, math.log(800), 0.5)
    blended = blend(early, late)
    assert blended.sigma < 0.5
    assert 300 < blended.quantile(0.5) < 900
    assert blended.quantile(0.5) == pytest.approx(100 + 400, rel=0.01)


def test_log_normal_round_trips_through_its_quantiles():
    original = LogNormalAfter(50.0, 4.0, 0.7)
    matched = as_log_normal(original)
    assert (matched.anchor, matched.mu, matched.sigma) == pytest.approx((50.0, 4.0, 0.7))
