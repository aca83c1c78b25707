from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest

from enrichwatch.config import load_settings
from enrichwatch.errors import SettingsError
from enrichwatch.models import JobState, VendorName
from enrichwatch.polling import (
    CheckReason,
    DurationModel,
    JobView,
    PastJob,
    ProgressSample,
    VendorPolicy,
    next_check,
    vendor_policy,
)
from enrichwatch.vendors import ADAPTERS

OPEN_STATES = [JobState.SUBMITTED, JobState.QUEUED, JobState.RUNNING, JobState.NEEDS_ACTION]


def past_jobs(
    rng: random.Random, n: int, median: float = 600.0, sigma: float = 0.4
) -> list[PastJob]:
    return [PastJob(100, math.exp(rng.gauss(math.log(median), sigma))) for _ in range(n)]


MODEL = DurationModel(past_jobs(random.Random(0), 300))
POLICY = VendorPolicy(min_interval=10.0, max_interval=3600.0)


def random_case(rng: random.Random) -> tuple[JobView, float, VendorPolicy, float]:
    """Any open job at any moment, as the reconciler might see it."""
    submitted = rng.uniform(0, 1e6)
    last = submitted + rng.uniform(0, 5000) if rng.random() < 0.8 else None
    now = (last or submitted) + rng.expovariate(1 / 300)
    total = rng.randint(1, 5000)
    samples = [ProgressSample(submitted, 0, total)]
    for _ in range(rng.randint(0, 5)):
        t = rng.uniform(submitted, last or submitted)
        samples.append(ProgressSample(t, rng.randint(0, total), total))
    low = rng.choice([1.0, 5.0, 30.0, 60.0])
    policy = VendorPolicy(
        min_interval=low,
        max_interval=low * rng.choice([1, 10, 100]),
        max_age=rng.choice([3600.0, 7 * 86400.0]),
    )
    failures = rng.choice([0, 0, 0, 1, 4])
    job = JobView(
        submitted_at=submitted,
        state=rng.choice(OPEN_STATES),
        size=rng.choice([None, total]),
        samples=tuple(samples) if rng.random() < 0.7 else (),
        last_check_at=last,
        failures=failures,
        retry_after=rng.choice([None, 1.0, 120.0, 9000.0]) if failures else None,
        expects_callback=rng.random() < 0.4,
        callback_at=rng.choice([None, now - rng.uniform(0, 600)]),
    )
    budget = rng.choice([-math.inf, now - 5, now + rng.uniform(0, 900)])
    return job, now, policy, budget


def cases(seed: int, n: int = 3000):
    rng = random.Random(seed)
    for _ in range(n):
        job, now, policy, budget = random_case(rng)
        plan = next_check(job, now, policy, MODEL, rng, budget_ready_at=budget)
        yield job, now, policy, budget, plan


@pytest.mark.parametrize("seed", range(3))
def test_never_faster_than_the_minimum_interval_nor_in_the_past(seed):
    for job, now, policy, _, plan in cases(seed):
        if plan.reason is not CheckReason.EXPIRED:
            last = job.last_check_at if job.last_check_at is not None else job.submitted_at
            assert plan.at >= last + policy.min_interval
        assert plan.at >= now


@pytest.mark.parametrize("seed", range(3))
def test_never_later_than_the_maximum_interval_unless_told_to_wait(seed):
    for job, now, policy, budget, plan in cases(seed):
        last = job.last_check_at if job.last_check_at is not None else job.submitted_at
        told = job.retry_after if job.failures and job.retry_after is not None else -math.inf
        assert plan.at <= max(now, last + policy.max_interval, budget, last + told) + 1e-6


@pytest.mark.parametrize("seed", range(3))
def test_never_plans_a_call_the_budget_cannot_afford(seed):
    for _, _, _, budget, plan in cases(seed):
        if plan.reason is not CheckReason.EXPIRED:
            assert plan.at >= budget


@pytest.mark.parametrize("seed", range(3))
def test_honours_retry_after(seed):
    for job, _, _, _, plan in cases(seed):
        if plan.reason is CheckReason.EXPIRED:
            continue
        if job.failures and job.retry_after is not None and job.last_check_at is not None:
            assert plan.at >= job.last_check_at + job.retry_after


@pytest.mark.parametrize("seed", range(3))
def test_deterministic_for_the_same_inputs_and_seed(seed):
    first = [plan for *_, plan in cases(seed, 300)]
    second = [plan for *_, plan in cases(seed, 300)]
    assert first == second


