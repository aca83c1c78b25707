"""Per-vendor statistics computed from the event log: how long jobs take, what watching them
costs in vendor calls, how soon we notice they have finished, and how callbacks behave.

The log holds no vendor completion stamp, so when a job finished is estimated from what we
heard: a callback that came before we saw the end marks it (the vendor sends one as it
finishes); otherwise it lies between the last status call that saw the job open (or its
submission) and the call that saw it finished, and the midpoint of that window is taken.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from enrichwatch.models import JobState, VendorName
from enrichwatch.store import Store
from enrichwatch.store.inspect_reads import JobTimeline


@dataclass(frozen=True)
class VendorStats:
    """One vendor's jobs; durations and delays are seconds, None where no job tells."""

    vendor: VendorName
    jobs: int
    open_jobs: int
    completed_jobs: int
    failed_jobs: int
    """Failed or expired."""
    median_duration: float | None
    """From submission (or tracking) to completion, over completed jobs."""
    calls_per_job: float | None
    """Vendor calls spent per finished job: submitting, checking and fetching results."""
    detection_delay_p50: float | None
    detection_delay_p95: float | None
    """From the job finishing at the vendor to our noticing it (estimated, see the module)."""
    callbacks_late: int
    """Jobs whose callback had not come by its deadline, and came later (or may still)."""
    callbacks_lost: int
    """Completed jobs that were given our callback URL and never called it."""

    def as_json(self) -> dict[str, Any]:
        return asdict(self) | {"vendor": self.vendor.value}


async def vendor_stats(store: Store) -> list[VendorStats]:
    """Statistics for every vendor, in the order of `VendorName`, with or without jobs."""
    by_vendor: dict[VendorName, list[JobTimeline]] = {vendor: [] for vendor in VendorName}
    for timeline in await store.job_timelines():
        by_vendor[timeline.vendor].append(timeline)
    return [_summarise(vendor, timelines) for vendor, timelines in by_vendor.items()]


def _summarise(vendor: VendorName, timelines: list[JobTimeline]) -> VendorStats:
    finished = [t for t in timelines if t.state.is_terminal]
    completed = [t for t in finished if t.state is JobState.COMPLETED]
    durations = [t.ended_at - t.started_at for t in completed if t.ended_at is not None]
    delays = [delay for t in finished if (delay := detection_delay(t)) is not None]
    lost = {t.job_id for t in completed if t.expects_callback and t.first_callback_at is None}
    late = [t for t in timelines if t.late_webhook and t.job_id not in lost]
    return VendorStats(
        vendor=vendor,
        jobs=len(timelines),
        open_jobs=len(timelines) - len(finished),
        completed_jobs=len(completed),
        failed_jobs=len(finished) - len(completed),
        median_duration=statistics.median(durations) if durations else None,
        calls_per_job=(sum(t.vendor_calls for t in finished) / len(finished) if finished else None),
        detection_delay_p50=percentile(delays, 0.5),
        detection_delay_p95=percentile(delays, 0.95),
        callbacks_late=len(late),
        callbacks_lost=len(lost),
    )


def detection_delay(timeline: JobTimeline) -> float | None:
    """Seconds from the job finishing to our noticing; None for a job no status call saw
    finish (still open, refused at submission, or given up on)."""
    end = timeline.detected_at
    if end is None:
        return None
    callback = timeline.first_callback_at
    if callback is not None and callback <= end:
        return end - callback
    seen_open = max(timeline.started_at, timeline.last_seen_open_at or timeline.started_at)
    return (end - seen_open) / 2


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank percentile: a value that occurred, never an interpolation."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]
