"""Commands about jobs: submit or track them, act on them, export their results."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from enrichwatch.cli.context import (
    JOB_NAME,
    VENDOR,
    CliContext,
    json_option,
    parse_options,
    print_jobs,
    require_database,
)
from enrichwatch.cli.ids import JOB_ID
from enrichwatch.cli.notifications import notify_options, targets_from_options
from enrichwatch.describe import counted
from enrichwatch.errors import EnrichwatchError, VendorJobIdError
from enrichwatch.inputs import check_vendor_job_id, job_name_problem
from enrichwatch.models import EventSource, JobState, VendorName
from enrichwatch.runtime import Services
from enrichwatch.store import JobRecord


@click.command()
@click.argument("vendor", type=VENDOR)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--name",
    type=JOB_NAME,
    help="A name for the batch, shown in listings and notifications [the file's name, "
    "without its extension].",
)
@click.option(
    "-o",
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="A vendor option (repeatable); VALUE is read as JSON when it parses, e.g. "
    "-o endpoint=contact -o 'fields=[\"business_email\"]' -o enrichment_mode=full.",
)
@notify_options
@json_option
@click.pass_obj
def submit(
    obj: CliContext,
    vendor: str,
    file: Path,
    name: str | None,
    options: tuple[str, ...],
    notify_slack: str | None,
    notify_email: tuple[str, ...],
    notify_webhook: str | None,
    as_json: bool,
) -> None:
    """Submit FILE (a CSV with a header row) to VENDOR and track the resulting job(s).

    The whole file is checked against the vendor's rules before anything is sent.
    """
    from enrichwatch.inputs import read_rows
    from enrichwatch.submission import SubmissionError, submit_batch
    from enrichwatch.vendors.base import SubmitRequest

    settings = obj.settings()
    notify = targets_from_options(settings, notify_slack, notify_email, notify_webhook)
    vendor_name = VendorName(vendor)
    try:
        rows = read_rows(file, vendor)
    except EnrichwatchError as exc:
        raise click.ClickException(str(exc)) from None
    if name is None:
        name = file.stem
        if (problem := job_name_problem(name)) is not None:
            raise click.UsageError(
                f"the file's name cannot name the job: it {problem}; give --name"
            )
    request = SubmitRequest(rows=rows, name=name, options=parse_options(options))

    async def work(services: Services) -> list[JobRecord]:
        outcome = await submit_batch(
            services,
            vendor_name,
            request,
            public_url=obj.public_url,
            source=EventSource.API,
            notify=notify,
        )
        return outcome.jobs

    try:
        jobs = obj.run(settings, work)
    except click.ClickException as exc:
        cause = exc.__context__
        if isinstance(cause, SubmissionError) and cause.jobs:
            print_jobs(cause.jobs, obj.public_url, as_json)
        raise
    print_jobs(jobs, obj.public_url, as_json)


@click.command()
@click.argument("vendor", type=VENDOR)
@click.argument("vendor_job_id")
@click.option("--name", type=JOB_NAME, help="A name for the job.")
@notify_options
@json_option
@click.pass_obj
def track(
    obj: CliContext,
    vendor: str,
    vendor_job_id: str,
    name: str | None,
    notify_slack: str | None,
    notify_email: tuple[str, ...],
    notify_webhook: str | None,
    as_json: bool,
) -> None:
    """Track a job submitted elsewhere, by the vendor's own job id."""
    settings = obj.settings()
    notify = targets_from_options(settings, notify_slack, notify_email, notify_webhook)
    try:
        vendor_job_id = check_vendor_job_id(vendor_job_id, VendorName(vendor))
    except VendorJobIdError as exc:
        raise click.BadParameter(str(exc), param_hint="VENDOR_JOB_ID") from None

    async def work(services: Services) -> tuple[JobRecord, bool]:
        return await services.store.track_job(
            VendorName(vendor), vendor_job_id, name, source=EventSource.API, notify=notify
        )

    job, created = obj.run(settings, work)
    print_jobs([job], obj.public_url, as_json)
    if not created:
        click.echo(f"Note: already tracked as job {job.id}; it is left as it was", err=True)


