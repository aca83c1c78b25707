"""`enrichwatch notifications`: what was sent, what waits and what was dead-lettered, and
retrying one by hand; and the --notify-* options `submit` and `track` share."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from enrichwatch.cli.context import CliContext, json_option, require_database
from enrichwatch.cli.ids import NOTIFICATION_ID
from enrichwatch.config import Settings
from enrichwatch.errors import EnrichwatchError
from enrichwatch.notify.serialize import notification_json
from enrichwatch.runtime import Services
from enrichwatch.store.notifications import JobTargets, NotificationRecord
from enrichwatch.store.rows import MAX_ROW_ID

F = TypeVar("F", bound=Callable[..., Any])


def notify_options(command: F) -> F:
    """--notify-slack, --notify-email (repeatable), --notify-webhook: the job's own targets."""
    for option in reversed(
        [
            click.option(
                "--notify-slack",
                metavar="URL",
                help="Slack incoming-webhook URL for this job, instead of the configured one.",
            ),
            click.option(
                "--notify-email",
                metavar="ADDRESS",
                multiple=True,
                help="Email this job's outcome here (repeatable), instead of notify.email_to.",
            ),
            click.option(
                "--notify-webhook",
                metavar="URL",
                help="Send this job's signed webhook here, instead of notify.webhook_url.",
            ),
        ]
    ):
        command = option(command)
    return command


def targets_from_options(
    settings: Settings, slack: str | None, email: tuple[str, ...], webhook: str | None
) -> JobTargets | None:
    """The options as targets to store with the job; a bad one is a one-line error."""
    from enrichwatch.notify.targets import job_targets

    try:
        return job_targets(settings, slack=slack, email=list(email) or None, webhook=webhook)
    except EnrichwatchError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(invoke_without_command=True)
@click.option(
    "--state",
    type=click.Choice(["pending", "sent", "dead"]),
    help="Only notifications in this state (dead: dead-lettered).",
)
@click.option("--job", "job_id", type=click.IntRange(1, MAX_ROW_ID), help="Only this job's.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@json_option
@click.pass_context
def notifications(
    ctx: click.Context, state: str | None, job_id: int | None, limit: int, as_json: bool
) -> None:
    """List notifications, newest first: pending, sent or dead-lettered, with the last error."""
    if ctx.invoked_subcommand is not None:
        return
    obj: CliContext = ctx.obj
    settings = obj.settings()
    require_database(settings)

    async def work(services: Services) -> list[NotificationRecord]:
        if job_id is not None:
            await services.store.get_job(job_id)  # an unknown job is an error, not an empty list
        return await services.store.list_notifications(state=state, job_id=job_id, limit=limit)

    records = obj.run(settings, work)
    if as_json:
        click.echo(json.dumps([notification_json(record) for record in records], indent=2))
        return
    if not records:
        click.echo("no notifications")
        return
    for record in records:
        click.echo(_line(record))


@notifications.command()
@click.argument("notification_id", type=NOTIFICATION_ID)
@json_option
@click.pass_obj
def retry(obj: CliContext, notification_id: int, as_json: bool) -> None:
    """Send a dead-lettered notification again (with fresh attempts) on the reconciler's
    next pass."""
    settings = obj.settings()
    require_database(settings)

    async def work(services: Services) -> NotificationRecord:
        return await services.store.retry_notification(notification_id)

    record = obj.run(settings, work)
    if as_json:
        click.echo(json.dumps(notification_json(record), indent=2))
    else:
        click.echo(_line(record))


def _line(record: NotificationRecord) -> str:
    """One notification: what became of it and when, or for one pending, when it is tried
    next (what a person waiting on it wants to know)."""
    if record.state == "pending":
        when = f"next try {_utc(record.next_attempt_at)}"
    else:
        when = f"{'sent' if record.state == 'sent' else 'given up'} {_utc(record.updated_at)}"
    line = (
        f"{record.id}  job {record.job_id}  {record.outcome.value}  {record.channel}  "
        f"{record.state}  attempts={record.attempts}  {when}"
    )
    if record.last_error and record.state != "sent":
        line += f"\n  last error: {record.last_error}"
    return line


def _utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
