"""The one road every adapter's HTTP takes, so that counting calls, reading rate-limit headers
and turning HTTP failures into typed errors are written once for all five vendors. The way an
input becomes jobs (validate, split, one job per part) and the row checks and splitting the
adapters share live here too, for the same reason.

Credentials travel on each request, never on the shared session: the session is also used
for third-party storage, where our keys must never go.
"""

from __future__ import annotations

import gc
import io
import json
import math
import time
from abc import abstractmethod
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import aclosing, contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import aiohttp
from multidict import CIMultiDictProxy
from pydantic_core import from_json

from enrichwatch.config import VendorSettings
from enrichwatch.errors import (
    InputError,
    VendorAmbiguousError,
    VendorAuthError,
    VendorBudgetSpentError,
    VendorDownloadExpiredError,
    VendorError,
    VendorNotFoundError,
    VendorPartialSubmitError,
    VendorPaymentError,
    VendorProtocolError,
    VendorRejectedError,
    VendorTransientError,
    VendorUntrustedUrlError,
)
from enrichwatch.models import JobState
from enrichwatch.retry_after import MAX_RETRY_AFTER, parse_retry_after
from enrichwatch.vendors.base import (
    CallCounter,
    CreatedHook,
    RateLimitInfo,
    SubmitRequest,
    SubmittedJob,
    VendorAdapter,
)
from enrichwatch.vendors.budget import RequestBudgets

DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)
STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120)
CHUNK_BYTES = 64 * 1024
_ERROR_BODY_BYTES = 64 * 1024
EPOCH_AFTER = 1e9
"""An `x-ratelimit-reset` above this (2001-09-09 as Unix time, 31 years as a wait) names a
moment, as many APIs send it, not Crustdata's seconds from now."""
MAX_REDIRECTS = 5
MAX_BUDGET_WAIT = 5.0
"""Seconds a call waits for a place in its account's request budget before it is given up
(transient, with the wait as its retry delay)."""
REDIRECTS = frozenset({301, 302, 303, 307, 308})

Headers = CIMultiDictProxy[str]
Classifier = Callable[[int, Headers, Any, str], VendorError | None]
"""A vendor's own reading of a failed response (status, headers, parsed body, message);
returning None falls back to the common mapping."""
Row = Mapping[str, str]


