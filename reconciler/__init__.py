"""The polling side of enrichwatch: claims due work, asks vendors for their status, fetches
results and dispatches notifications. It stands on the core package and never imports the
receiver; only the CLI composes the two into one process."""

from __future__ import annotations

from reconciler.checks import check_job_now, check_vendor_now
from reconciler.scheduler import reconcile_once, running
from reconciler.state import Reconciler

__all__ = ["Reconciler", "check_job_now", "check_vendor_now", "reconcile_once", "running"]
