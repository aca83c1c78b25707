"""`enrichwatch stats`: per vendor, what jobs take and what watching them costs."""

from __future__ import annotations

import json

import click
from rich.table import Table

from enrichwatch.cli.context import CliContext, json_option, require_database
from enrichwatch.display import duration_text, make_console
from enrichwatch.stats import VendorStats, vendor_stats


@click.command(short_help="Per vendor: durations, calls per job, callbacks late or lost.")
@json_option
@click.pass_obj
def stats(obj: CliContext, as_json: bool) -> None:
    """Per vendor: jobs, open ones, completed ones and those that failed or expired (with
    --json, failed_jobs counts both), median duration, vendor calls per finished job, how
    soon a finished job is noticed (p50/p95), and callbacks that came late or never."""
    settings = obj.settings()
    require_database(settings)
    rows = obj.run(settings, lambda services: vendor_stats(services.store))
    if as_json:
        click.echo(json.dumps([row.as_json() for row in rows], indent=2))
        return
    make_console().print(_table(rows))


def _table(rows: list[VendorStats]) -> Table:
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("Vendor", no_wrap=True)
    for column in (
        "Jobs",
        "Open",
        "Completed",
        "Failed/expired",  # both ended without completing: the vendor gave up, or we did
        "Median duration",
        "Calls/job",
        "Detection p50",
        "Detection p95",
        "Callbacks late",
        "lost",
    ):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            row.vendor.value,
            str(row.jobs),
            str(row.open_jobs),
            str(row.completed_jobs),
            str(row.failed_jobs),
            duration_text(row.median_duration),
            "-" if row.calls_per_job is None else f"{row.calls_per_job:.1f}",
            duration_text(row.detection_delay_p50),
            duration_text(row.detection_delay_p95),
            str(row.callbacks_late),
            str(row.callbacks_lost),
        )
    return table
