"""Stored results as JSON lines or CSV, produced page by page so that no export ever holds a
whole result set in memory (the API streams it, the CLI writes it to a file)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from enrichwatch.errors import StoreError
from enrichwatch.store import Store

PAGE = 1000
FIXED_COLUMNS = ["position", "input_id", "status"]
DATA_COLUMN = "data"


async def _pages(
    store: Store, job_id: int, *, through: int | None = None
) -> AsyncIterator[list[dict[str, Any]]]:
    """The stored records in position order, up to position `through` when given."""
    after = -1
    while True:
        rows = await store.results(job_id, after=after, limit=PAGE)
        if through is not None:
            rows = [row for row in rows if row["position"] <= through]
        if not rows:
            return
        yield [
            {
                "position": row["position"],
                "input_id": row["input_id"],
                "status": row["status"],
                "data": _data(job_id, row["position"], row["data"]),
            }
            for row in rows
        ]
        after = rows[-1]["position"]


def _data(job_id: int, position: int, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise StoreError(f"stored result {position} of job {job_id} is not valid JSON") from None


async def jsonl(store: Store, job_id: int) -> AsyncIterator[bytes]:
    async for page in _pages(store, job_id):
        yield "".join(json.dumps(record) + "\n" for record in page).encode()


async def csv_rows(store: Store, job_id: int) -> AsyncIterator[bytes]:
    """One row per record: position, input id, status, the data's fields flattened with dotted
    names, and the whole data as JSON last, so no field is ever lost to a fixed header.

    The columns are every record's fields, whichever page they first appear on: a first read
    gathers their names (the names only, never the records), and the rows written stop at
    the last record that read saw, so results stored meanwhile after it add no row. (A
    BrightLocal record stored meanwhile before it, as its jobs finish in any order, is
    written: a field of it the header lacks is only in `data`.) The header is the names
    sorted, the same whatever the page size or the order records come in.

    Only fields of an object are columns: a record whose data is not one (null, as a failed
    record's is, or a number, a string, a list) adds none, its field cells are blank, and its
    data is in the `data` column as JSON (`null`). A field named like one of the record's own
    columns (Reprompt's and BrightLocal's `status`) gets no second column of that name: it is
    in the data."""
    columns, last = await _columns(store, job_id)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*FIXED_COLUMNS, *columns, DATA_COLUMN])
    if last is not None:
        async for page in _pages(store, job_id, through=last):
            for record in page:
                fields = flatten(record["data"])
                writer.writerow(
                    [
                        *(record[column] for column in FIXED_COLUMNS),
                        *(fields.get(column, "") for column in columns),
                        json.dumps(record["data"]),
                    ]
                )
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


async def _columns(store: Store, job_id: int) -> tuple[list[str], int | None]:
    """The flattened field names of every stored record, sorted, and the last position read
    (None: no records)."""
    names: set[str] = set()
    last = None
    async for page in _pages(store, job_id):
        for record in page:
            names.update(leaf_names(record["data"]))
        last = page[-1]["position"]
    return sorted(names - {*FIXED_COLUMNS, DATA_COLUMN}), last


def flatten(value: Any) -> dict[str, str]:
    """A record's data as one text cell per field, named by its dotted path (`address.city`):
    the CSV columns, and the dashboard's preview columns.

    Only an object has fields. Data that is not one (null, as a failed record's is; a number,
    a string, a list) gives no cell at all, so it adds no column: it is whole in the export's
    `data` column, and no name made up for it can take the place of a real field's (a field
    named `value` is a field like any other). Inside an object, every value but an object is
    one cell: a string as it is, anything else (null, a number, a list) as JSON."""
    return {
        name: item if isinstance(item, str) else json.dumps(item) for name, item in _leaves(value)
    }


def leaf_names(value: Any) -> Iterator[str]:
    """The names `flatten` gives a record's cells, without making the cells."""
    return (name for name, _ in _leaves(value))


def _leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Each field under an object (none for anything else) with its dotted name, nested
    objects walked into."""
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        if isinstance(item, dict):
            yield from _leaves(item, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", item