def test_failures_back_off_exponentially():
    job = JobView(submitted_at=0.0, state=JobState.RUNNING, last_check_at=100.0)
    delays = []
    for failures in range(1, 8):
        plan = next_check(replace(job, failures=failures), 100.0, POLICY, MODEL, random.Random(1))
        assert plan.reason is CheckReason.BACKOFF
        delays.append(plan.at - 100.0)
    assert delays[-1] > 10 * delays[0]


def test_expired_after_the_maximum_age():
    policy = replace(POLICY, max_age=86_400.0)
    job = JobView(submitted_at=0.0, state=JobState.RUNNING, last_check_at=86_000.0)
    assert next_check(job, 86_400.0, policy, MODEL, random.Random(0)).reason is CheckReason.EXPIRED
    before = next_check(job, 86_100.0, policy, MODEL, random.Random(0))
    assert before.reason is not CheckReason.EXPIRED
    assert before.at <= 86_400.0


def test_a_paused_job_expires_the_maximum_age_after_its_pause_not_its_start():
    """A pause waits on a person: whenever it began, they have the whole maximum age to act,
    and the job is still looked at once more before it is given up."""
    policy = replace(POLICY, max_age=86_400.0, max_interval=30_000.0)
    job = JobView(
        submitted_at=0.0, state=JobState.NEEDS_ACTION, last_check_at=80_000.0, paused_at=80_000.0
    )
    waiting = next_check(job, 140_000.0, policy, MODEL, random.Random(0))
    assert waiting.reason is not CheckReason.EXPIRED
    last = next_check(
        replace(job, last_check_at=150_000.0), 150_000.0, policy, MODEL, random.Random(0)
    )
    assert last.at == 166_400.0
    expired = next_check(job, 166_400.0, policy, MODEL, random.Random(0))
    assert expired.reason is CheckReason.EXPIRED


def test_terminal_jobs_have_nothing_to_check():
    for state in (JobState.COMPLETED, JobState.FAILED, JobState.EXPIRED):
        with pytest.raises(ValueError, match="nothing left"):
            next_check(JobView(0.0, state=state), 1.0, POLICY, MODEL, random.Random(0))


def test_a_paused_job_is_left_to_the_safety_net():
    job = JobView(0.0, state=JobState.NEEDS_ACTION, last_check_at=50.0)
    plan = next_check(job, 50.0, POLICY, MODEL, random.Random(0))
    assert (plan.at, plan.reason) == (50.0 + POLICY.max_interval, CheckReason.PAUSED)


def test_webhook_job_is_not_polled_before_its_deadline():
    job = JobView(submitted_at=0.0, size=100, expects_callback=True)
    deadline = MODEL.duration(100).quantile(POLICY.webhook_quantile)
    for now in (0.0, 60.0, deadline / 2, deadline - 1):
        plan = next_check(job, now, POLICY, MODEL, random.Random(0))
        assert (plan.at, plan.reason, plan.late_webhook) == (
            pytest.approx(deadline),
            CheckReason.WEBHOOK_WAIT,
            False,
        )
    safety = replace(POLICY, max_interval=deadline / 3)
    assert next_check(job, 0.0, safety, MODEL, random.Random(0)).reason is CheckReason.SAFETY_NET


def test_late_webhook_falls_back_to_polling_until_the_job_ends():
    deadline = MODEL.duration(100).quantile(POLICY.webhook_quantile)
    job = JobView(submitted_at=0.0, size=100, expects_callback=True, last_check_at=deadline / 2)
    first = next_check(job, deadline + 5, POLICY, MODEL, random.Random(0))
    assert (first.at, first.reason, first.late_webhook) == (
        deadline + 5,
        CheckReason.WEBHOOK_LATE,
        True,
    )
    running = replace(
        job,
        state=JobState.RUNNING,
        samples=(ProgressSample(0.0, 0, 100), ProgressSample(deadline, 90, 100)),
        last_check_at=deadline,
    )
    plan = next_check(running, deadline, POLICY, MODEL, random.Random(0))
    assert plan.late_webhook
    assert plan.reason is CheckReason.WEBHOOK_LATE
    # Re-armed from the progress counts: well before the job's age doubles.
    assert deadline + POLICY.min_interval <= plan.at < deadline + 0.25 * deadline


