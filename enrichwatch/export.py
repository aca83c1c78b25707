"""Stored results as JSON lines or CSV, produced page by page so that no export ever holds a
whole result set in memory (the API streams it, the CLI writes it to a file)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Any

from enrichwatch.store import Store

PAGE = 1000
FIXED_COLUMNS = ["position", "input_id", "status"]


async def _pages(store: Store, job_id: int) -> AsyncIterator[list[dict[str, Any]]]:
    after = -1
    while True:
        rows = await store.results(job_id, after=after, limit=PAGE)
        if not rows:
            return
        yield [
            {
                "position": row["position"],
                "input_id": row["input_id"],
                "status": row["status"],
                "data": json.loads(row["data"]),
            }
            for row in rows
        ]
        after = rows[-1]["position"]


async def jsonl(store: Store, job_id: int) -> AsyncIterator[bytes]:
    async for page in _pages(store, job_id):
        yield "".join(json.dumps(record) + "\n" for record in page).encode()


async def csv_rows(store: Store, job_id: int) -> AsyncIterator[bytes]:
    """One row per record: position, input id, status, the data's fields flattened with dotted
    names (the columns are those of the first page), and the whole data as JSON last, so no
    field is ever lost to a fixed header."""
    columns: list[str] | None = None
    async for page in _pages(store, job_id):
        flat = [flatten(record["data"]) for record in page]
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        if columns is None:
            columns = sorted({key for row in flat for key in row})
            writer.writerow([*FIXED_COLUMNS, *columns, "data"])
        for record, fields in zip(page, flat, strict=True):
            writer.writerow(
                [
                    *(record[column] for column in FIXED_COLUMNS),
                    *(fields.get(column, "") for column in columns),
                    json.dumps(record["data"]),
                ]
            )
        yield buffer.getvalue().encode()
    if columns is None:
        yield (",".join([*FIXED_COLUMNS, "data"]) + "\r\n").encode()


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """A record as one text cell per leaf, named by its dotted path (`address.city`): the
    CSV columns, and the dashboard's preview columns."""
    if isinstance(value, dict):
        flat: dict[str, str] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}{key}."))
        return flat
    text = value if isinstance(value, str) else json.dumps(value)
    return {prefix.rstrip(".") or "value": text}
