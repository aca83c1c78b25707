"""The polling policy: pure functions that decide when to ask a vendor about a job next.

No I/O, no clock, no database: the reconciler reads the inputs from the event log, passes the
time in, and stores the plan it gets back. See `policy.next_check` for the entry point.
"""

from __future__ import annotations

from enrichwatch.polling.budget import TokenBucket, backoff
from enrichwatch.polling.durations import (
    CompletionTime,
    DurationModel,
    DurationPrior,
    LogNormal,
    PastJob,
)
from enrichwatch.polling.policy import (
    CheckPlan,
    CheckReason,
    JobView,
    VendorPolicy,
    callback_deadline,
    completion_estimate,
    next_check,
    vendor_policy,
)
from enrichwatch.polling.progress import ProgressEstimator, ProgressSample

__all__ = [
    "CheckPlan",
    "CheckReason",
    "CompletionTime",
    "DurationModel",
    "DurationPrior",
    "JobView",
    "LogNormal",
    "PastJob",
    "ProgressEstimator",
    "ProgressSample",
    "TokenBucket",
    "VendorPolicy",
    "backoff",
    "callback_deadline",
    "completion_estimate",
    "next_check",
    "vendor_policy",
]
