from __future__ import annotations

import bisect
import random

import pytest

from enrichwatch.polling import TokenBucket, backoff


@pytest.mark.parametrize(("limit", "seed"), [(300, 0), (30, 1), (1, 2), (45, 3)])
def test_reservations_never_exceed_the_limit_in_any_minute(limit, seed):
    rng, bucket, now = random.Random(seed), TokenBucket.per_minute(limit), 0.0
    asked, granted = [], []
    for _ in range(3000):
        now += rng.expovariate(limit / 20)
        asked.append(now)
        granted.append(bucket.reserve(now))
    assert granted == sorted(granted)
    assert all(at >= when for at, when in zip(granted, asked, strict=True))
    for i, start in enumerate(granted):
        in_window = bisect.bisect_left(granted, start + 60.0 - 1e-6) - i
        assert in_window <= limit


def test_a_reservation_is_never_before_it_was_asked_for():
    bucket, rng, now = TokenBucket(rate=0.5, capacity=3), random.Random(5), 0.0
    for _ in range(500):
        now += rng.uniform(0, 3)
        assert bucket.reserve(now) >= now


def test_available_at_peeks_without_spending():
    bucket = TokenBucket(rate=1.0, capacity=1)
    assert bucket.available_at(10.0) == 10.0
    assert bucket.available_at(10.0) == 10.0
    assert bucket.reserve(10.0) == 10.0
    assert bucket.available_at(10.0) == pytest.approx(11.0)
    assert bucket.reserve(10.0) == pytest.approx(11.0)
    assert bucket.reserve(10.0) == pytest.approx(12.0)


def test_a_vendor_stop_blocks_the_whole_account():
    bucket = TokenBucket.per_minute(300)
    bucket.block_until(100.0)
    assert bucket.available_at(50.0) == 100.0
    assert bucket.reserve(60.0) == 100.0
    bucket.block_until(80.0)
    assert bucket.available_at(90.0) >= 100.0


def test_vendor_counts_override_ours():
    bucket = TokenBucket.per_minute(30)
    bucket.observe(0.0, remaining=0, reset=42.0)
    assert bucket.available_at(0.0) == pytest.approx(42.0)
    bucket = TokenBucket(rate=1.0, capacity=10)
    bucket.observe(0.0, remaining=1, reset=None)
    assert bucket.reserve(0.0) == 0.0
    assert bucket.reserve(0.0) == pytest.approx(1.0)
    bucket.observe(5.0, remaining=None, reset=None)


def test_no_documented_limit_means_only_vendor_stops_slow_us():
    bucket = TokenBucket.per_minute(None)
    assert [bucket.reserve(1.0) for _ in range(1000)] == [1.0] * 1000
    bucket.block_until(9.0)
    assert bucket.reserve(1.0) == 9.0


def test_bucket_rejects_nonsense():
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(rate=0.0)
    with pytest.raises(ValueError, match="capacity"):
        TokenBucket(rate=1.0, capacity=0.5)


@pytest.mark.parametrize("seed", range(5))
def test_backoff_grows_exponentially_with_jitter_up_to_the_cap(seed):
    rng = random.Random(seed)
    for attempt in range(1, 40):
        step = min(300.0, 2.0 * 2 ** (attempt - 1))
        delay = backoff(attempt, rng, base=2.0, cap=300.0)
        assert step / 2 <= delay <= step


def test_backoff_jitter_spreads_retries_and_is_reproducible():
    delays = [backoff(5, random.Random(seed)) for seed in range(50)]
    assert len({round(d, 6) for d in delays}) > 40
    assert backoff(5, random.Random(1)) == backoff(5, random.Random(1))


@pytest.mark.parametrize("retry_after", [0.0, 1.0, 30.0, 5000.0])
def test_backoff_honours_retry_after(retry_after):
    rng = random.Random(9)
    for attempt in range(1, 10):
        delay = backoff(attempt, rng, base=2.0, cap=60.0, retry_after=retry_after)
        assert retry_after <= delay <= retry_after + 2.0


def test_backoff_counts_from_the_first_failure():
    with pytest.raises(ValueError, match="attempt"):
        backoff(0, random.Random(0))
