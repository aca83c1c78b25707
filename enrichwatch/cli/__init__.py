"""The `enrichwatch` command: the composition root, the only place that builds Settings.

One module per group of commands; each is registered here.
"""

from __future__ import annotations

from pathlib import Path

import click

from enrichwatch.cli import demo, inspect, jobs, notifications, service, stats
from enrichwatch.cli.context import CliContext


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
    ctx.obj = CliContext(config_file)


for command in (
    service.serve,
    service.receiver,
    service.reconciler_only,
    service.sim,
    jobs.submit,
    jobs.track,
    jobs.results,
    jobs.check,
    jobs.resume,
    jobs.reprocess,
    jobs.fetch,
    notifications.notifications,
    inspect.jobs,
    inspect.show,
    inspect.events,
    inspect.replay,
    stats.stats,
    demo.demo,
):
    main.add_command(command)
