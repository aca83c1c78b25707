"""The first rows of a job's results as a small table: enough to see that they look right,
with the full set a download away."""

from __future__ import annotations

import json
from dataclasses import dataclass

from enrichwatch.export import flatten
from enrichwatch.store import Store

ROWS = 10
MAX_COLUMNS = 6
MAX_CELL = 80


@dataclass(frozen=True)
class Preview:
    columns: list[str]
    rows: list[list[str]]


async def results_preview(store: Store, job_id: int) -> Preview:
    rows = await store.results(job_id, limit=ROWS)
    records = [(row["position"], row["status"], flatten(json.loads(row["data"]))) for row in rows]
    fields: list[str] = []
    for _, _, flat in records:
        fields.extend(key for key in flat if key not in fields)
    fields = fields[:MAX_COLUMNS]
    with_status = any(status for _, status, _ in records)  # some vendors give none
    own = ["#", *(["status"] if with_status else [])]
    return Preview(
        columns=[*own, *_headers(fields, taken=set(own))],
        rows=[
            [
                str(position),
                *([status or ""] if with_status else []),
                *(_cut(flat.get(field, "")) for field in fields),
            ]
            for position, status, flat in records
        ],
    )


def _headers(fields: list[str], taken: set[str]) -> list[str]:
    """The data's field names as headers, each one set apart from the record's own columns
    by `data.` where it would repeat one (Reprompt's and BrightLocal's data have a `status`
    of their own beside the record's), so no two columns read the same."""
    headers = []
    for field in fields:
        header = field
        while header in taken:
            header = f"data.{header}"
        taken.add(header)
        headers.append(header)
    return headers


def _cut(text: str) -> str:
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"
