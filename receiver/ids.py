"""Row ids in URLs: what can name a row, checked once for every route that takes one."""

from __future__ import annotations

MAX_ID = 2**63 - 1
"""Ids and sequence numbers are SQLite integers; nothing larger can name a row."""


def parse_id(raw: str) -> int | None:
    """The id a path segment names, or None when it cannot name a row (not ASCII digits —
    `int()` would take "²" or "٣" — or beyond SQLite's integers)."""
    if not (raw.isascii() and raw.isdigit()):
        return None
    value = int(raw)
    return value if value <= MAX_ID else None