def test_a_callback_makes_the_job_due_for_one_confirming_call():
    job = JobView(submitted_at=0.0, size=100, expects_callback=True, last_check_at=None)
    plan = next_check(replace(job, callback_at=30.0), 30.0, POLICY, MODEL, random.Random(0))
    assert (plan.at, plan.reason) == (30.0, CheckReason.CALLBACK)
    recent = replace(job, last_check_at=25.0, callback_at=30.0)
    assert next_check(recent, 30.0, POLICY, MODEL, random.Random(0)).at == 35.0
    confirmed = replace(job, state=JobState.RUNNING, last_check_at=31.0, callback_at=30.0)
    plan = next_check(confirmed, 31.0, POLICY, MODEL, random.Random(0))
    assert plan.reason is not CheckReason.CALLBACK
    assert not plan.late_webhook


def poll_until_done(
    end: float, progress, policy: VendorPolicy, model: DurationModel, size: int | None = 1000
) -> tuple[int, float]:
    """Poll one job on a virtual clock; returns (status calls, detection delay)."""
    now, calls = 0.0, 0
    job = JobView(submitted_at=0.0, size=size, samples=progress(0.0))
    while True:
        now = next_check(job, now, policy, model, random.Random(0)).at
        calls += 1
        if now >= end:
            return calls, now - end
        job = replace(
            job, state=JobState.RUNNING, last_check_at=now, samples=job.samples + progress(now)
        )


@pytest.mark.parametrize("end", [300.0, 900.0, 2400.0, 7200.0])
def test_linear_progress_is_caught_soon_after_the_end_with_few_calls(end):
    def progress(t: float) -> tuple[ProgressSample, ...]:
        return (ProgressSample(t, min(1000, int(1000 * t / end)), 1000),)

    calls, delay = poll_until_done(end, progress, POLICY, DurationModel([]))
    assert delay <= POLICY.detection_target(end)
    assert calls <= 8
    assert calls < end / 30 / 3 or end <= 300


def test_without_progress_counts_the_duration_history_guides_the_checks():
    rng, within, calls, fixed_calls = random.Random(3), 0, 0, 0.0
    model = DurationModel(past_jobs(rng, 400, median=1800, sigma=0.2))
    for _ in range(40):
        end = math.exp(rng.gauss(math.log(1800), 0.2))
        used, delay = poll_until_done(end, lambda t: (), POLICY, model, size=100)
        within += delay <= POLICY.detection_target(end)
        calls += used
        fixed_calls += end / POLICY.detection_target(end)
    assert within >= 36
    assert calls < 0.7 * fixed_calls


def test_the_vendor_policy_comes_from_settings_and_the_adapter(monkeypatch):
    monkeypatch.setenv("ENRICHWATCH_ECORE__MIN_POLL_INTERVAL", "20")
    monkeypatch.setenv("ENRICHWATCH_ECORE__MAX_POLL_INTERVAL", "900")
    monkeypatch.setenv("ENRICHWATCH_DETECTION_TARGET", "45")
    settings = load_settings()
    ecore = vendor_policy(ADAPTERS[VendorName.ECORE].limits, settings.ecore, settings)
    assert (ecore.min_interval, ecore.max_interval, ecore.target_floor) == (20.0, 900.0, 45.0)
    name = VendorName.INFLUENCERS_CLUB
    club = vendor_policy(ADAPTERS[name].limits, settings.vendor(name), settings)
    assert club.min_interval == ADAPTERS[name].limits.recommended_poll_interval
    assert (club.max_interval, club.target_fraction) == (3600.0, 0.05)


def test_poll_bounds_must_be_ordered(monkeypatch):
    monkeypatch.setenv("ENRICHWATCH_REPROMPT__MIN_POLL_INTERVAL", "100")
    monkeypatch.setenv("ENRICHWATCH_REPROMPT__MAX_POLL_INTERVAL", "50")
    with pytest.raises(SettingsError, match="min_poll_interval"):
        load_settings()


def test_policy_rejects_nonsense():
    with pytest.raises(ValueError, match="min_interval"):
        VendorPolicy(min_interval=10.0, max_interval=5.0)
    with pytest.raises(ValueError, match="miss_probability"):
        VendorPolicy(min_interval=1.0, max_interval=5.0, miss_probability=1.0)
    with pytest.raises(ValueError, match="target"):
        VendorPolicy(min_interval=1.0, max_interval=5.0, target_fraction=-0.1)