class HttpAdapter(VendorAdapter):
    """An adapter whose vendor speaks HTTP: subclasses say how to authenticate, and call
    `call`, `stream` and `download`."""

    request_timeout = DEFAULT_TIMEOUT

    def __init__(
        self,
        settings: VendorSettings,
        session: aiohttp.ClientSession,
        *,
        on_call: CallCounter | None = None,
        on_created: CreatedHook | None = None,
        budgets: RequestBudgets | None = None,
    ) -> None:
        super().__init__(settings, session, on_call=on_call, on_created=on_created, budgets=budgets)
        self._rate_limit: RateLimitInfo | None = None
        self._submitted: set[str] = set()

    def auth_headers(self) -> dict[str, str]:
        """Headers every call to the vendor's own API carries."""
        return {}

    def auth_params(self) -> dict[str, str]:
        """Parameters every call carries: in the query for GET/DELETE, else in the form body."""
        return {}

    @property
    def rate_limit(self) -> RateLimitInfo | None:
        return self._rate_limit

    def api_key(self) -> str:
        key = self.settings.api_key
        return "" if key is None else key.get_secret_value()

    async def call(
        self,
        method: str,
        route: str,
        path: Mapping[str, str] | None = None,
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | aiohttp.FormData | None = None,
        client_timeout: aiohttp.ClientTimeout | None = None,
        classify: Classifier | None = None,
    ) -> Any:
        """One request to the vendor's API; returns the parsed JSON body (None when empty).

        `route` is the documented path with `{name}` placeholders filled from `path`, and is
        also the label the call is counted under.
        """
        raw = await self.call_bytes(
            method,
            route,
            path,
            params=params,
            json_body=json_body,
            form=form,
            client_timeout=client_timeout,
            classify=classify,
        )
        return read_json(self.name, method, f"{method} {route}", raw)

    async def call_bytes(
        self,
        method: str,
        route: str,
        path: Mapping[str, str] | None = None,
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | aiohttp.FormData | None = None,
        client_timeout: aiohttp.ClientTimeout | None = None,
        classify: Classifier | None = None,
    ) -> bytes:
        """`call` without the parsing: the body as it came, for a caller that turns a large
        one into records itself and lets the parsed objects go before the collector resumes
        (`collector_paused`)."""
        label = f"{method} {route}"
        url = self.settings.url(_fill(route, path))
        query, body = self._with_auth(method, params, form)
        headers = self.auth_headers()
        payload: Any = body
        if json_body is not None:
            # As a stream: aiohttp warns that a large body of raw bytes blocks the event loop.
            payload = io.BytesIO(json.dumps(json_body).encode())
            headers["Content-Type"] = "application/json"
        await self._take_turn(label)
        self.count_call(label)
        try:
            async with self.session.request(
                method,
                url,
                params=query,
                data=payload,
                headers=headers,
                timeout=client_timeout or self.request_timeout,
                allow_redirects=False,
            ) as response:
                await self._observe(response.status, response.headers)
                raw = await response.read()
                if response.status >= 300:
                    raise self._failure(method, label, response, raw, classify)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_error(self.name, method, label, exc) from exc
        return raw

    async def stream(
        self,
        method: str,
        route: str,
        path: Mapping[str, str] | None = None,
        *,
        params: Mapping[str, str | int] | None = None,
        classify: Classifier | None = None,
    ) -> AsyncGenerator[bytes, None]:
        """The body of one API response, chunk by chunk, so it never sits whole in memory."""
        query, _ = self._with_auth(method, params, None)
        url = self.settings.url(_fill(route, path))
        chunks = self._chunks(
            self.session, method, url, f"{method} {route}", query=query, classify=classify
        )
        async with aclosing(chunks):
            async for chunk in chunks:
                yield chunk

    async def download(
        self, url: str, allowed_hosts: Collection[str]
    ) -> AsyncGenerator[bytes, None]:
        """A third-party result file, chunk by chunk: only from `allowed_hosts`, and through a
        session of its own with no default headers or cookies, so none of our credentials
        can reach the storage host. Object stores answer a redirect now and then (S3's 307
        to a bucket's own region); one to an allowed host is followed, any other refused."""
        allowed = {entry.lower() for entry in allowed_hosts}
        shared = self.session.connector
        async with aiohttp.ClientSession(connector=shared, connector_owner=shared is None) as bare:
            for _ in range(MAX_REDIRECTS + 1):
                host = self._trusted_host(url, allowed)
                chunks = self._chunks(bare, "GET", url, f"GET download {host}", storage=True)
                try:
                    async with aclosing(chunks):
                        async for chunk in chunks:
                            yield chunk
                    return
                except _Redirected as redirect:
                    url = urljoin(url, redirect.location)
        raise VendorProtocolError(self.name, f"more than {MAX_REDIRECTS} redirects downloading")

    def _trusted_host(self, url: str, allowed: Collection[str]) -> str:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not (
            host in allowed or f"{host}:{parts.port}" in allowed
        ):
            raise VendorUntrustedUrlError(self.name, f"refusing to download from {parts.netloc!r}")
        return host

    async def _chunks(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        label: str,
        *,
        query: Mapping[str, str] | None = None,
        storage: bool = False,
        classify: Classifier | None = None,
    ) -> AsyncGenerator[bytes, None]:
        headers = None if storage else self.auth_headers()
        if storage:
            classify = _storage_failure(self.name)
        else:
            await self._take_turn(label)
        self.count_call(label)
        try:
            async with session.request(
                method,
                url,
                params=query,
                headers=headers,
                timeout=STREAM_TIMEOUT,
                allow_redirects=False,
            ) as response:
                if not storage:
                    await self._observe(response.status, response.headers)
                location = response.headers.get("Location")
                if storage and response.status in REDIRECTS and location:
                    raise _Redirected(location)
                if response.status >= 300:
                    raw = await response.content.read(_ERROR_BODY_BYTES)
                    raise self._failure(method, label, response, raw, classify)
                async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                    yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_error(self.name, method, label, exc) from exc

    async def submit(self, request: SubmitRequest) -> list[SubmittedJob]:
        """Check the whole input first, so a bad row is reported before any job exists, then
        send it as the parts `split` makes, one job each. A part `split` produced splits
        into just itself, so the service's `submit(part)` creates exactly one job."""
        self.validate(request)
        return await self.submit_parts(self.split(request), self.submit_part)

    @abstractmethod
    async def submit_part(self, part: SubmitRequest) -> SubmittedJob:
        """Send one part, already validated and within the vendor's caps, as exactly one
        vendor job."""

    async def submit_parts(
        self,
        parts: Sequence[SubmitRequest],
        submit_one: Callable[[SubmitRequest], Awaitable[SubmittedJob]],
    ) -> list[SubmittedJob]:
        """Submit an input already split to the vendor's cap, one job per part, in order.
        A failure after the first part must not orphan the jobs already running, so it
        names them and how many rows they cover."""
        if not parts:
            raise VendorRejectedError(self.name, "nothing to submit: no input rows")
        submitted: list[SubmittedJob] = []
        rows = 0
        for part in parts:
            try:
                job = await submit_one(part)
            except VendorError as exc:
                if not submitted:
                    raise
                raise VendorPartialSubmitError(
                    self.name,
                    f"{len(submitted)} of {len(parts)} parts submitted, then: {exc.message}",
                    submitted_ids=[job.vendor_job_id for job in submitted],
                    rows_submitted=rows,
                    status=exc.status,
                ) from exc
            submitted.append(job)
            self._submitted.add(job.vendor_job_id)
            rows += len(part.rows)
        return submitted

    def adopt(
        self, candidates: list[dict[str, Any]], id_key: str, failure: VendorAmbiguousError
    ) -> dict[str, Any]:
        """Settle an ambiguous submit from the jobs the vendor lists as possibly ours, less
        those this adapter already submitted or adopted. One is adopted; none means nothing
        was created (a plain transient error, safe to retry); several cannot be told apart,
        so the ambiguous error stands and resubmitting needs a human."""
        fresh = [job for job in candidates if str(job.get(id_key)) not in self._submitted]
        if not fresh:
            raise VendorTransientError(
                self.name, f"{failure.message} (no job was created)", status=failure.status
            ) from failure
        if len(fresh) > 1:
            raise failure
        return fresh[0]

    def _with_auth(
        self,
        method: str,
        params: Mapping[str, str | int] | None,
        form: Mapping[str, str] | aiohttp.FormData | None,
    ) -> tuple[dict[str, str], Mapping[str, str] | aiohttp.FormData | None]:
        query = {key: str(value) for key, value in (params or {}).items()}
        auth = self.auth_params()
        if not auth:
            return query, form
        if method in ("GET", "DELETE"):
            return {**auth, **query}, form
        if isinstance(form, aiohttp.FormData):
            for key, value in auth.items():
                form.add_field(key, value)
            return query, form
        return query, {**auth, **(form or {})}

    async def _take_turn(self, label: str) -> None:
        """A place in the account's request budget, or a transient error saying when one
        will be free; nothing was sent then."""
        if self.budget is None:
            return
        wait = await self.budget.acquire(MAX_BUDGET_WAIT)
        if wait > 0:
            raise VendorBudgetSpentError(
                self.name,
                f"{label}: not sent, the account's request budget is spent for {wait:.0f} s",
                retry_after=wait,
            )

    async def _observe(self, status: int, headers: Headers) -> None:
        """Read the vendor's word on our budget; a 429's delay, or a count it says is spent,
        pauses the whole account, not just the caller that heard it."""
        values = [headers.get(f"x-ratelimit-{name}") for name in ("limit", "remaining", "reset")]
        if any(value is not None for value in values):
            self._rate_limit = RateLimitInfo(
                limit=whole(values[0]),
                remaining=whole(values[1]),
                reset=reset_delay(values[2], time.time()),
            )
        if self.budget is None:
            return
        remaining = whole(values[1])
        pause = None
        if remaining == 0:
            pause = reset_delay(values[2], time.time())
        # A 429 that leaves requests remaining is Crustdata's active-jobs cap, not the rate.
        if status == 429 and (remaining is None or remaining == 0):
            pause = retry_delay(headers)
        if pause is not None:
            await self.budget.pause(pause)

    def _failure(
        self,
        method: str,
        label: str,
        response: aiohttp.ClientResponse,
        raw: bytes,
        classify: Classifier | None,
    ) -> VendorError:
        text = raw.decode("utf-8", "replace")
        try:
            body: Any = json.loads(text) if text.strip() else None
        except ValueError:
            body = None
        message = f"{label}: HTTP {response.status}: {describe(body, text)}"
        if classify is not None:
            custom = classify(response.status, response.headers, body, message)
            if custom is not None:
                return custom
        return error_for(self.name, method, response.status, response.headers, body, message)


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


