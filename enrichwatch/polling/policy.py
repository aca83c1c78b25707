"""When to ask a vendor about a job next.

The ideal is one status call per job, made just after it finishes (none at all before a
callback). The policy approaches it by asking, at every decision, "when could the job have
finished early enough that we would notice it later than the detection target?" and waiting
until just before that, but never past the moment the job is almost surely done. Early on the
estimate is the vendor's duration history for jobs of this size; as progress counts arrive
they sharpen it, so checks thin out in the middle of a job and land near its end.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from enum import StrEnum

from enrichwatch.config import Settings, VendorSettings
from enrichwatch.models import JobState
from enrichwatch.polling.budget import backoff
from enrichwatch.polling.durations import CompletionTime, DurationModel, blend
from enrichwatch.polling.progress import ProgressEstimator, ProgressSample
from enrichwatch.vendors.base import VendorLimits

DAY = 86_400.0


class CheckReason(StrEnum):
    PREDICTED = "predicted"
    """Placed from the completion estimate."""
    SAFETY_NET = "safety_net"
    """The maximum interval: no open job goes unchecked longer, callbacks or not."""
    RATE_LIMITED = "rate_limited"
    """The account's request budget could not afford the call any earlier."""
    CALLBACK = "callback"
    """A callback arrived; one status call confirms what it claims."""
    WEBHOOK_WAIT = "webhook_wait"
    """Waiting for a callback; the time is the deadline after which it counts as late."""
    WEBHOOK_LATE = "webhook_late"
    """The callback is late; checking until the job ends, each time at a deadline re-armed
    from what the last call showed."""
    PAUSED = "paused"
    """The job waits for an operator; only the safety net checks it."""
    BACKOFF = "backoff"
    """The last call failed; retrying after a backoff or the vendor's Retry-After."""
    EXPIRED = "expired"
    """Too old: the caller marks the job expired and stops checking it."""


@dataclass(frozen=True)
class CheckPlan:
    """When to make the next status call (clock time) and why.

    `late_webhook` is true once a job that expects a callback has passed its deadline without
    one. A `WEBHOOK_WAIT` plan is due exactly at that deadline, so the call made for it is
    the first fallback poll: append `webhook.late` when making that call (if no callback came
    meanwhile) or when a plan says `late_webhook`, whichever comes first; dedupe on the job.
    """

    at: float
    reason: CheckReason
    late_webhook: bool = False


