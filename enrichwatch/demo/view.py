"""What the demo shows while it runs: on a terminal, a live progress bar per job with its
state, vendor calls, callbacks and results, and the notable events scrolling above; off a
terminal (a pipe, a log file, CI), the same as plain lines, one per change."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.text import Text

from enrichwatch.describe import calls_text, event_summary
from enrichwatch.display import STATE_STYLES, progress_counts
from enrichwatch.models import JobState
from enrichwatch.store import EventRecord, JobRecord

QUIET_EVENTS = frozenset({"vendor.polled", "job.progressed"})
"""Shown by the counters rather than as lines of their own."""


class DemoView(Protocol):
    def say(self, line: str) -> None:
        """A line of narration."""

    def refresh(self, jobs: Sequence[JobRecord], events: Sequence[EventRecord]) -> None:
        """The jobs as they are now, and the events since the last refresh."""

    def close(self) -> None:
        """Leave the final picture on screen; closing twice is harmless."""


class LiveView:
    def __init__(self, console: Console) -> None:
        self._started = time.monotonic()
        self._tasks: dict[int, TaskID] = {}
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=28),
            TextColumn("{task.fields[counts]:<16}", markup=False),
            TextColumn("{task.fields[state]}"),
            TextColumn("calls {task.fields[calls]:>3}", markup=False),
            TextColumn("callbacks {task.fields[callbacks]}", markup=False),
            TextColumn("results {task.fields[results]}", markup=False),
            console=console,
            refresh_per_second=8,
        )
        self._progress.start()

    def say(self, line: str) -> None:
        self._progress.console.print(Text(line))

    def refresh(self, jobs: Sequence[JobRecord], events: Sequence[EventRecord]) -> None:
        by_id = {job.id: job for job in jobs}
        for event in events:
            if event.type not in QUIET_EVENTS:
                self.say(feed_line(self._started, by_id.get(event.job_id), event))
        for job in jobs:
            fields: dict[str, Any] = {
                "counts": progress_counts(job),
                "state": f"[{STATE_STYLES[job.state]}]{job.state.value:<12}[/]",
                "calls": calls_text(job.vendor_calls),
                "callbacks": job.callbacks_received,
                "results": _results(job),
            }
            total = float(job.progress_total or job.input_rows or 1)
            done = float(job.progress_done or 0)
            if job.state is JobState.COMPLETED:
                done = total
            if job.id not in self._tasks:
                self._tasks[job.id] = self._progress.add_task(
                    escape(f"{job.vendor.value:<16} job {job.id:<3}"), total=total, **fields
                )
            self._progress.update(self._tasks[job.id], total=total, completed=done, **fields)

    def close(self) -> None:
        self._progress.stop()


class PlainView:
    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write
        self._started = time.monotonic()
        self._shown: dict[int, str] = {}

    def say(self, line: str) -> None:
        self._write(line)

    def refresh(self, jobs: Sequence[JobRecord], events: Sequence[EventRecord]) -> None:
        by_id = {job.id: job for job in jobs}
        for event in events:
            if event.type not in QUIET_EVENTS:
                self._write(feed_line(self._started, by_id.get(event.job_id), event))
        for job in jobs:
            line = (
                f"{job.state.value} {progress_counts(job)}, calls {calls_text(job.vendor_calls)}, "
                f"callbacks {job.callbacks_received}, results {_results(job)}"
            )
            if self._shown.get(job.id) != line:
                self._shown[job.id] = line
                self._write(f"{_elapsed(self._started)}  {_who(job)}  {line}")

    def close(self) -> None:
        pass


def feed_line(started: float, job: JobRecord | None, event: EventRecord) -> str:
    who = _who(job) if job is not None else f"job {event.job_id}"
    return f"{_elapsed(started)}  {who}  {event.type:<18} {event_summary(event)}"


def _who(job: JobRecord) -> str:
    return f"{job.vendor.value:<16} job {job.id:<3}"


def _elapsed(started: float) -> str:
    return f"{time.monotonic() - started:5.1f}s"


def _results(job: JobRecord) -> str:
    if job.results_state == "stored":
        return f"{job.results_count} stored"
    return job.results_state or "-"
