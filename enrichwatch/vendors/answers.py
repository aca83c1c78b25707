"""Reading what vendors answer: JSON bodies, counts, statuses, timestamps and messages, in
whatever shape each vendor sends them, so that the adapters share one reading of each and
junk is never taken for a value."""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from pydantic_core import from_json

from enrichwatch.errors import VendorAmbiguousError, VendorProtocolError, VendorTransientError
from enrichwatch.models import JobState

_PAGE_TEXT_BYTES = 64 * 1024
"""How much of a page that is not JSON is read for its words."""


def whole(value: Any) -> int | None:
    """A count as vendors send it: an int, or a float or string holding a whole number;
    None for anything else (a fraction, a negative, a bool, junk), which is no count."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    number = value if isinstance(value, int) else finite_number(value)
    if number is None or number < 0 or (isinstance(number, float) and not number.is_integer()):
        return None
    return int(number)


def progress(done: Any, failed: Any, total: Any) -> tuple[int | None, int | None, int | None]:
    """Done, failed and total counts as the snapshot holds them: whole numbers or None, with
    failed ≤ done ≤ total. A vendor that counts a retried record twice can report more done
    than submitted; the polling policy and the job's API both read done/total as a fraction."""
    done, failed, total = whole(done), whole(failed), whole(total)
    if total is not None and done is not None:
        done = min(done, total)
    ceiling = done if done is not None else total
    if failed is not None and ceiling is not None:
        failed = min(failed, ceiling)
    return done, failed, total


def text(value: Any) -> str | None:
    """A vendor's message as text, whatever shape it came in; None when it is empty."""
    if value is None or value == "" or value == {} or value == []:
        return None
    return value if isinstance(value, str) else _words(value)[:1000]


def map_status(vendor: str, table: Mapping[str, JobState], value: str) -> JobState:
    """A vendor status in our vocabulary; a status nobody documented is not guessed at."""
    state = table.get(value)
    if state is None:
        raise VendorProtocolError(vendor, f"unknown status {value!r}")
    return state


def describe(body: Any, text: str) -> str:
    """The vendor's own words from an error body, whichever of the usual envelopes it uses:
    `{"error": {"message"}}`, `{"errors": {CODE: text}}`, `{"detail": …}`, DRF field maps."""
    if isinstance(body, dict):
        if isinstance(body.get("error"), dict):
            body = body["error"]
        keys = ("message", "error", "detail", "errors", "error_message", "status_message")
        found = next((body[key] for key in keys if body.get(key)), body)
        return _words(found)[:300]
    return " ".join(text.split())[:300] or "(empty body)"


def _words(value: Any) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{key}: {_words(item)}" for key, item in value.items())
    if isinstance(value, list):
        return "; ".join(_words(v.get("msg", v) if isinstance(v, dict) else v) for v in value)
    return str(value)


def parse_timestamp(value: Any) -> float:
    """Unix seconds from an ISO 8601 timestamp; NaN (which matches no window) when not one."""
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return float("nan")


def read_json(vendor: str, method: str, label: str, raw: bytes) -> Any:
    """A 2xx body as JSON. A JSON API that answers a read with an HTML page or nothing at
    all was not the one answering (a proxy's or load balancer's page): that passes, so it is
    transient; broken JSON is the vendor's own and stays a protocol error. A change it said
    yes to in words we cannot read may have been made."""
    try:
        body = parse_json(vendor, label, raw)
    except VendorProtocolError as exc:
        if method != "GET":
            raise VendorAmbiguousError(vendor, exc.message) from exc
        start = raw.lstrip().removeprefix(b"\xef\xbb\xbf")[:1]
        if start in (b"{", b"["):
            raise
        text = " ".join(raw[:_PAGE_TEXT_BYTES].decode("utf-8", "replace").split())[:200]
        raise VendorTransientError(vendor, f"{exc.message}: {text}") from exc
    if body is None and method == "GET":
        raise VendorTransientError(vendor, f"{label}: empty answer")
    return body


def parse_json(vendor: str, label: str, raw: bytes) -> Any:
    """pydantic-core's parser, caching only keys, reads a large results page several times
    faster than `json.loads`; what it refuses (a byte-order mark, a lone surrogate escape)
    goes to `json.loads`, so no body is newly refused."""
    if not raw.strip():
        return None
    try:
        with collector_paused():
            return from_json(raw, cache_strings="keys")
    except ValueError:
        pass
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise VendorProtocolError(vendor, f"{label}: response is not JSON") from exc


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block, which must not await. Parsing a results
    page makes thousands of containers at once, none of them in a cycle; the collector, run
    every 700 new ones, walks them again and again, up to every object in the process once
    they reach its oldest generation, and parsing took 2.5 times as long with it running.
    Freeing by reference counting goes on; the collector resumes after the block."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def finite_number(value: object) -> float | None:
    """A finite number from a header or body value; None for junk, NaN and infinities."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None
