"""Commands that look into the event log: list jobs, show one, follow its timeline, and
replay a stored callback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from enrichwatch.cli.context import VENDOR, CliContext, json_option, require_database
from enrichwatch.cli.ids import INBOX_ID, JOB_ID
from enrichwatch.describe import calls_text, event_summary
from enrichwatch.display import (
    duration_text,
    events_table,
    jobs_table,
    make_console,
    printable,
    progress_cell,
    results_text,
    state_text,
    timestamp_text,
)
from enrichwatch.models import JobState, VendorName
from enrichwatch.runtime import Services
from enrichwatch.serialize import event_json, iso, job_json
from enrichwatch.store import EventRecord, InboxRecord, JobRecord
from enrichwatch.store.notifications import JobTargets
from enrichwatch.vendors import adapter_class

STATE = click.Choice([state.value for state in JobState])
RECENT_EVENTS = 10
FOLLOW_INTERVAL_S = 0.5
"""How often `events --follow` reads the log: another process writes it, so it is polled."""


@click.command(short_help="List jobs: state, progress, vendor calls, age.")
@click.option("--vendor", type=VENDOR, help="Only this vendor's jobs.")
@click.option("--state", type=STATE, help="Only jobs in this state.")
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="Newest first."
)
@json_option
@click.pass_obj
def jobs(obj: CliContext, vendor: str | None, state: str | None, limit: int, as_json: bool) -> None:
    """List jobs, newest first: state, progress, vendor calls spent and age."""
    settings = obj.settings()
    require_database(settings)

    async def work(services: Services) -> list[JobRecord]:
        return await services.store.list_jobs(
            vendor=VendorName(vendor) if vendor else None,
            state=JobState(state) if state else None,
            limit=limit,
        )

    found = obj.run(settings, work)
    if as_json:
        click.echo(json.dumps([job_json(job, obj.public_url) for job in found], indent=2))
        return
    console = make_console()
    if not found:
        console.print("no jobs")
        return
    console.print(jobs_table(found, time.time()))


@click.command(short_help="Everything about one job.")
@click.argument("job_id", type=JOB_ID)
@json_option
@click.pass_obj
def show(obj: CliContext, job_id: int, as_json: bool) -> None:
    """Everything about one job: its fields, counts, results, callback URL, the callbacks it
    received (their inbox ids are what `replay` takes) and its latest events."""
    settings = obj.settings()
    require_database(settings)

    async def work(
        services: Services,
    ) -> tuple[JobRecord, JobTargets, list[InboxRecord], list[EventRecord]]:
        store = services.store
        job = await store.get_job(job_id)
        targets = await store.job_targets(job_id)
        inbox = await store.list_inbox(job_id)
        return job, targets, inbox, await store.latest_events(job_id, RECENT_EVENTS)

    job, targets, inbox, events = obj.run(settings, work)
    if as_json:
        body = job_json(job, obj.public_url) | {
            "notify": None if targets.is_empty() else targets.shown(),
            "input_rows": job.input_rows,
            "expects_callback": job.expects_callback,
            "last_callback_at": iso(job.last_callback_at),
            "late_webhook_at": iso(job.late_webhook_at),
            "check_failures": job.check_failures,
            "callbacks": [_inbox_json(row) for row in inbox],
            "recent_events": [event_json(event) for event in events],
        }
        click.echo(json.dumps(body, indent=2))
        return
    console = make_console()
    console.print(_job_fields(job, targets, obj.public_url, time.time()))
    if inbox:
        console.print()
        console.print(_inbox_table(inbox))
    console.print()
    console.print(f"[bold]Latest {len(events)} events[/] (all: enrichwatch events {job.id})")
    console.print(events_table(events, job.created_at))


def _job_fields(job: JobRecord, targets: JobTargets, public_url: str, now: float) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    rows: list[tuple[str, Any]] = [
        ("Job", f"{job.id}  {printable(job.name or '')}".rstrip()),
        ("Vendor", f"{job.vendor.value}  {job.vendor_job_id or '(not sent yet)'}"),
        ("State", state_text(job.state)),
        ("Vendor status", job.vendor_status or "-"),
        ("Progress", progress_cell(job)),
        ("Results", results_text(job)),
        ("Vendor calls", calls_text(job.vendor_calls)),
        ("Callbacks", f"{job.callbacks_received} received" + _callback_note(job)),
        ("Notifies", _targets_text(targets)),
        (
            "Callback URL",
            job.callback_url(public_url)
            if adapter_class(job.vendor).supports_webhooks
            else "- (the vendor sends no callbacks)",
        ),
        (
            "Created",
            f"{timestamp_text(job.created_at)} ({duration_text(now - job.created_at)} ago)",
        ),
        ("Last checked", timestamp_text(job.last_checked_at)),
        ("Next check", timestamp_text(job.next_check_at)),
        ("Finished", timestamp_text(job.finished_at)),
    ]
    if job.error:
        rows.append(("Error", job.error))
    if job.check_failures:
        rows.append(("Failed checks", str(job.check_failures)))
    for label, value in rows:
        grid.add_row(label, Text(value) if isinstance(value, str) else value)
    return grid


def _targets_text(targets: JobTargets) -> str:
    """Where the job's outcomes go: its own targets, each in place of its channel's."""
    if targets.is_empty():
        return "the configured channels"
    own = [
        f"{channel} {', '.join(value) if isinstance(value, list) else value}"
        for channel, value in targets.shown().items()
    ]
    return "its own: " + "; ".join(own) + " (each instead of its channel's configured one)"


def _callback_note(job: JobRecord) -> str:
    if job.late_webhook_at is not None:
        return f"; late since {timestamp_text(job.late_webhook_at)}"
    return "; expected" if job.expects_callback and not job.callbacks_received else ""


def _inbox_table(inbox: list[InboxRecord]) -> Table:
    table = Table(title="Callbacks", title_justify="left", show_edge=False, pad_edge=False)
    for column in ("Inbox", "Received (UTC)", "Verification", "Bytes", "Duplicate of"):
        table.add_column(column, no_wrap=True)
    for row in inbox:
        table.add_row(
            str(row.id),
            timestamp_text(row.received_at),
            Text(row.verification),
            str(len(row.body)),
            "-" if row.duplicate_of is None else str(row.duplicate_of),
        )
    return table


def _inbox_json(row: InboxRecord) -> dict[str, Any]:
    return {
        "inbox_id": row.id,
        "received_at": iso(row.received_at),
        "verification": row.verification,
        "content_type": row.content_type,
        "bytes": len(row.body),
        "dedupe_key": row.dedupe_key,
        "duplicate_of": row.duplicate_of,
    }


@click.command(short_help="A job's timeline; --follow tails it.")
@click.argument("job_id", type=JOB_ID)
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Keep printing new events until the job is finished and its work done (or Ctrl-C).",
)
@json_option
@click.pass_obj
def events(obj: CliContext, job_id: int, follow: bool, as_json: bool) -> None:
    """A job's timeline, oldest first. With --json: a JSON array, or with --follow one JSON
    object per line."""
    settings = obj.settings()
    require_database(settings)
    if not follow:
        job, found = obj.run(settings, lambda services: _all_events(services, job_id))
        if as_json:
            click.echo(json.dumps([event_json(event) for event in found], indent=2))
        else:
            make_console().print(events_table(found, job.created_at))
        return
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a tail is left
        obj.run(settings, lambda services: _follow(services, job_id, as_json))


async def _all_events(services: Services, job_id: int) -> tuple[JobRecord, list[EventRecord]]:
    job = await services.store.get_job(job_id)
    found: list[EventRecord] = []
    while batch := await services.store.list_events(
        job_id, after_seq=found[-1].seq if found else 0
    ):
        found += batch
    return job, found


async def _follow(services: Services, job_id: int, as_json: bool) -> None:
    store = services.store
    origin = (await store.get_job(job_id)).created_at
    console = make_console()
    after = 0
    while True:
        # Decide before reading, so the events that led to the end are still printed.
        job = await store.get_job(job_id)
        settled = job.state.is_terminal and await store.pending_work([job_id]) == 0
        for event in await store.list_events(job_id, after_seq=after):
            after = event.seq
            if as_json:
                click.echo(json.dumps(event_json(event)))
            else:
                console.print(Text(_event_line(event, origin)))
        if settled:
            return
        await asyncio.sleep(FOLLOW_INTERVAL_S)


def _event_line(event: EventRecord, origin: float) -> str:
    return (
        f"{event.seq:>6}  {timestamp_text(event.created_at)}  "
        f"+{duration_text(event.created_at - origin):<7} {event.source.value:<7} "
        f"{event.type:<20} {event_summary(event)}"
    )


@click.command(short_help="Run a stored callback through the receiver's path again.")
@click.argument("inbox_id", type=INBOX_ID)
@click.option(
    "--bypass-dedupe",
    is_flag=True,
    help="Count the replay as a new callback even though the delivery was seen before.",
)
@json_option
@click.pass_obj
def replay(obj: CliContext, inbox_id: int, bypass_dedupe: bool, as_json: bool) -> None:
    """Run a stored callback (by inbox id, see `show JOB`) through the receiver's path again.

    A replay of a delivery already seen is recorded as a duplicate and wakes nothing, as a
    vendor's redelivery would; --bypass-dedupe records it as a new callback, which makes the
    job due for a status check (the reconciler of a running service picks it up).
    """
    from enrichwatch.replay import replay_callback

    settings = obj.settings()
    require_database(settings)
    done = obj.run(
        settings,
        lambda services: replay_callback(services, inbox_id, bypass_dedupe=bypass_dedupe),
    )
    outcome, job = done.outcome, done.job
    if as_json:
        body = {
            "inbox_id": outcome.inbox_id,
            "replay_of": inbox_id,
            "job_id": job.id,
            "duplicate": outcome.duplicate,
            "job": job_json(job, obj.public_url),
        }
        click.echo(json.dumps(body, indent=2))
        return
    if outcome.duplicate:
        effect = "recorded as a duplicate; the job was not woken (use --bypass-dedupe)"
    elif job.state.is_terminal:
        effect = f"recorded as a new callback; the job is already {job.state.value}"
    else:
        effect = "recorded as a new callback; the job is due for a status check"
    click.echo(f"inbox {inbox_id} replayed as inbox {outcome.inbox_id} for job {job.id}: {effect}")
