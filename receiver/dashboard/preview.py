"""The first rows of a job's results as a small table: enough to see that they look right,
with the full set a download away."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

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
    records = [(row["position"], row["status"], _flatten(json.loads(row["data"]))) for row in rows]
    fields: list[str] = []
    for _, _, flat in records:
        fields.extend(key for key in flat if key not in fields)
    fields = fields[:MAX_COLUMNS]
    with_status = any(status for _, status, _ in records)  # some vendors give none
    return Preview(
        columns=["#", *(["status"] if with_status else []), *fields],
        rows=[
            [
                str(position),
                *([status or ""] if with_status else []),
                *(_cut(flat.get(field, "")) for field in fields),
            ]
            for position, status, flat in records
        ],
    )


def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(value, dict):
        flat: dict[str, str] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    text = value if isinstance(value, str) else json.dumps(value)
    return {prefix.rstrip(".") or "value": text}


def _cut(text: str) -> str:
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"
