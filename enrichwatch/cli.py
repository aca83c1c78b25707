"""The `enrichwatch` command: the composition root, the only place that builds Settings and
joins the receiver and the reconciler into one process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import structlog

from enrichwatch.config import Settings, load_settings
from enrichwatch.errors import EnrichwatchError
from enrichwatch.logging import configure_logging
from enrichwatch.models import EventSource, VendorName
from enrichwatch.runtime import Services, open_services
from enrichwatch.serialize import job_json
from enrichwatch.store import JobRecord

log = structlog.get_logger("enrichwatch")
T = TypeVar("T")
VENDOR = click.Choice([vendor.value for vendor in VendorName])


_json_option = click.option("--json", "as_json", is_flag=True, help="Print as JSON.")


class _Context:
    def __init__(self, config_file: Path | None) -> None:
        self.config_file = config_file

    def settings(self, **overrides: Any) -> Settings:
        try:
            settings = load_settings(
                self.config_file, **{k: v for k, v in overrides.items() if v is not None}
            )
        except EnrichwatchError as exc:
            raise click.ClickException(str(exc)) from None
        configure_logging(
            level=settings.log_level, log_format=settings.log_format, secrets=settings.secrets()
        )
        return settings

    def run(self, settings: Settings, work: Callable[[Services], Awaitable[T]]) -> T:
        """Run `work` with the services open; an enrichwatch error is one line and exit 1."""

        async def main() -> T:
            async with open_services(settings) as services:
                return await work(services)

        try:
            return asyncio.run(main())
        except EnrichwatchError as exc:
            raise click.ClickException(str(exc)) from None


@click.group()
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="ENRICHWATCH_CONFIG",
    help="TOML settings file; ENRICHWATCH_* environment variables override it.",
)
@click.version_option(package_name="enrichwatch")
@click.pass_context
def main(ctx: click.Context, config_file: Path | None) -> None:
    """Track batch jobs at data-enrichment vendors until their results are in hand."""
    ctx.obj = _Context(config_file)


def _listen_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(
        [
            click.option("--host", help="Address to listen on [ENRICHWATCH_HOST, 127.0.0.1]."),
            click.option("--port", type=int, help="Port to listen on [ENRICHWATCH_PORT, 8080]."),
            click.option(
                "--db", type=click.Path(path_type=Path), help="SQLite file [ENRICHWATCH_DB]."
            ),
        ]
    ):
        command = option(command)
    return command


@main.command()
@_listen_options
@click.pass_obj
def serve(obj: _Context, host: str | None, port: int | None, db: Path | None) -> None:
    """Run the receiver and the reconciler in one process until SIGTERM or Ctrl-C."""
    _run_service(obj.settings(host=host, port=port, db=db), with_reconciler=True)


@main.command()
@_listen_options
@click.pass_obj
def receiver(obj: _Context, host: str | None, port: int | None, db: Path | None) -> None:
    """Run only the receiver (callbacks and API); a reconciler runs elsewhere on the same
    database and picks up due jobs within its work interval."""
    _run_service(obj.settings(host=host, port=port, db=db), with_reconciler=False)


def _run_service(settings: Settings, *, with_reconciler: bool) -> None:
    try:
        asyncio.run(_serve(settings, with_reconciler))
    except EnrichwatchError as exc:
        raise click.ClickException(str(exc)) from None


async def _serve(settings: Settings, with_reconciler: bool) -> None:
    # The CLI is the only module that composes the two roles.
    import reconciler
    from receiver import serving

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with open_services(settings, issue_api_token=True) as services:
        if services.generated_api_token is not None:
            click.echo(
                f"API token (shown once; set ENRICHWATCH_API_TOKEN to choose your own): "
                f"{services.generated_api_token}"
            )
        async with (
            serving(services, settings.host, settings.port) as url,
            reconciler.running(services) if with_reconciler else contextlib.nullcontext(),
        ):
            log.info("service_started", url=url, db=str(settings.db), reconciler=with_reconciler)
            if settings.public_url is None and settings.host in ("0.0.0.0", "::"):  # noqa: S104
                log.warning(
                    "public_url_unset",
                    hint="callback URLs will name a wildcard address; "
                    "set ENRICHWATCH_PUBLIC_URL to the URL vendors reach this service at",
                )
            click.echo(f"enrichwatch listening on {url}")
            sys.stdout.flush()
            await stop.wait()
            log.info("service_stopping")
    log.info("service_stopped")


@main.command()
@click.argument("vendor", type=VENDOR)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", help="A name for the batch, shown in listings and notifications.")
@click.option(
    "-o",
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="A vendor option (repeatable); VALUE is read as JSON when it parses, e.g. "
    "-o endpoint=contact -o 'fields=[\"business_email\"]' -o enrichment_mode=full.",
)
@_json_option
@click.pass_obj
def submit(
    obj: _Context,
    vendor: str,
    file: Path,
    name: str | None,
    options: tuple[str, ...],
    as_json: bool,
) -> None:
    """Submit FILE (a CSV with a header row) to VENDOR and track the resulting job(s).

    The whole file is checked against the vendor's rules before anything is sent.
    """
    from enrichwatch.inputs import read_rows
    from enrichwatch.submission import SubmissionError, submit_batch
    from enrichwatch.vendors.base import SubmitRequest

    settings = obj.settings()
    vendor_name = VendorName(vendor)
    try:
        rows = read_rows(file, vendor)
    except EnrichwatchError as exc:
        raise click.ClickException(str(exc)) from None
    request = SubmitRequest(rows=rows, name=name or file.stem, options=_parse_options(options))

    async def work(services: Services) -> list[JobRecord]:
        outcome = await submit_batch(
            services, vendor_name, request, public_url=settings.base_url, source=EventSource.API
        )
        return outcome.jobs

    try:
        jobs = obj.run(settings, work)
    except click.ClickException as exc:
        cause = exc.__context__
        if isinstance(cause, SubmissionError) and cause.jobs:
            _print_jobs(cause.jobs, settings, as_json)
        raise
    _print_jobs(jobs, settings, as_json)


@main.command()
@click.argument("vendor", type=VENDOR)
@click.argument("vendor_job_id")
@click.option("--name", help="A name for the job.")
@_json_option
@click.pass_obj
def track(obj: _Context, vendor: str, vendor_job_id: str, name: str | None, as_json: bool) -> None:
    """Track a job submitted elsewhere, by the vendor's own job id."""
    settings = obj.settings()
    vendor_job_id = vendor_job_id.strip()
    if not vendor_job_id:
        raise click.BadParameter("must not be blank", param_hint="VENDOR_JOB_ID")

    async def work(services: Services) -> JobRecord:
        job, _ = await services.store.track_job(
            VendorName(vendor), vendor_job_id, name, source=EventSource.API
        )
        return job

    _print_jobs([obj.run(settings, work)], settings, as_json)


