"""The long-running commands: the service (both roles or the receiver alone) and the
vendor simulator. The only place that composes the receiver and the reconciler."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import click
import structlog

from enrichwatch.cli.context import CliContext, FiniteFloatRange
from enrichwatch.config import Settings
from enrichwatch.errors import EnrichwatchError
from enrichwatch.runtime import open_services

log = structlog.get_logger("enrichwatch")


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


@click.command()
@_listen_options
@click.pass_obj
def serve(obj: CliContext, host: str | None, port: int | None, db: Path | None) -> None:
    """Run the receiver and the reconciler in one process until SIGTERM or Ctrl-C."""
    _run_service(obj.settings(long_running=True, host=host, port=port, db=db), with_reconciler=True)


@click.command()
@_listen_options
@click.pass_obj
def receiver(obj: CliContext, host: str | None, port: int | None, db: Path | None) -> None:
    """Run only the receiver (callbacks, API and dashboard), for a split deployment: a
    reconciler runs elsewhere on the same database, and looks at least once a second for the
    jobs a callback or an action here made due."""
    _run_service(
        obj.settings(long_running=True, host=host, port=port, db=db), with_reconciler=False
    )


@click.command(name="reconciler")
@click.option("--db", type=click.Path(path_type=Path), help="SQLite file [ENRICHWATCH_DB].")
@click.pass_obj
def reconciler_only(obj: CliContext, db: Path | None) -> None:
    """Run only the reconciler until SIGTERM or Ctrl-C: it checks, fetches and notifies for
    the jobs in the database, which a receiver elsewhere writes to; it looks at least once a
    second for the jobs a callback there (or an action from the API or the CLI) made due."""
    settings = obj.settings(long_running=True, db=db)
    try:
        asyncio.run(_reconcile(settings))
    except EnrichwatchError as exc:
        raise click.ClickException(str(exc)) from None


async def _reconcile(settings: Settings) -> None:
    import reconciler

    stop = _stop_on_signals()
    async with open_services(settings) as services, reconciler.running(services):
        log.info("reconciler_started", db=str(settings.db))
        click.echo(f"enrichwatch reconciler running on {settings.db}")
        sys.stdout.flush()
        await stop.wait()
        log.info("service_stopping")
    log.info("service_stopped")


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


def _run_service(settings: Settings, *, with_reconciler: bool) -> None:
    try:
        _check_can_listen(settings.host, settings.port)
        asyncio.run(_serve(settings, with_reconciler))
    except EnrichwatchError as exc:
        raise click.ClickException(str(exc)) from None


def _check_can_listen(host: str, port: int) -> None:
    """Bind once before the database is opened, so a start that cannot listen (port taken,
    no such address) changes nothing: no database file, no API token. Serving binds again,
    and refuses the same way should the port be taken in between."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        socket.create_server((host, port), family=family).close()
    except OSError as exc:
        raise ListenError(host, port, exc) from None


async def _serve(settings: Settings, with_reconciler: bool) -> None:
    # The CLI is the only module that composes the two roles.
    import reconciler
    from receiver import serving

    stop = _stop_on_signals()
    async with open_services(settings, issue_api_token=True) as services:
        if services.generated_api_token is not None:
            click.echo(
                f"API token (shown once; set ENRICHWATCH_API_TOKEN to choose your own): "
                f"{services.generated_api_token}"
            )
        async with contextlib.AsyncExitStack() as running:
            try:
                url = await running.enter_async_context(
                    serving(services, settings.host, settings.port)
                )
            except OSError as exc:  # the port is taken, the address is not this host's…
                raise ListenError(settings.host, settings.port, exc) from None
            if with_reconciler:
                await running.enter_async_context(reconciler.running(services))
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


@click.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="0 picks a free port.",
)
@click.option(
    "--speed",
    type=FiniteFloatRange(min=0, min_open=True),
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

    try:
        run_standalone(port=port, speed=speed, seed=seed)
    except OSError as exc:
        raise click.ClickException(
            f"cannot serve the simulator on port {port}: {exc.strerror}"
        ) from None


class ListenError(EnrichwatchError):
    """The service cannot listen where it was told to."""

    def __init__(self, host: str, port: int, cause: OSError) -> None:
        # socket.create_server appends the address to the reason; the message names it once.
        reason = (cause.strerror or str(cause)).split(" (while attempting to bind", 1)[0]
        super().__init__(f"cannot serve on {host} port {port}: {reason}")
        self.host = host
        self.port = port