@click.command()
@click.argument("job_id", type=JOB_ID)
@click.option(
    "-o",
    "--output",
    "output_arg",
    # A str, not a Path: Path("./-") is Path("-"), and ./- must stay the way to name a file -.
    type=click.Path(dir_okay=False, allow_dash=True),
    help="File to write; .csv (any case) for CSV, anything else JSON lines; - for stdout. "
    "Default: JSON lines to stdout.",
)
@click.pass_obj
def results(obj: CliContext, job_id: int, output_arg: str | None) -> None:
    """Export a job's stored results."""
    from enrichwatch import export

    settings = obj.settings()
    require_database(settings)
    output = None if output_arg is None or output_arg == "-" else Path(output_arg)

    async def work(services: Services) -> JobRecord:
        job = await services.store.get_job(job_id)
        chunks = export.csv_rows if output and output.suffix.lower() == ".csv" else export.jsonl
        try:
            sink = output.open("wb") if output else sys.stdout.buffer
        except OSError as exc:
            raise ExportError(f"cannot write {output}: {exc.strerror}") from None
        try:
            async for chunk in chunks(services.store, job.id):
                sink.write(chunk)
            sink.flush()
        except OSError as exc:  # the disk is full, the pipe was closed…
            raise ExportError(f"cannot write {output or 'the results'}: {exc.strerror}") from None
        finally:
            if output:
                with contextlib.suppress(OSError):  # flushed above; only a failure is left
                    sink.close()
        return job

    # A file this export creates is removed if it fails part-way, so no half-written file is
    # left looking like a finished one; a file that was there already (or a device) is kept.
    created = output is not None and not output.exists()
    try:
        job = obj.run(settings, work)
    except BaseException:
        if output is not None and created:
            with contextlib.suppress(OSError):
                output.unlink()
        raise
    if output:
        written = counted(job.results_count, "record", "records")
        click.echo(f"{written} written to {output}", err=True)
    if (note := _results_note(job)) is not None:
        click.echo(f"Note: {note}", err=True)


def _results_note(job: JobRecord) -> str | None:
    """Why an export holds fewer than all of the job's results, if it may: an empty file
    should not pass for a job without results when they are merely not in yet."""
    match job.results_state:
        case "stored" if job.state.is_terminal:
            return None
        case "stored":
            return f"job {job.id} is {job.state.value}: these are its results so far"
        case "pending" | "fetching":
            return f"job {job.id}'s results are still being fetched"
        case "fetch_failed":
            return (
                f"fetching job {job.id}'s results failed ({job.error}); "
                f"`enrichwatch fetch {job.id}` tries again"
            )
        case _ if job.state.is_terminal:
            return f"job {job.id} ended ({job.state.value}) without results"
        case _:
            return f"job {job.id} is {job.state.value}: it has no results yet"


@click.command()
@click.argument("job_id", type=JOB_ID, required=False)
@click.option("--vendor", type=VENDOR, help="Every open job at this vendor instead.")
@json_option
@click.pass_obj
def check(obj: CliContext, job_id: int | None, vendor: str | None, as_json: bool) -> None:
    """Ask the vendor about a job (or all of a vendor's open jobs) now, whatever its
    schedule."""
    from enrichwatch.store.holders import LeaseHolder
    from reconciler import Reconciler, check_job_now, check_vendor_now

    if job_id is not None and vendor is not None:
        raise click.UsageError("give JOB or --vendor, not both")
    if job_id is None and vendor is None:
        raise click.UsageError("missing JOB (or --vendor for all of a vendor's open jobs)")
    settings = obj.settings()
    require_database(settings)

    async def work(services: Services) -> tuple[list[JobRecord], list[str]]:
        # A lease holder like any reconciler: one starting meanwhile leaves this call's jobs be.
        rc = Reconciler(services)
        holder = LeaseHolder.acquire(services.store.path, rc.owner)
        began = services.store.clock()
        try:
            if vendor is not None:
                jobs = await check_vendor_now(rc, VendorName(vendor))
            else:
                assert job_id is not None
                jobs = [await check_job_now(rc, job_id)]
        finally:
            holder.release()
        return jobs, [
            f"job {job.id}: {error}"
            for job in jobs
            if (error := await _failed(services, job, began))
        ]

    jobs, failures = obj.run(settings, work)
    if not jobs and not as_json:
        click.echo(f"no open jobs at {vendor}", err=True)
    print_jobs(jobs, obj.public_url, as_json)
    if failures:
        # The jobs are printed as they are; the vendor not answering is still an error.
        checks = "the check" if len(jobs) == 1 else f"{len(failures)} of {len(jobs)} checks"
        raise click.ClickException(f"{checks} failed; {failures[0]}")


