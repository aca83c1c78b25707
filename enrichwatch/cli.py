"""The `enrichwatch` command: the composition root, the only place that builds Settings and
joins the receiver and the reconciler into one process."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import click
import structlog

from enrichwatch.config import Settings, load_settings
from enrichwatch.errors import EnrichwatchError
from enrichwatch.logging import configure_logging
from enrichwatch.runtime import open_services

log = structlog.get_logger("enrichwatch")


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


@main.command()
@click.option("--host", help="Address to listen on [ENRICHWATCH_HOST, default 127.0.0.1].")
@click.option("--port", type=int, help="Port to listen on [ENRICHWATCH_PORT, default 8080].")
@click.option("--db", type=click.Path(path_type=Path), help="SQLite file [ENRICHWATCH_DB].")
@click.pass_obj
def serve(obj: _Context, host: str | None, port: int | None, db: Path | None) -> None:
    """Run the receiver (and the reconciler) in one process until SIGTERM or Ctrl-C."""
    settings = obj.settings(host=host, port=port, db=db)
    try:
        asyncio.run(_serve(settings))
    except EnrichwatchError as exc:
        raise click.ClickException(str(exc)) from None


async def _serve(settings: Settings) -> None:
    from receiver import serving  # the CLI is the only module that composes the roles

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with open_services(settings) as services:
        if services.generated_api_token is not None:
            click.echo(
                f"API token (shown once; set ENRICHWATCH_API_TOKEN to choose your own): "
                f"{services.generated_api_token}"
            )
        async with serving(services, settings.host, settings.port) as url:
            log.info("service_started", url=url, db=str(settings.db))
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
