"""`enrichwatch demo`: the whole flow against the built-in vendor simulator, with no
configuration and no vendor account."""

from __future__ import annotations

from enrichwatch.demo.files import DemoFileError, clear_previous_demo
from enrichwatch.demo.run import DemoOutcome, ServiceRunner, run_demo
from enrichwatch.demo.samples import SampleBatch, sample_batches
from enrichwatch.demo.view import DemoView, LiveView, PlainView

__all__ = [
    "DemoFileError",
    "DemoOutcome",
    "DemoView",
    "LiveView",
    "PlainView",
    "SampleBatch",
    "ServiceRunner",
    "clear_previous_demo",
    "run_demo",
    "sample_batches",
]