def whole(value: Any) -> int | None:
    """A count as vendors send it: an int, or a float or string holding a whole number;
    None for anything else (a fraction, a negative, a bool, junk), which is no count."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    number = value if isinstance(value, int) else _number(value)
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


def error_for(
    vendor: str, method: str, status: int, headers: Headers, body: Any, message: str
) -> VendorError:
    """The common meaning of an HTTP failure status."""
    if status in (401, 403):
        return VendorAuthError(vendor, message, status=status)
    if status == 402:
        required, balance = _credits(body)
        return VendorPaymentError(vendor, message, required=required, balance=balance)
    if status == 404:
        return VendorNotFoundError(vendor, message, status=status)
    if status in (408, 429) or status >= 500:
        transient = (
            VendorAmbiguousError if status >= 500 and method != "GET" else VendorTransientError
        )
        return transient(vendor, message, status=status, retry_after=retry_delay(headers))
    if 400 <= status < 500:
        return VendorRejectedError(vendor, message, status=status)
    return VendorProtocolError(vendor, message, status=status)


def transport_error(
    vendor: str, method: str, label: str, exc: BaseException
) -> VendorTransientError:
    """A request that failed without an HTTP answer. Once the connection was open the vendor
    may have acted on it, which matters only for requests that change something."""
    never_sent = isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
    kind = VendorTransientError if never_sent or method == "GET" else VendorAmbiguousError
    detail = str(exc) or type(exc).__name__
    return kind(vendor, f"{label}: {detail}")


def retry_delay(headers: Headers) -> float | None:
    """Seconds the vendor asked us to wait: `Retry-After` (see `parse_retry_after`), else
    `x-ratelimit-reset`; None (junk is no advice) leaves the wait to backoff."""
    delay = parse_retry_after(headers.get("Retry-After"))
    if delay is not None:
        return delay
    return reset_delay(headers.get("x-ratelimit-reset"), time.time())


def reset_delay(value: str | None, now: float) -> float | None:
    """`x-ratelimit-reset` as seconds from `now`, held to 0..`MAX_RETRY_AFTER`: Crustdata sends
    seconds to wait, many APIs the Unix time of the reset; a value past `EPOCH_AFTER` can only
    be the latter."""
    reset = _number(value)
    if reset is None:
        return None
    return _bounded(reset - now if reset > EPOCH_AFTER else reset)


def _bounded(seconds: float) -> float:
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


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


def _storage_failure(vendor: str) -> Classifier:
    def classify(status: int, headers: Headers, body: Any, message: str) -> VendorError | None:
        # Pre-signed storage refuses a link whose signature has expired with 403.
        if status == 403:
            return VendorDownloadExpiredError(vendor, message, status=status)
        return None

    return classify


def parse_timestamp(value: Any) -> float:
    """Unix seconds from an ISO 8601 timestamp; NaN (which matches no window) when not one."""
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return float("nan")


def _credits(body: Any) -> tuple[float | None, float | None]:
    """`required` and `balance` (Crustdata: `available`) wherever the 402 body nests them."""
    places = [body] if isinstance(body, dict) else []
    for place in places:
        places += [place[key] for key in ("error", "metadata") if isinstance(place.get(key), dict)]
    found = {
        key: _number(p[key]) for p in reversed(places) for key in p if not isinstance(p[key], dict)
    }
    balance = found.get("balance", found.get("available"))
    return found.get("required"), balance


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
        text = " ".join(raw[:_ERROR_BODY_BYTES].decode("utf-8", "replace").split())[:200]
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


def _fill(route: str, path: Mapping[str, str] | None) -> str:
    if not path:
        return route
    return route.format_map({key: quote(str(value), safe="") for key, value in path.items()})


def _number(value: object) -> float | None:
    """A finite number from a header or body value; None for junk, NaN and infinities."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


class _Redirected(Exception):
    """A storage host answered a redirect: the download goes on at `location`."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location
