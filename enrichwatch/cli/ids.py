"""Row ids as command arguments: jobs, stored callbacks and notifications."""

from __future__ import annotations

from collections.abc import Callable
from typing import SupportsIndex, SupportsInt

import click

from enrichwatch.errors import UnknownInboxError, UnknownJobError
from enrichwatch.store.notifications import UnknownNotificationError
from enrichwatch.store.rows import MAX_ROW_ID


class RowId(click.types.IntParamType):
    """An integer id. One no row can have (below 1, or beyond SQLite's integers, which SQLite
    could not even be asked about) is refused exactly as an unknown id is: the store's own
    one-line message and exit 1, not a usage error."""

    def __init__(self, unknown: Callable[[int], Exception]) -> None:
        self.unknown = unknown

    def convert(
        self,
        value: SupportsInt | SupportsIndex,
        param: click.Parameter | None,
        ctx: click.Context | None,
    ) -> int:
        number = super().convert(value, param, ctx)
        if not 1 <= number <= MAX_ROW_ID:
            raise click.ClickException(str(self.unknown(number)))
        return number


JOB_ID = RowId(UnknownJobError)
INBOX_ID = RowId(UnknownInboxError)
NOTIFICATION_ID = RowId(UnknownNotificationError)
