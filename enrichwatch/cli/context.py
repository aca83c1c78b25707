"""What every command shares: the settings loader, the service runner and job printing."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from enrichwatch.config import Settings, load_settings
from enrichwatch.display import printable
from enrichwatch.errors import EnrichwatchError
from enrichwatch.inputs import job_name_problem
from enrichwatch.logging import configure_logging
from enrichwatch.models import VendorName
from enrichwatch.runtime import Services, open_services
from enrichwatch.serialize import job_json
from enrichwatch.store import JobRecord
from enrichwatch.vendors import adapter_class

T = TypeVar("T")
VENDOR = click.Choice([vendor.value for vendor in VendorName])

json_option = click.option("--json", "as_json", is_flag=True, help="Print as JSON.")


class CliContext:
    def __init__(self, config_file: Path | None) -> None:
        self.config_file = config_file
        self._public_url: str | None = None

    @property
    def public_url(self) -> str:
        """The base URL of callback and result links, as `run` found it: the service on the
        same database may listen where this process's settings do not say."""
        assert self._public_url is not None, "no command has run yet"
        return self._public_url

    def settings(self, *, long_running: bool = False, **overrides: Any) -> Settings:
        """The settings, and logging set up from them. A one-off command's output is what it
        prints; its log lines (a status check failing, a state changing) only repeat that
        output, so unless a log level is set it logs errors alone. A long-running command
        (the service, the demo) logs at the configured level."""
        try:
            settings = load_settings(
                self.config_file, **{k: v for k, v in overrides.items() if v is not None}
            )
        except EnrichwatchError as exc:
            raise click.ClickException(str(exc)) from None
        quiet = not long_running and "log_level" not in settings.model_fields_set
        configure_logging(
            level="error" if quiet else settings.log_level,
            log_format=settings.log_format,
            secrets=settings.secrets(),
        )
        return settings

    def run(self, settings: Settings, work: Callable[[Services], Awaitable[T]]) -> T:
        """Run `work` with the services open; an enrichwatch error is one line and exit 1.
        The schema is left to the services to upgrade: during an upgrade, the service of
        the old version may still be serving the file."""

        async def main() -> T:
            async with open_services(settings, upgrade=False) as services:
                self._public_url = await services.public_url()
                return await work(services)

        try:
            return asyncio.run(main())
        except EnrichwatchError as exc:
            raise click.ClickException(str(exc)) from None


def require_database(settings: Settings) -> None:
    """Reading commands never create a database: a missing file is a mistaken path."""
    if not settings.db.is_file():
        raise click.ClickException(
            f"no enrichwatch database at {settings.db} (set ENRICHWATCH_DB or --config)"
        )


class JobName(click.types.StringParamType):
    """A job name as an option: one `job_name_problem` finds fault with is a usage error,
    rather than a blank name left to mean the file's, or a garbled one stored."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        name = super().convert(value, param, ctx)
        if (problem := job_name_problem(name)) is not None:
            self.fail(problem, param, ctx)
        return name


JOB_NAME = JobName()


class FiniteFloatRange(click.FloatRange):
    """A FloatRange that also refuses nan and inf, which pass its bounds checks (nan compares
    false with everything) and make no sense as a speed or a duration."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


def parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
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


def print_jobs(jobs: list[JobRecord], public_url: str, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([job_json(job, public_url) for job in jobs], indent=2))
        return
    for job in jobs:
        click.echo(
            f"job {job.id}  {job.vendor.value}  {job.vendor_job_id or '(not sent yet)'}  "
            f"{job.state.value}  {printable(job.name or '')}".rstrip()
        )
        if adapter_class(job.vendor).supports_webhooks:  # the others have nowhere to put it
            click.echo(f"  callback URL: {job.callback_url(public_url)}")
