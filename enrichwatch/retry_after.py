"""Reading an HTTP Retry-After header (RFC 9110 §10.2.3) as the seconds to wait.

Both of its forms are honoured: delta-seconds and an HTTP-date, which is measured against the
wall clock the server's own date refers to. A value that is no time at all (negative, not a
number, infinite) is ignored so backoff decides; a wait longer than a day is held to a day, so a
far end cannot park a job or a notification where it is never retried nor dead-lettered.
Vendor adapters and notifiers both read it here."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC
from email.utils import parsedate_to_datetime

MAX_RETRY_AFTER = 86400.0


def parse_retry_after(
    value: str | None, *, wall_clock: Callable[[], float] = time.time
) -> float | None:
    """Seconds to wait, or None when the header is absent or says no usable time."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    seconds: float | None
    try:
        seconds = float(text)
    except ValueError:
        seconds = _until_date(text, wall_clock)
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER)


def _until_date(text: str, wall_clock: Callable[[], float]) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # asctime's form, which HTTP reads as GMT
        when = when.replace(tzinfo=UTC)
    return max(when.timestamp() - wall_clock(), 0.0)