@dataclass(frozen=True)
class VendorPolicy:
    """One vendor's polling bounds and the policy's tolerances; all times in seconds.

    `miss_probability` is how likely any one check may be to notice a completion later than
    the detection target; `done_quantile` is the confidence at which a job is treated as
    surely finished, so the policy never waits past it; `webhook_quantile` places the
    callback deadline within the predicted duration.
    """

    min_interval: float
    max_interval: float
    target_floor: float = 30.0
    target_fraction: float = 0.05
    max_age: float = 7 * DAY
    miss_probability: float = 0.01
    done_quantile: float = 0.8
    webhook_quantile: float = 0.95
    backoff_base: float = 5.0
    estimator: ProgressEstimator = field(default_factory=ProgressEstimator)

    def __post_init__(self) -> None:
        if not 0 < self.min_interval <= self.max_interval:
            raise ValueError("need 0 < min_interval <= max_interval")
        if self.target_floor <= 0 or not 0 <= self.target_fraction < 1:
            raise ValueError("need target_floor > 0 and 0 <= target_fraction < 1")
        if self.max_age <= 0 or self.backoff_base <= 0:
            raise ValueError("max_age and backoff_base must be positive")
        for name in ("miss_probability", "done_quantile", "webhook_quantile"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must lie strictly between 0 and 1")

    def detection_target(self, age: float) -> float:
        """How late after finishing at `age` seconds a job may be noticed."""
        return max(self.target_floor, self.target_fraction * age)


EXPIRED_PAUSED = "paused for longer than the maximum age, and not resumed"
"""How the reason of a job that expired waiting on a person begins."""


@dataclass(frozen=True)
class JobView:
    """What the policy needs to know about one open job, as the event log has it.

    `size` is the number of records submitted (None if unknown). `samples` are the progress
    counts seen so far, the submission included as `done=0` (empty for vendors that give no
    counts). `last_check_at` is when a status call was last made for this job, whatever its
    outcome; `failures` counts consecutive failed calls up to then, and `retry_after` is the
    vendor's `Retry-After` / `x-ratelimit-reset` from the last failure, in seconds after it.
    `expects_callback` is true when the job was submitted with our callback URL to a vendor
    that sends callbacks; `callback_at` is when the latest callback for it arrived.

    `submitted_at` is where the job's age counts from: its run's start, moved on by the
    pauses that have ended, since a pause waits on a person and not on the vendor.
    `paused_at` is when the current pause began (None while the job is not paused).
    """

    submitted_at: float
    state: JobState = JobState.SUBMITTED
    size: int | None = None
    samples: tuple[ProgressSample, ...] = ()
    last_check_at: float | None = None
    failures: int = 0
    retry_after: float | None = None
    expects_callback: bool = False
    callback_at: float | None = None
    paused_at: float | None = None

    def expires_at(self, max_age: float) -> float:
        """When the job has outlived `max_age`: that long into its run, or, while it is
        paused, that long after the pause began, so a person always has the whole of it to
        act and a job resumed late is not expired halfway through its run."""
        return (self.submitted_at if self.paused_at is None else self.paused_at) + max_age

    def expiry_reason(self) -> str:
        """Why the job is expired once past `expires_at`."""
        return EXPIRED_PAUSED if self.paused_at is not None else "older than the maximum age"

    @property
    def anchor(self) -> float:
        """The last time the job was known to be unfinished: its last status call (a job
        still open after one was unfinished then, or the call failed and taught nothing)."""
        return max(self.submitted_at, self.last_check_at or self.submitted_at)

    @property
    def callback_pending(self) -> bool:
        """A callback arrived that no status call has confirmed yet."""
        return self.callback_at is not None and (
            self.last_check_at is None or self.callback_at > self.last_check_at
        )


def next_check(
    job: JobView,
    now: float,
    policy: VendorPolicy,
    durations: DurationModel,
    rng: random.Random,
    *,
    budget_ready_at: float = -math.inf,
) -> CheckPlan:
    """The next status call for an open job, decided at clock time `now`.

    `durations` is the vendor's model learned from its past jobs; `rng` jitters retries only;
    `budget_ready_at` is the vendor account's `TokenBucket.available_at(now)`, so no plan is
    made for a time the budget cannot afford. The plan never comes sooner than
    `min_interval` after the last call, nor later than `max_interval` after it or than the
    job's maximum age, unless the budget or the vendor's Retry-After forbids. An `EXPIRED`
    plan is not a call: the caller marks the job expired.
    """
    if job.state.is_terminal:
        raise ValueError(f"job is {job.state}; nothing left to check")
    if now >= job.expires_at(policy.max_age):
        return CheckPlan(now, CheckReason.EXPIRED)
    wanted = _wanted(job, now, policy, durations, rng)
    return _bounded(wanted, job, now, policy, budget_ready_at)


def completion_estimate(
    job: JobView, policy: VendorPolicy, durations: DurationModel
) -> CompletionTime:
    """When the job will finish: its vendor's durations for jobs of its size, conditioned on
    it being unfinished at its last check, sharpened by its own progress where counted."""
    prior = durations.duration(job.size).completion(job.submitted_at, job.anchor)
    progress = policy.estimator.completion(job.samples)
    return prior if progress is None else blend(prior, progress)


def _wanted(
    job: JobView, now: float, policy: VendorPolicy, durations: DurationModel, rng: random.Random
) -> CheckPlan:
    if job.failures > 0:
        return _retry(job, policy, rng)
    if job.callback_pending:
        assert job.callback_at is not None
        return CheckPlan(job.callback_at, CheckReason.CALLBACK)
    if job.state is JobState.NEEDS_ACTION:
        return CheckPlan(job.anchor + policy.max_interval, CheckReason.PAUSED)
    deadline = callback_deadline(job, policy, durations)
    if deadline is not None and now < deadline:
        return CheckPlan(deadline, CheckReason.WEBHOOK_WAIT)
    completion = completion_estimate(job, policy, durations)
    if deadline is not None and job.callback_at is None:
        return CheckPlan(_late(completion, job, deadline, policy), CheckReason.WEBHOOK_LATE, True)
    return CheckPlan(_predicted(completion, job, policy), CheckReason.PREDICTED)


def callback_deadline(job: JobView, policy: VendorPolicy, durations: DurationModel) -> float | None:
    """When a job that expects a callback should have finished, by its vendor's history for
    jobs of its size (None if it expects none). Past it, the callback counts as late."""
    if not job.expects_callback:
        return None
    return job.submitted_at + durations.duration(job.size).quantile(policy.webhook_quantile)


def _late(completion: CompletionTime, job: JobView, deadline: float, policy: VendorPolicy) -> float:
    """Past the deadline, the first call is due soon: the silence is as likely a lost callback
    as a slow job. Once a call since then has found the job still running, the silence is
    explained and the callback is again the likely way to hear of the end, so rather than
    polling toward the completion, wait for it up to a deadline re-armed from the sharper
    estimate (progress counts, a longer run); only a lost callback pays for that wait."""
    if job.last_check_at is None or job.last_check_at < deadline:
        return _predicted(completion, job, policy)
    return completion.quantile(policy.webhook_quantile)


def _retry(job: JobView, policy: VendorPolicy, rng: random.Random) -> CheckPlan:
    delay = backoff(
        job.failures,
        rng,
        base=policy.backoff_base,
        cap=policy.max_interval,
        retry_after=job.retry_after,
    )
    return CheckPlan(job.anchor + delay, CheckReason.BACKOFF)


def _predicted(completion: CompletionTime, job: JobView, policy: VendorPolicy) -> float:
    """The latest check that still notices, within the detection target, all but
    `miss_probability` of the completions it might find, and no later than the time the job
    is almost surely done (waiting past that only adds delay, never saves a call)."""
    early = completion.quantile(policy.miss_probability)
    within_target = early + policy.detection_target(early - job.submitted_at)
    return min(within_target, completion.quantile(policy.done_quantile))


def _bounded(
    plan: CheckPlan, job: JobView, now: float, policy: VendorPolicy, budget_ready_at: float
) -> CheckPlan:
    last = job.last_check_at if job.last_check_at is not None else job.submitted_at
    at, reason = plan.at, plan.reason
    latest = min(last + policy.max_interval, job.expires_at(policy.max_age))
    if at > latest:
        at, reason = latest, CheckReason.SAFETY_NET
    at = max(at, last + policy.min_interval, now)
    if job.failures > 0 and job.retry_after is not None:
        at = max(at, last + job.retry_after)
    if budget_ready_at > at:
        at, reason = budget_ready_at, CheckReason.RATE_LIMITED
    return CheckPlan(at, reason, plan.late_webhook)


def vendor_policy(limits: VendorLimits, vendor: VendorSettings, settings: Settings) -> VendorPolicy:
    """The policy for one vendor from its adapter's `limits` and the configured bounds and
    detection target; the minimum interval defaults to the vendor's recommended one."""
    minimum = vendor.min_poll_interval
    if minimum is None:
        minimum = limits.recommended_poll_interval
    return VendorPolicy(
        min_interval=min(minimum, vendor.max_poll_interval),
        max_interval=vendor.max_poll_interval,
        target_floor=settings.detection_target,
        target_fraction=settings.detection_target_fraction,
        max_age=settings.max_job_age,
    )
