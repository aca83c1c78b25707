"""Row ids in URLs: what can name a row, checked once for every route that takes one."""

from __future__ import annotations

from enrichwatch.store.rows import MAX_ROW_ID


def parse_id(raw: str) -> int | None:
    """The id a path segment names, or None when it cannot name a row (not ASCII digits —
    `int()` would take "²" or "٣" — or beyond SQLite's integers)."""
    if not (raw.isascii() and raw.isdigit()):
        return None
    value = int(raw)
    return value if value <= MAX_ROW_ID else None
