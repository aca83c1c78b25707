"""How long a vendor's jobs take, learned from the durations of its past jobs.

Batch durations are skewed and scale with size, so the model is log-normal with a log-duration
linear in log-size: a Bayesian linear regression with a weak prior, which pools strength
across sizes instead of splitting a few hundred jobs into thin buckets. Completion-time
distributions are expressed in absolute clock time after an `anchor`, the last moment the job
was known to be unfinished, so every estimate is conditioned on "not finished yet".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Protocol

_STD = NormalDist()
_ONE_SIGMA = _STD.cdf(1.0)
_TAIL_Z = 8.0
"""Beyond this many sigmas, tail probabilities underflow; an exponential tail stands in."""


class CompletionTime(Protocol):
    """A distribution of the absolute time at which a job will finish."""

    @property
    def anchor(self) -> float:
        """The job is known to be unfinished at this time; every quantile lies after it."""
        ...

    def quantile(self, p: float) -> float:
        """The time by which the job has finished with probability `p` (0 < p < 1)."""
        ...


@dataclass(frozen=True)
class LogNormalAfter:
    """Completion at `anchor + X`, with log X normal (mu, sigma): the shape of an
    extrapolation from progress, and of a blend of estimates."""

    anchor: float
    mu: float
    sigma: float

    def quantile(self, p: float) -> float:
        return self.anchor + math.exp(self.mu + self.sigma * _STD.inv_cdf(_clip(p)))


@dataclass(frozen=True)
class LogNormal:
    """A log-normal job duration in seconds: log D ~ Normal(mu, sigma)."""

    mu: float
    sigma: float

    @property
    def median(self) -> float:
        return math.exp(self.mu)

    def quantile(self, p: float) -> float:
        return math.exp(self.mu + self.sigma * _STD.inv_cdf(_clip(p)))

    def completion(self, started: float, alive_at: float) -> ConditionalCompletion:
        """Completion time of a job started at `started` and still unfinished at `alive_at`."""
        return ConditionalCompletion(self, started, max(started, alive_at))


@dataclass(frozen=True)
class ConditionalCompletion:
    """`started + D` for D log-normal, conditioned on D > anchor - started."""

    duration: LogNormal
    started: float
    anchor: float

    def quantile(self, p: float) -> float:
        elapsed = self.anchor - self.started
        if elapsed <= 0:
            return self.started + self.duration.quantile(p)
        z_alive = (math.log(elapsed) - self.duration.mu) / self.duration.sigma
        if z_alive > _TAIL_Z:
            z = z_alive - math.log1p(-_clip(p)) / z_alive
        else:
            # Work in the upper tail so that a long-running job keeps its precision.
            z = -_STD.inv_cdf(_clip((1.0 - p) * _STD.cdf(-z_alive)))
        return self.started + max(elapsed, math.exp(self.duration.mu + self.duration.sigma * z))


def as_log_normal(completion: CompletionTime) -> LogNormalAfter:
    """The log-normal after the same anchor that matches `completion` at its median and its
    one-sigma quantiles, so unlike estimates can be blended."""
    anchor = completion.anchor
    low, mid, high = (
        max(completion.quantile(p) - anchor, 1e-6) for p in (1 - _ONE_SIGMA, 0.5, _ONE_SIGMA)
    )
    return LogNormalAfter(anchor, math.log(mid), max((math.log(high) - math.log(low)) / 2, 1e-6))


def blend(first: CompletionTime, second: CompletionTime) -> LogNormalAfter:
    """Precision-weighted product of two independent estimates of the same completion time,
    taken after the later of their anchors."""
    anchor = max(first.anchor, second.anchor)
    a, b = (as_log_normal(_reanchor(c, anchor)) for c in (first, second))
    wa, wb = 1 / a.sigma**2, 1 / b.sigma**2
    return LogNormalAfter(anchor, (a.mu * wa + b.mu * wb) / (wa + wb), math.sqrt(1 / (wa + wb)))


@dataclass(frozen=True)
class _Reanchored:
    inner: CompletionTime
    anchor: float

    def quantile(self, p: float) -> float:
        return max(self.inner.quantile(p), self.anchor + 1e-6)


def _reanchor(completion: CompletionTime, anchor: float) -> CompletionTime:
    if isinstance(completion, ConditionalCompletion):
        return completion.duration.completion(completion.started, anchor)
    return completion if completion.anchor == anchor else _Reanchored(completion, anchor)


@dataclass(frozen=True)
class DurationPrior:
    """What to assume before a vendor has any history: deliberately vague, so that a few
    real jobs outweigh it. `weight` is in pseudo-jobs."""

    median: float = 300.0
    sigma: float = 1.5
    weight: float = 2.0


@dataclass(frozen=True)
class PastJob:
    """One completed job from the event log: its size in records (None when unknown) and
    seconds from submission to when it finished, as closely as the log can tell: the vendor's
    own completion stamp where it gives one, else the callback's arrival, else the midpoint
    between the last status call that saw it unfinished and the first that saw it finished
    (the first alone would teach the model our own detection delay)."""

    size: int | None
    duration: float


class DurationModel:
    """Log-normal durations of one vendor's jobs as a function of their size.

    Build it from that vendor's recent completed jobs (a few hundred is plenty; pass the most
    recent, so it follows the vendor when it speeds up or slows down). Failed jobs belong in
    the history only if they ran their course, not if they failed at once.
    """

    def __init__(self, history: Iterable[PastJob], prior: DurationPrior | None = None) -> None:
        prior = prior or DurationPrior()
        rows = [
            (_log_size(job.size), math.log(job.duration)) for job in history if job.duration > 0
        ]
        sized = [x for x, _ in rows if x is not None]
        self._x_mean = sum(sized) / len(sized) if sized else 0.0
        self._x_var = _variance(sized) if len(sized) > 1 else 0.0
        self.jobs = len(rows)
        self._fit([(0.0 if x is None else x - self._x_mean, y) for x, y in rows], prior)

    def _fit(self, rows: list[tuple[float, float]], prior: DurationPrior) -> None:
        # Normal-inverse-gamma conjugate update of y = a + b x; the prior treats the slope as
        # zero with the weight of `prior.weight` jobs one log-size unit either side.
        k = prior.weight
        s00, s01, s11 = k + len(rows), sum(x for x, _ in rows), k + sum(x * x for x, _ in rows)
        t0 = k * math.log(prior.median) + sum(y for _, y in rows)
        t1 = sum(x * y for x, y in rows)
        det = s00 * s11 - s01 * s01
        self._inv = (s11 / det, -s01 / det, s00 / det)
        self._a = (s11 * t0 - s01 * t1) / det
        self._b = (s00 * t1 - s01 * t0) / det
        prior_ss = k * math.log(prior.median) ** 2
        explained = self._a * t0 + self._b * t1
        scatter = prior_ss + sum(y * y for _, y in rows) - explained
        dof = k + len(rows)
        self._sigma2 = (k * prior.sigma**2 + max(scatter, 0.0)) / dof
        self._widen = _t_widening(dof)

    def duration(self, size: int | None) -> LogNormal:
        """The distribution of a new job's duration (seconds from submission to finish)."""
        log_size = _log_size(size)
        x = 0.0 if log_size is None else log_size - self._x_mean
        i00, i01, i11 = self._inv
        leverage = i00 + 2 * x * i01 + x * x * i11
        variance = self._sigma2 * (1 + leverage)
        if log_size is None:
            variance += self._b**2 * self._x_var
        return LogNormal(self._a + self._b * x, math.sqrt(variance) * self._widen)


def _t_widening(dof: float) -> float:
    """How much wider a Student-t predictive is than a normal at the 95th percentile
    (Cornish-Fisher), so that a vendor with little history gets cautious tails."""
    z = _STD.inv_cdf(0.95)
    t = z + (z**3 + z) / (4 * dof) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * dof**2)
    return t / z


def _log_size(size: int | None) -> float | None:
    return None if size is None else math.log(max(size, 1))


def _variance(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def _clip(p: float) -> float:
    return min(max(p, 1e-12), 1 - 1e-12)
