"""The one road every adapter's HTTP takes, so that counting calls, reading rate-limit headers
and turning HTTP failures into typed errors are written once for all five vendors. The way an
input becomes jobs (validate, split, one job per part) lives here too, for the same reason;
the row checks and splitting are in `inputs`, the reading of answers in `answers`.

Credentials travel on each request, never on the shared session: the session is also used
for third-party storage, where our keys must never go.
"""

from __future__ import annotations

import io
import json
import time
from abc import abstractmethod
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Collection,
    Mapping,
    Sequence,
)
from contextlib import aclosing
from typing import Any, TypeVar
from urllib.parse import quote, urljoin, urlsplit

import aiohttp
from multidict import CIMultiDictProxy

from enrichwatch.config import VendorSettings
from enrichwatch.errors import (
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
from enrichwatch.retry_after import MAX_RETRY_AFTER, parse_retry_after
from enrichwatch.vendors.answers import describe, finite_number, read_json, whole
from enrichwatch.vendors.base import (
    CallCounter,
    CreatedHook,
    FailureCounter,
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


T = TypeVar("T")


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
        on_failure: FailureCounter | None = None,
        on_created: CreatedHook | None = None,
        budgets: RequestBudgets | None = None,
    ) -> None:
        super().__init__(
            settings,
            session,
            on_call=on_call,
            on_failure=on_failure,
            on_created=on_created,
            budgets=budgets,
        )
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
        return self.parsed(method, f"{method} {route}", raw)

    def parsed(self, method: str, label: str, raw: bytes) -> Any:
        """`read_json`; a body it cannot read is counted as the call's failure."""
        try:
            return read_json(self.name, method, label, raw)
        except VendorError:
            self.count_failure(label, "unreadable")
            raise

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
                    self.count_failure(label, str(response.status))
                    raise self._failure(method, label, response, raw, classify)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.count_failure(label, "network")
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
                    self.count_failure(label, str(response.status))
                    raw = await response.content.read(_ERROR_BODY_BYTES)
                    raise self._failure(method, label, response, raw, classify)
                async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                    yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.count_failure(label, "network")
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

    async def read_back(self, failure: VendorAmbiguousError, lookup: Awaitable[T]) -> T:
        """What `lookup`, a read of the vendor's jobs, says of a submit that may have been
        taken. A read that fails leaves the submit as unsettled as it was, since sending the
        part again could create (and bill) it twice; only a 404 passes, for the adapter that
        reads its own job id back to tell."""
        try:
            return await lookup
        except VendorNotFoundError:
            raise
        except VendorError as exc:
            raise VendorAmbiguousError(
                self.name,
                f"{failure.message}; whether it was taken could not be read back: {exc.message}",
                status=failure.status,
            ) from exc

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
    reset = finite_number(value)
    if reset is None:
        return None
    return _bounded(reset - now if reset > EPOCH_AFTER else reset)


def _bounded(seconds: float) -> float:
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


def _storage_failure(vendor: str) -> Classifier:
    def classify(status: int, headers: Headers, body: Any, message: str) -> VendorError | None:
        # Pre-signed storage refuses a link whose signature has expired with 403.
        if status == 403:
            return VendorDownloadExpiredError(vendor, message, status=status)
        return None

    return classify


def _credits(body: Any) -> tuple[float | None, float | None]:
    """`required` and `balance` (Crustdata: `available`) wherever the 402 body nests them."""
    places = [body] if isinstance(body, dict) else []
    for place in places:
        places += [place[key] for key in ("error", "metadata") if isinstance(place.get(key), dict)]
    found = {
        key: finite_number(p[key])
        for p in reversed(places)
        for key in p
        if not isinstance(p[key], dict)
    }
    balance = found.get("balance", found.get("available"))
    return found.get("required"), balance


def _fill(route: str, path: Mapping[str, str] | None) -> str:
    if not path:
        return route
    return route.format_map({key: quote(str(value), safe="") for key, value in path.items()})


class _Redirected(Exception):
    """A storage host answered a redirect: the download goes on at `location`."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location
