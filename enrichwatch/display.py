"""How jobs and events look in a terminal (rich renderables), shared by the CLI listings and
the demo's live view, so a job reads the same wherever it is shown."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from rich.console import Console, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from enrichwatch.describe import calls_text, event_summary
from enrichwatch.models import JobState
from enrichwatch.store import EventRecord, JobRecord

PIPE_WIDTH = 100_000
"""Columns off a terminal, so that no cell is cut nor column dropped to fit a screen there is
not: a table takes only the width of its content (nothing pads it to this), and a piped,
redirected or cron-mailed listing keeps every job id and every word for grep and cut."""

STATE_STYLES = {
    JobState.SUBMITTED: "cyan",
    JobState.QUEUED: "cyan",
    JobState.RUNNING: "blue",
    JobState.NEEDS_ACTION: "yellow",
    JobState.COMPLETED: "green",
    JobState.FAILED: "red",
    JobState.EXPIRED: "red",
}


def make_console(*, stderr: bool = False) -> Console:
    """A console for the CLI: colours and the real width on a terminal; off one, plain and
    as wide as what is printed, so nothing is cut to a width no screen imposes."""
    console = Console(stderr=stderr)
    if console.is_terminal:
        return console
    return Console(stderr=stderr, width=PIPE_WIDTH, no_color=True, highlight=False)


def printable(text: str) -> str:
    """`text` with each control character written as its escape (a line break as \\n, an
    escape as \\x1b), so that a job name stored before such names were refused (or taken by
    the API) stays on its line instead of breaking a listing or colouring the terminal."""
    return "".join(_escaped(char) for char in text)


def _escaped(char: str) -> str:
    return repr(char)[1:-1] if unicodedata.category(char) == "Cc" else char


def duration_text(seconds: float | None) -> str:
    """A short human duration: 45s, 3m05s, 2h03m, 4d02h."""
    if seconds is None:
        return "-"
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def timestamp_text(when: float | None) -> str:
    if when is None:
        return "-"
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def state_text(state: JobState) -> Text:
    return Text(state.value, style=STATE_STYLES[state])


def progress_counts(job: JobRecord) -> str:
    if job.progress_total is None:
        return "-" if job.input_rows is None else f"?/{job.input_rows}"
    failed = f" ({job.progress_failed} failed)" if job.progress_failed else ""
    return f"{job.progress_done or 0}/{job.progress_total}{failed}"


def progress_cell(job: JobRecord, width: int = 20) -> RenderableType:
    """A bar and the counts; a completed job shows full even where the vendor gives none.
    Short of room, the bar gives way before the counts, which say what it only draws."""
    total = job.progress_total or job.input_rows
    done = job.progress_done or 0
    if job.state is JobState.COMPLETED and total:
        done = max(done, total)
    grid = Table.grid(padding=(0, 1))
    grid.add_column()
    grid.add_column(no_wrap=True)
    grid.add_row(
        ProgressBar(total=float(total or 1), completed=float(done if total else 0), width=width),
        Text(progress_counts(job)),
    )
    return grid


def results_text(job: JobRecord) -> str:
    if job.results_state is None:
        return "-"
    if job.results_state == "stored":
        return f"{job.results_count} stored"
    return job.results_state


def state_cell(job: JobRecord) -> Text:
    """The state, and for an open job whose latest checks failed, how many: a revoked key or a
    vendor outage leaves jobs open that would otherwise look merely slow."""
    text = state_text(job.state)
    if job.check_failures and not job.state.is_terminal:
        checks = "check" if job.check_failures == 1 else "checks"
        text.append(f" ({job.check_failures} {checks} failed)", style="yellow")
    return text


def jobs_table(jobs: Sequence[JobRecord], now: float) -> Table:
    """On a screen too narrow for the table, the other columns give way, the widest first (a
    name wraps, a vendor is shortened); the id, which every other command takes, is always
    whole. Off a screen nothing is short of room (see `make_console`)."""
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    widest_id = max((len(str(job.id)) for job in jobs), default=0)
    table.add_column("ID", no_wrap=True, justify="right", min_width=max(len("ID"), widest_id))
    table.add_column("Vendor")
    table.add_column("Name", overflow="fold")
    table.add_column("State")
    table.add_column("Progress")
    table.add_column("Calls")
    table.add_column("Callbacks")
    table.add_column("Results")
    table.add_column("Age", justify="right")
    for job in jobs:
        table.add_row(
            str(job.id),
            job.vendor.value,
            Text(printable(job.name or "")),
            state_cell(job),
            progress_cell(job),
            calls_text(job.vendor_calls),
            str(job.callbacks_received),
            results_text(job),
            duration_text(now - job.created_at),
        )
    return table


def events_table(events: Iterable[EventRecord], origin: float | None) -> Table:
    """The timeline; `origin` (the job's creation) gives each event's offset."""
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    for column in ("Seq", "Time (UTC)", "+", "Source", "Event"):
        table.add_column(
            column, no_wrap=True, justify="right" if column in {"Seq", "+"} else "left"
        )
    table.add_column("Details")
    for event in events:
        offset = "" if origin is None else duration_text(event.created_at - origin)
        table.add_row(
            str(event.seq),
            timestamp_text(event.created_at),
            offset,
            event.source.value,
            event.type,
            Text(event_summary(event)),
        )
    return table