async def _failed(services: Services, job: JobRecord, since: float) -> str | None:
    """The error of the job's status call made since `since`, if it failed."""
    for event in reversed(await services.store.latest_events(job.id, 10)):
        if event.created_at < since or event.type == "vendor.polled":
            return None
        if event.type == "vendor.poll_failed":
            return str(event.payload.get("error"))
    return None


@click.command()
@click.argument("job_id", type=JOB_ID)
@json_option
@click.pass_obj
def resume(obj: CliContext, job_id: int, as_json: bool) -> None:
    """Resume a paused job (influencers.club after a credit top-up, eCore)."""
    from enrichwatch import actions

    async def work(services: Services) -> tuple[JobRecord, JobRecord, bool]:
        before = await services.store.get_job(job_id)
        after = await actions.resume(services, job_id)
        events = await services.store.latest_events(job_id, 5)
        asked = [event for event in events if event.type == "job.resume_requested"]
        return before, after, bool(asked and asked[-1].payload.get(actions.FOUND_RUNNING_AGAIN))

    settings = obj.settings()
    require_database(settings)
    before, after, found_running = obj.run(settings, work)
    print_jobs([after], obj.public_url, as_json)
    click.echo(_resumed_note(before, after, found_running), err=True)


def _resumed_note(before: JobRecord, after: JobRecord, found_running: bool) -> str:
    """What the resume did: a paused job is shown as it was until a check sees it run, which
    would otherwise look as if nothing had happened."""
    vendor, job = after.vendor.value, after.id
    if found_running:
        return (
            f"{vendor} already runs job {job} again (a resume it took earlier): that run is "
            "tracked, and nothing was sent"
        )
    if before.state is JobState.FAILED:
        return f"resume sent to {vendor}: job {job} runs again, as a new run"
    if after.state is JobState.RUNNING:
        return f"resume sent to {vendor}: job {job} is watched again"
    return (
        f"resume sent to {vendor}: job {job} shows {after.state.value} until its next check "
        f"(due now) finds it running; `enrichwatch check {job}` checks it from here"
    )


@click.command()
@click.argument("job_id", type=JOB_ID)
@click.option(
    "-o",
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="failed_only, incomplete_only, refresh, attributes or attribute_set (repeatable).",
)
@json_option
@click.pass_obj
def reprocess(obj: CliContext, job_id: int, options: tuple[str, ...], as_json: bool) -> None:
    """Reprocess a Reprompt batch; its results are fetched anew when it finishes."""
    from enrichwatch import actions

    parsed = _reprocess_options(options)
    _act(obj, as_json, lambda services: actions.reprocess(services, job_id, parsed))


@click.command()
@click.argument("job_id", type=JOB_ID)
@json_option
@click.pass_obj
def fetch(obj: CliContext, job_id: int, as_json: bool) -> None:
    """Fetch a job's results again after their fetch failed (the reconciler does it)."""
    from enrichwatch import actions

    _act(obj, as_json, lambda services: actions.fetch_again(services, job_id))


def _act(
    obj: CliContext, as_json: bool, action: Callable[[Services], Awaitable[JobRecord]]
) -> None:
    """Run an operator action and print the job as it left it."""
    settings = obj.settings()
    require_database(settings)
    print_jobs([obj.run(settings, action)], obj.public_url, as_json)


def _reprocess_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """The options checked by the model the API checks them with, before the vendor hears of
    them: an unknown name or a value of the wrong kind is a usage error naming the option."""
    from pydantic import ValidationError

    from enrichwatch.actions import ReprocessOptions

    try:
        checked = ReprocessOptions.model_validate(parse_options(pairs))
    except ValidationError as exc:
        known = ", ".join(ReprocessOptions.model_fields)
        problems = [
            f"{'.'.join(map(str, error['loc']))} is not a reprocess option ({known})"
            if error["type"] == "extra_forbidden"
            else f"{'.'.join(map(str, error['loc']))}: {error['msg']}"
            for error in exc.errors()
        ]
        raise click.BadParameter("; ".join(problems), param_hint="--option") from None
    return checked.model_dump(exclude_none=True)


class ExportError(EnrichwatchError):
    """The results file cannot be written."""
