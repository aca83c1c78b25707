from __future__ import annotations

import random

import pytest

from enrichwatch.sim import JobProfile, SimClock
from enrichwatch.sim.jobs import JobPlan, Phase, RecordState, SimJob, job_rng


def make_job(total: int = 1000, seed: int = 1, **profile: float) -> SimJob:
    plan = JobPlan.draw(JobProfile(**profile), total, random.Random(seed))
    return SimJob(f"job-{seed}", total, plan, created_at=0.0)


def test_manual_clock_moves_only_when_advanced() -> None:
    clock = SimClock()
    start = clock.now()
    assert clock.now() == start
    clock.advance(90)
    assert clock.now() == start + 90
    clock.advance_to(start + 10)
    assert clock.now() == start + 90
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)


def test_scaled_clock_runs_faster_than_real_time() -> None:
    clock = SimClock(start=0.0, speed=1000.0)
    first = clock.now()
    clock.advance(5)
    assert clock.now() >= first + 5
    assert clock.real_seconds(60) == pytest.approx(0.06)
    assert SimClock().real_seconds(60) == 0.0


def test_progress_is_monotonic_and_ends_complete() -> None:
    job = make_job(total=5000, record_failure_rate=0.1, noise=1.0)
    seen = [job.progress(t).processed for t in range(0, 2000, 5)]
    assert seen == sorted(seen)
    end = job.terminal_at()
    assert end is not None
    assert job.progress(end - 0.01).phase == Phase.RUNNING
    final = job.progress(end)
    assert final.phase == Phase.COMPLETED
    assert final.processed == 5000
    assert final.failed == sum(job.is_failed(p) for p in range(5000))
    assert final.failed == pytest.approx(500, abs=1)


def test_queued_before_start_delay() -> None:
    job = make_job(start_delay=30, start_jitter=0)
    assert job.progress(29.9).phase == Phase.QUEUED
    assert job.record_state(0, job.progress(10)) == RecordState.PENDING
    assert job.progress(31).phase == Phase.RUNNING


def test_same_seed_same_plan_different_seed_different_plan() -> None:
    a = JobPlan.draw(JobProfile(), 100, job_rng(3, "crustdata", 0))
    b = JobPlan.draw(JobProfile(), 100, job_rng(3, "crustdata", 0))
    c = JobPlan.draw(JobProfile(), 100, job_rng(4, "crustdata", 0))
    assert a == b
    assert a != c


def test_success_position_matches_failure_pattern() -> None:
    job = make_job(total=300, record_failure_rate=0.3)
    successes = [p for p in range(300) if not job.is_failed(p)]
    assert [job.success_position(j) for j in range(len(successes))] == successes
    assert job.first_failure() == next(p for p in range(300) if job.is_failed(p))


def test_credit_pause_holds_until_resume() -> None:
    job = make_job(total=100, credit_pause_rate=1.0, credit_pause_at=0.5, record_failure_rate=0)
    assert job.terminal_at() is None
    late = job.progress(10_000)
    assert late.phase == Phase.PAUSED_CREDITS
    assert late.processed == 50
    assert job.resume(10_000)
    assert job.progress(10_000).processed == 50
    end = job.terminal_at()
    assert end is not None
    assert end > 10_000
    assert job.progress(end).phase == Phase.COMPLETED


def test_manual_pause_freezes_progress_and_shifts_the_end() -> None:
    job = make_job(total=1000, start_delay=0, start_jitter=0)
    end = job.terminal_at()
    assert end is not None
    middle = end / 2
    assert job.pause(middle)
    frozen = job.progress(middle).processed
    assert job.progress(middle + 500).processed == frozen
    assert job.progress(middle + 500).phase == Phase.PAUSED
    assert job.resume(middle + 500)
    assert job.terminal_at() == pytest.approx(end + 500)


def test_whole_job_failure_stops_progress() -> None:
    job = make_job(total=1000, job_failure_rate=1.0)
    end = job.terminal_at()
    assert end is not None
    failed = job.progress(end + 1000)
    assert failed.phase == Phase.FAILED
    assert 0 < failed.processed < 1000
    assert job.record_state(999, failed) == RecordState.CANCELLED


def test_stop_on_failure_halts_after_first_failed_record() -> None:
    plan = JobPlan.draw(JobProfile(record_failure_rate=0.25), 8, random.Random(5))
    job = SimJob("k", 8, plan, 0.0, stop_on_failure=True)
    first = job.first_failure()
    assert first is not None
    end = job.terminal_at()
    assert end is not None
    stopped = job.progress(end)
    assert stopped.phase == Phase.STOPPED
    assert stopped.processed == first + 1
