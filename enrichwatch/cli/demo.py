"""`enrichwatch demo`: the vendor simulator and the whole service in this one process, a
sample batch at each vendor, watched live until every result is in."""

from __future__ import annotations

import asyncio
import shlex
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import click

from enrichwatch.cli.context import CliContext, FiniteFloatRange
from enrichwatch.demo import (
    DemoOutcome,
    DemoView,
    LiveView,
    PlainView,
    ServiceRunner,
    clear_previous_demo,
    run_demo,
)
from enrichwatch.demo.files import log_path
from enrichwatch.demo.world import LOST_CALLBACK_VENDOR
from enrichwatch.display import make_console
from enrichwatch.errors import EnrichwatchError
from enrichwatch.logging import configure_logging
from enrichwatch.runtime import Services

INTERRUPTED_EXIT = 130


@click.command(short_help="The whole flow against the built-in vendor simulator.")
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("enrichwatch-demo.db"),
    show_default=True,
    help="SQLite file for the demo; kept afterwards, replaced by the next demo.",
)
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="0 picks a free port.")
@click.option(
    "--keep-running",
    is_flag=True,
    help="Leave the service and its dashboard up after the jobs finish, until Ctrl-C.",
)
@click.option(
    "--timeout",
    type=FiniteFloatRange(min=1),
    default=300.0,
    show_default=True,
    help="Seconds to wait for the jobs before giving up.",
)
@click.pass_obj
def demo(obj: CliContext, db: Path, port: int, keep_running: bool, timeout: float) -> None:
    """Run the whole flow against the built-in vendor simulator: no configuration, no vendor
    account. A sample batch goes to each of the five vendors; one callback is lost on purpose
    so the late-callback fallback shows; it ends when every result is stored (well under a
    minute), printing how to export them."""
    settings = obj.settings(long_running=True, db=db, port=port)
    try:
        clear_previous_demo(db)
    except EnrichwatchError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        log = log_path(db).open("w", encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write next to {db}: {exc.strerror}") from None
    # The live view owns the terminal; the service's own log goes to a file.
    configure_logging(
        level=settings.log_level, log_format="json", secrets=settings.secrets(), stream=log
    )
    console = make_console()
    view: DemoView = LiveView(console) if console.is_terminal else PlainView(_echo)
    try:
        outcome = _run(
            lambda stop, finished: run_demo(
                settings,
                service=_service_on(port),
                view=view,
                stop=stop,
                give_up_after=timeout,
                keep_running=keep_running,
                on_finished=finished,
            ),
            keep_running,
        )
    finally:
        view.close()
        log.close()
    if outcome.interrupted and not outcome.succeeded:
        click.echo("interrupted", err=True)
        sys.exit(INTERRUPTED_EXIT)
    if outcome.timed_out:
        raise click.ClickException(f"jobs still unfinished after {timeout:g}s; see {log_path(db)}")
    if not outcome.succeeded:
        unfinished = [job for job in outcome.jobs if job.results_state != "stored"]
        names = ", ".join(
            f"job {job.id} ({job.vendor.value}: {job.state.value})" for job in unfinished
        )
        raise click.ClickException(f"not every job finished with its results: {names}")


DemoStart = Callable[[asyncio.Event, Callable[[DemoOutcome], None]], Awaitable[DemoOutcome]]


def _run(start: DemoStart, keep_running: bool) -> DemoOutcome:
    """Run the demo with Ctrl-C and SIGTERM ending it cleanly."""

    async def main() -> DemoOutcome:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        return await start(stop, lambda outcome: _report(outcome, keep_running))

    try:
        return asyncio.run(main())
    except EnrichwatchError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:  # the port is taken, or the file system refuses the database
        raise click.ClickException(f"the demo could not start: {exc}") from None


def _service_on(port: int) -> ServiceRunner:
    @asynccontextmanager
    async def service(services: Services) -> AsyncIterator[str]:
        # The CLI is the only module that composes the two roles.
        import reconciler
        from receiver import serving

        async with serving(services, "127.0.0.1", port) as url, reconciler.running(services):
            yield url

    return service


def _report(outcome: DemoOutcome, keep_running: bool) -> None:
    if outcome.interrupted:
        return
    db = shlex.quote(str(outcome.db))
    total = sum(job.results_count for job in outcome.jobs)
    done = sum(job.results_state == "stored" for job in outcome.jobs)
    _echo("")
    _echo(f"{done} of {len(outcome.jobs)} jobs finished with their results: {total} records")
    for job in outcome.jobs:
        late = " (its callback never came: polling found it done)" if job.late_webhook_at else ""
        callbacks = "callback" if job.callbacks_received == 1 else "callbacks"
        _echo(
            f"  job {job.id:<3} {job.vendor.value:<16} {job.state.value:<10} "
            f"{job.results_count:>4} results  {job.vendor_calls:g} vendor calls  "
            f"{job.callbacks_received} {callbacks}{late}"
        )
    first = outcome.jobs[0].id if outcome.jobs else 1
    lost = [job.id for job in outcome.jobs if job.vendor is LOST_CALLBACK_VENDOR]
    _echo("")
    _echo(f"Results are in {outcome.db}; export one job's as CSV (or .jsonl):")
    _echo(f"  ENRICHWATCH_DB={db} enrichwatch results {first} -o results-{first}.csv")
    _echo("Look around:")
    _echo(f"  ENRICHWATCH_DB={db} enrichwatch jobs")
    _echo(f"  ENRICHWATCH_DB={db} enrichwatch events {lost[0] if lost else first}")
    _echo(f"  ENRICHWATCH_DB={db} enrichwatch stats")
    if keep_running:
        _echo(f"Dashboard: {outcome.url}/")
    else:
        _echo("Dashboard: it closes with the demo; `enrichwatch demo --keep-running` keeps it up")
    if outcome.api_token is not None:
        _echo(f"API token for this demo: {outcome.api_token}")
    _echo(f"Service log: {log_path(outcome.db)}")
    if keep_running:
        _echo("The service keeps running; Ctrl-C stops it.")


def _echo(line: str) -> None:
    click.echo(line)
    sys.stdout.flush()
