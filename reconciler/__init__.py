"""The polling side of enrichwatch: claims due work, asks vendors for their status, fetches
results and dispatches notifications. It stands on the core package and never imports the
receiver; only the CLI composes the two into one process."""

from __future__ import annotations

from reconciler.scheduler import running

__all__ = ["running"]