@main.command()
@click.argument("job_id", type=int)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write; .csv for CSV, anything else JSON lines. Default: JSON lines to stdout.",
)
@click.pass_obj
def results(obj: _Context, job_id: int, output: Path | None) -> None:
    """Export a job's stored results."""
    from enrichwatch import export

    settings = obj.settings()

    async def work(services: Services) -> int:
        job = await services.store.get_job(job_id)
        chunks = export.csv_rows if output and output.suffix == ".csv" else export.jsonl
        try:
            sink = output.open("wb") if output else sys.stdout.buffer
        except OSError as exc:
            raise ExportError(f"cannot write {output}: {exc.strerror}") from None
        try:
            async for chunk in chunks(services.store, job.id):
                sink.write(chunk)
        finally:
            if output:
                sink.close()
        return job.results_count

    count = obj.run(settings, work)
    if output:
        click.echo(f"{count} records written to {output}", err=True)


@main.command()
@click.argument("job_id", type=int)
@_json_option
@click.pass_obj
def check(obj: _Context, job_id: int, as_json: bool) -> None:
    """Ask the vendor about a job now, whatever its schedule."""
    from reconciler import Reconciler, check_job_now

    settings = obj.settings()

    async def work(services: Services) -> JobRecord:
        return await check_job_now(Reconciler(services), job_id)

    _print_jobs([obj.run(settings, work)], settings, as_json)


@main.command()
@click.argument("job_id", type=int)
@_json_option
@click.pass_obj
def resume(obj: _Context, job_id: int, as_json: bool) -> None:
    """Resume a paused job (influencers.club after a credit top-up, eCore)."""
    from enrichwatch import actions

    settings = obj.settings()
    job = obj.run(settings, lambda services: actions.resume(services, job_id))
    _print_jobs([job], settings, as_json)


@main.command()
@click.argument("job_id", type=int)
@click.option(
    "-o",
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="failed_only, incomplete_only, refresh, attributes or attribute_set (repeatable).",
)
@_json_option
@click.pass_obj
def reprocess(obj: _Context, job_id: int, options: tuple[str, ...], as_json: bool) -> None:
    """Reprocess a Reprompt batch; its results are fetched anew when it finishes."""
    from enrichwatch import actions

    settings = obj.settings()
    parsed = _parse_options(options)
    job = obj.run(settings, lambda services: actions.reprocess(services, job_id, parsed))
    _print_jobs([job], settings, as_json)


@main.command()
@click.option("--port", type=int, default=0, show_default=True, help="0 picks a free port.")
@click.option(
    "--speed",
    type=float,
    default=60.0,
    show_default=True,
    help="Simulated seconds per real second.",
)
@click.option("--seed", type=int, default=0, show_default=True)
def sim(port: int, speed: float, seed: int) -> None:
    """Run the vendor simulator: all five vendor APIs on one local port.

    Prints the ENRICHWATCH_* lines that point enrichwatch at it.
    """
    from enrichwatch.sim import run_standalone

    run_standalone(port=port, speed=speed, seed=seed)


class ExportError(EnrichwatchError):
    """The results file cannot be written."""


def _parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--option")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def _print_jobs(jobs: list[JobRecord], settings: Settings, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([job_json(job, settings.base_url) for job in jobs], indent=2))
        return
    for job in jobs:
        click.echo(
            f"job {job.id}  {job.vendor.value}  {job.vendor_job_id or '(not sent yet)'}  "
            f"{job.state.value}  {job.name or ''}".rstrip()
        )
        click.echo(f"  callback URL: {job.callback_url(settings.base_url)}")
