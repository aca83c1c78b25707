"""What an input's rows must hold and how they are cut into parts: the checks and splitting
the adapters share, so that a bad row is named the same way at every vendor and each part
keeps its request's name, options and callback URL."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from enrichwatch.errors import InputError
from enrichwatch.vendors.base import SubmitRequest

Row = Mapping[str, str]


def header(rows: Iterable[Row]) -> list[str]:
    """The input's columns in first-seen order. Rows arrive as mappings, so the header of
    the CSV they came from is the union of their keys."""
    return list(dict.fromkeys(column for row in rows for column in row))


def cell(row: Row, column: str, defaults: Mapping[str, Any] | None = None) -> str:
    """A row's value for `column`, stripped. A column the row lacks falls back to
    `defaults` (options sent with every row), the way a row's own value would override an
    option in the request."""
    value = row[column] if column in row else (defaults or {}).get(column)
    return "" if value is None else str(value).strip()


def require_filled(
    vendor: str,
    rows: Sequence[Row],
    columns: Sequence[str],
    defaults: Mapping[str, Any] | None = None,
) -> None:
    """Every row has a value in each of `columns`; else InputError names the first row
    (1-based, as in the CSV after its header) and the column that is blank."""
    for number, row in enumerate(rows, 1):
        for column in columns:
            if not cell(row, column, defaults):
                raise InputError(vendor, f"{column} is empty", row=number)


def require_choice(vendor: str, name: str, value: Any, allowed: Collection[str]) -> None:
    """An option's value is one the vendor documents; the message lists them all."""
    if not isinstance(value, str) or value not in allowed:
        raise InputError(vendor, f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def parts_of(request: SubmitRequest, groups: Iterable[list[dict[str, str]]]) -> list[SubmitRequest]:
    """The request once per group of rows, each copy keeping the name, options and callback
    URL; options are copied so that one part's changes cannot leak into another's."""
    return [
        request.model_copy(update={"rows": rows, "options": dict(request.options)})
        for rows in groups
    ]


def parts_by_count(request: SubmitRequest, cap: int) -> list[SubmitRequest]:
    """The request cut into parts of at most `cap` rows, in order."""
    rows = request.rows
    return parts_of(request, (rows[i : i + cap] for i in range(0, len(rows), cap)))
