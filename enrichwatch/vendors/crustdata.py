"""Crustdata's Batch API (version 2025-11-01): person, company and contact enrichment jobs,
a webhook per job, and results as gzipped JSONL at pre-signed storage links."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Collection, Iterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from multidict import CIMultiDictProxy
from pydantic_core import from_json

from enrichwatch.config import CrustdataSettings
from enrichwatch.errors import (
    InputError,
    VendorAmbiguousError,
    VendorConcurrencyLimitError,
    VendorError,
    VendorProtocolError,
    VendorTransientError,
)
from enrichwatch.models import JobState, VendorName
from enrichwatch.vendors.answers import map_status, parse_timestamp, progress, text, whole
from enrichwatch.vendors.base import (
    ResultRecord,
    StatusSnapshot,
    SubmitRequest,
    SubmittedJob,
    VendorLimits,
)
from enrichwatch.vendors.http import HttpAdapter
from enrichwatch.vendors.inputs import cell, header, parts_by_count, require_choice, require_filled

API_VERSION = "2025-11-01"
GZIP_MAGIC = b"\x1f\x8b"
PARSE_BATCH = 1000
"""Most lines parsed in one go, so one chunk that inflates a lot never holds the loop long."""
READ_AHEAD = 8
"""Downloaded chunks (each at most `CHUNK_BYTES`, compressed) queued ahead of the parser."""


@dataclass(frozen=True)
class Endpoint:
    kind: str
    route: str
    entity: str
    action: str
    identifier_types: tuple[str, ...]
    cap: int
    """Most identifiers one job may carry; Crustdata refuses more with 400."""
    fields_required: bool = False


ENDPOINTS: dict[str, Endpoint] = {
    endpoint.kind: endpoint
    for endpoint in (
        Endpoint(
            "person",
            "/batch/person/enrich",
            "person",
            "enrich",
            ("professional_network_profile_urls", "business_emails"),
            10_000,
        ),
        Endpoint(
            "company",
            "/batch/company/enrich",
            "company",
            "enrich",
            ("names", "domains", "professional_network_profile_urls", "crustdata_company_ids"),
            10_000,
        ),
        Endpoint(
            "contact",
            "/batch/person/contact/enrich",
            "person",
            "contact_enrich",
            ("professional_network_profile_urls",),
            300,
            fields_required=True,
        ),
    )
}
DEFAULT_ENDPOINT = "person"
CHUNK_SIZES = range(10, 1001)
"""The `chunk_size` values Crustdata accepts (default 100)."""
STATES = {
    "pending": JobState.QUEUED,
    "processing": JobState.RUNNING,
    "completed": JobState.COMPLETED,
    "failed": JobState.FAILED,
}


class CrustdataAdapter(HttpAdapter):
    name = VendorName.CRUSTDATA
    supports_webhooks = True
    has_list_endpoint = True
    limits = VendorLimits(
        max_batch_size=10_000,
        # /batch is not in Crustdata's rate-limit table; x-ratelimit-* headers are the truth.
        requests_per_minute=30,
        # The webhook says when a job ends, so polling is only a slow safety net.
        recommended_poll_interval=60.0,
        extra={
            "max_active_jobs": 5,
            "max_batch_size_by_endpoint": {kind: e.cap for kind, e in ENDPOINTS.items()},
        },
    )
    settings: CrustdataSettings
    list_page_size = 100
    max_list_pages = 10
    records_per_page = 500
    match_window = 300.0
    """Seconds either side of an ambiguous submit within which a listed job may be ours."""

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key()}", "x-api-version": API_VERSION}

    def validate(self, request: SubmitRequest) -> None:
        """`options["endpoint"]` picks person (default), company or contact enrichment, and
        the one identifier column's name picks the identifier type. Crustdata refuses a
        whole job for one bad value, and a later part failing would leave earlier parts
        running, so everything it is documented to refuse is checked here first."""
        super().validate(request)
        endpoint = _endpoint(self.name, request.options)
        if "chunk_size" in request.options:
            chunk_size = request.options["chunk_size"]
            whole = isinstance(chunk_size, int) and not isinstance(chunk_size, bool)
            if not whole or chunk_size not in CHUNK_SIZES:
                raise InputError(
                    self.name,
                    f"chunk_size must be a whole number from {CHUNK_SIZES.start} to "
                    f"{CHUNK_SIZES[-1]}; got {chunk_size!r}",
                )
        if endpoint.fields_required and not _listed(request.options.get("fields")):
            raise InputError(
                self.name,
                f"{endpoint.kind} enrichment needs a non-empty fields option (e.g. business_email)",
            )
        column = _identifier_column(self.name, request.rows, endpoint)
        require_filled(self.name, request.rows, [column])

    def split(self, request: SubmitRequest) -> list[SubmitRequest]:
        """Parts of at most the endpoint's cap of identifiers (300 for contact, else
        10,000), since Crustdata refuses a larger job outright."""
        return parts_by_count(request, _endpoint(self.name, request.options).cap)

    async def submit_part(self, part: SubmitRequest) -> SubmittedJob:
        """Other options (`fields`, `chunk_size`, `verified`) go into the body as given; the
        callback URL becomes the job's `webhook_url`."""
        options = dict(part.options)
        endpoint = _endpoint(self.name, options)
        options.pop("endpoint", None)
        column = _identifier_column(self.name, part.rows, endpoint)
        values: list[str | int] = [
            int(v) if column == "crustdata_company_ids" and v.isdigit() else v
            for v in (cell(row, column) for row in part.rows)
        ]
        if part.callback_url:
            options["webhook_url"] = part.callback_url
        return await self._submit_one(endpoint, {column: values, **options}, len(values))

    async def _submit_one(
        self, endpoint: Endpoint, body: dict[str, Any], count: int
    ) -> SubmittedJob:
        """On an ambiguous failure the job list is read: a job may be ours when it has the
        same entity, action and identifier count and was created within `match_window`
        seconds of the attempt (see `adopt` for what follows)."""
        sent_at = time.time()
        try:
            data = await self.call(
                "POST", endpoint.route, json_body=body, classify=self._active_jobs_cap
            )
            if not isinstance(data, dict) or not data.get("batch_id"):
                raise VendorAmbiguousError(
                    self.name, f"POST {endpoint.route}: accepted, but the answer names no batch_id"
                )
        except VendorAmbiguousError as exc:
            matches = await self.read_back(exc, self._recent_matches(endpoint, count, sent_at))
            data = self.adopt(matches, "batch_id", exc)
        return SubmittedJob(vendor_job_id=str(data["batch_id"]), raw=data)

    async def _recent_matches(
        self, endpoint: Endpoint, count: int, sent_at: float
    ) -> list[dict[str, Any]]:
        return [
            job
            for job in await self._listed(count, sent_at, time.time())
            if job.get("entity") == endpoint.entity and job.get("action") == endpoint.action
        ]

    async def listed_since(self, since: float, rows: int) -> list[str]:
        return [str(job["batch_id"]) for job in await self._listed(rows, since, None)]

    async def _listed(
        self, count: int, earliest: float, latest: float | None
    ) -> list[dict[str, Any]]:
        """Listed jobs of `count` identifiers created between the two times (`match_window`
        either side for the clocks' skew; None: no upper bound), newest first."""
        data = await self.call("GET", "/batch", params={"limit": self.list_page_size})
        low = earliest - self.match_window
        high = math.inf if latest is None else latest + self.match_window
        return [
            job
            for job in _jobs(self.name, data)
            if job.get("batch_id")
            and job.get("identifier_count") == count
            and low <= parse_timestamp(job.get("created_at")) <= high
        ]

    def _active_jobs_cap(
        self, status: int, headers: CIMultiDictProxy[str], body: Any, message: str
    ) -> VendorError | None:
        # Both limits answer 429; the cap names active jobs, and leaves the rate budget unspent.
        if status != 429:
            return None
        remaining = headers.get("x-ratelimit-remaining")
        if "active" in json.dumps(body).lower() or (remaining or "0").strip() not in ("", "0"):
            return VendorConcurrencyLimitError(self.name, message, status=status)
        return None

    async def status(self, vendor_job_id: str) -> StatusSnapshot:
        data = await self.call("GET", "/batch/{id}", {"id": vendor_job_id})
        return self._snapshot(data)

    async def list_status(
        self, vendor_job_ids: Collection[str], also: Collection[str] = ()
    ) -> dict[str, StatusSnapshot]:
        """Pages newest first and stops as soon as every wanted job was seen."""
        wanted, found = set(vendor_job_ids), {}
        reported = wanted | set(also)
        cursor: str | None = None
        for _ in range(self.max_list_pages):
            params: dict[str, str | int] = {"limit": self.list_page_size}
            if cursor:
                params["cursor"] = cursor
            data = await self.call("GET", "/batch", params=params)
            for job in _jobs(self.name, data):
                if job.get("batch_id") in reported:
                    # One job in words we cannot read is left to its own status call.
                    with contextlib.suppress(VendorProtocolError):
                        found[str(job["batch_id"])] = self._snapshot(job)
            cursor = data.get("next_cursor")
            if wanted <= found.keys() or not data.get("has_more") or not cursor:
                break
        return found

    def _snapshot(self, data: Any) -> StatusSnapshot:
        if not isinstance(data, dict) or "batch_id" not in data:
            raise VendorProtocolError(self.name, "status body has no batch_id")
        vendor_status = str(data.get("status"))
        state = map_status(self.name, STATES, vendor_status)
        requested = data.get("entities_requested")
        total = whole(data.get("identifier_count") if requested is None else requested)
        done, failed = whole(data.get("result_count")), None
        if data.get("action") in ("search", "search_live"):
            total = None
        elif state is JobState.COMPLETED and total is not None:
            # Unresolved identifiers are silently dropped, so the file can be shorter.
            fulfilled = whole(data.get("entities_fulfilled"))
            done, failed = total, None if fulfilled is None else max(0, total - fulfilled)
        done, failed, total = progress(done, failed, total)
        return StatusSnapshot(
            vendor_job_id=str(data["batch_id"]),
            state=state,
            vendor_status=vendor_status,
            done=done,
            failed=failed,
            total=total,
            error=text(data.get("error_message")),
            results_available=state is JobState.COMPLETED,
            raw=data,
        )

    async def results(
        self, snapshot: StatusSnapshot, start: int = 0
    ) -> AsyncIterator[list[ResultRecord]]:
        """Every part in `download_urls`, in order; a record's position is its line number
        across the parts. List snapshots carry no links, so status is read for them.

        A resumed read (`start` > 0) still downloads and inflates the parts before `start`,
        but only counts their lines instead of parsing them. It cannot skip whole parts:
        the status names the parts but not how many lines each holds (`result_count` is the
        total), positions are line numbers across all parts, and a gzip member cannot be
        entered in the middle (no index, no ranged read that inflates), so where part k
        begins is known only by reading the parts before it."""
        raw = snapshot.raw
        count = whole(raw.get("result_count"))
        if count == 0:
            return
        urls = _links(raw)
        if not urls:
            urls = _links((await self.status(snapshot.vendor_job_id)).raw)
        if not urls:
            # Stored as an empty set, the results would be lost without a word.
            raise VendorTransientError(
                self.name,
                f"batch {snapshot.vendor_job_id} is completed with "
                f"{'its' if count is None else count} results but no download links yet",
            )
        size, position = self.records_per_page, start
        page: list[ResultRecord] = []
        async with aclosing(self._records(urls, skip=start)) as batches:
            async for records in batches:
                first, position = position, position + len(records)
                page.extend(map(_result, range(first, position), records))
                while len(page) >= size:
                    yield page[:size]
                    page = page[size:]
        if page:
            yield page

    async def _records(
        self, urls: list[str], *, skip: int = 0
    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        """The parts' records in order after the first `skip` (counted, not parsed), in lists
        of at most `PARSE_BATCH` as chunks arrive.

        A task downloads the parts one after another into a queue of `READ_AHEAD` chunks, so
        the next part is asked for while this one's last chunks are still being parsed and
        the storage host never waits for us at a part boundary. A download's failure reaches
        the parser after the chunks before it, as if read in line."""
        queue: asyncio.Queue[bytes | Exception | None] = asyncio.Queue(READ_AHEAD)
        reader = asyncio.create_task(self._download_parts(urls, queue))
        try:
            for _ in urls:
                gunzip, lines = Gunzip(self.name), LineSplitter()
                while (chunk := await queue.get()) is not None:
                    if isinstance(chunk, Exception):
                        raise chunk
                    found, skip = _skip_lines(lines.feed(gunzip.feed(chunk)), skip)
                    for records in _parse_lines(self.name, found):
                        yield records
                tail, skip = _skip_lines(lines.feed(gunzip.close()) + lines.close(), skip)
                for records in _parse_lines(self.name, tail):
                    yield records
        finally:
            reader.cancel()

    async def _download_parts(
        self, urls: list[str], queue: asyncio.Queue[bytes | Exception | None]
    ) -> None:
        """Each part's chunks then None; on a failure, the error and nothing after it."""
        try:
            for url in urls:
                async with aclosing(self.download(url, self.settings.download_hosts)) as chunks:
                    async for chunk in chunks:
                        await queue.put(chunk)
                await queue.put(None)
        except Exception as exc:
            await queue.put(exc)


class Gunzip:
    """Inflates a body that may or may not be gzip, decided by its magic bytes, since the
    storage host sends gzip without `Content-Encoding`. Concatenated members are allowed; a
    stream that stops inside a member is an error, never silently short."""

    def __init__(self, vendor: str) -> None:
        self._vendor = vendor
        self._head = b""
        self._inflater: Any = None
        self._plain = False

    def feed(self, data: bytes) -> bytes:
        if self._inflater is None and not self._plain:
            self._head += data
            if len(self._head) < len(GZIP_MAGIC):
                return b""
            data, self._head = self._head, b""
            if data.startswith(GZIP_MAGIC):
                self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
            else:
                self._plain = True
        if self._plain:
            return data
        out = []
        try:
            while data:
                if self._inflater.eof:
                    self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
                out.append(self._inflater.decompress(data))
                data = self._inflater.unused_data if self._inflater.eof else b""
        except zlib.error as exc:
            raise VendorProtocolError(self._vendor, f"corrupt gzip result file: {exc}") from exc
        return b"".join(out)

    def close(self) -> bytes:
        if self._inflater is None and not self._plain and GZIP_MAGIC.startswith(self._head):
            # Nothing, or half the magic: even an empty gzip file has a 20-byte frame.
            raise VendorTransientError(self._vendor, "result file ended before it began")
        if self._inflater is None:
            return self._head
        if not self._inflater.eof:
            raise VendorTransientError(self._vendor, "result file ended mid-stream (truncated)")
        return b""


class LineSplitter:
    """Complete lines out of arbitrary chunks, without re-copying a long partial line."""

    def __init__(self) -> None:
        self._partial: list[bytes] = []

    def feed(self, data: bytes) -> list[bytes]:
        pieces = data.split(b"\n")
        if len(pieces) == 1:
            if data:
                self._partial.append(data)
            return []
        first = b"".join([*self._partial, pieces[0]])
        self._partial = [pieces[-1]] if pieces[-1] else []
        return [first, *pieces[1:-1]]

    def close(self) -> list[bytes]:
        rest, self._partial = b"".join(self._partial), []
        return [rest] if rest else []


def _endpoint(vendor: str, options: Mapping[str, Any]) -> Endpoint:
    kind = options.get("endpoint", DEFAULT_ENDPOINT)
    require_choice(vendor, "endpoint", kind, ENDPOINTS)
    return ENDPOINTS[kind]


def _identifier_column(vendor: str, rows: list[dict[str, str]], endpoint: Endpoint) -> str:
    """The one column naming the identifier type; other columns ride along unsent."""
    columns = header(rows)
    usable = [column for column in columns if column in endpoint.identifier_types]
    if len(usable) != 1:
        raise InputError(
            vendor,
            f"{endpoint.kind} enrichment takes exactly one identifier column, one of "
            f"{', '.join(endpoint.identifier_types)}; the input has "
            f"{', '.join(columns) or 'no columns'}",
        )
    return usable[0]


def _listed(value: Any) -> list[str]:
    """The non-blank entries of a list, or of a comma-separated string (Crustdata takes
    both)."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        return []
    return [str(item).strip() for item in items if str(item).strip()]


def _links(raw: Mapping[str, Any]) -> list[str]:
    urls = raw.get("download_urls") or ([raw["download_url"]] if raw.get("download_url") else [])
    return [str(url) for url in urls]


def _result(position: int, record: dict[str, Any]) -> ResultRecord:
    identifier = record.get("original_identifier")
    return ResultRecord.of(
        position=position,
        input_id=None if identifier is None else str(identifier),
        status=record.get("status"),
        data=record,
    )


def _skip_lines(lines: list[bytes], skip: int) -> tuple[list[bytes], int]:
    """The lines after the first `skip` records (blank lines hold none), and how many records
    are still to skip."""
    if not skip:
        return lines, 0
    for index, line in enumerate(lines):
        if line.strip():
            skip -= 1
            if skip == 0:
                return lines[index + 1 :], 0
    return [], skip


def _parse_lines(vendor: str, lines: list[bytes]) -> Iterator[list[dict[str, Any]]]:
    """The records on `lines`, blank lines skipped, in lists of at most `PARSE_BATCH`."""
    for at in range(0, len(lines), PARSE_BATCH):
        parsed = [_parse_line(vendor, line) for line in lines[at : at + PARSE_BATCH]]
        records = [record for record in parsed if record is not None]
        if records:
            yield records


def _parse_line(vendor: str, line: bytes) -> dict[str, Any] | None:
    """A line's record; None for a blank line. pydantic-core's parser is a few times faster
    than `json.loads`, and twice as fast again when it caches only keys (result values are
    mostly unique, so caching them costs more than it saves); the rare line it refuses goes
    to `json.loads`, which takes a little more (a byte-order mark, a lone surrogate escape),
    so no line is newly refused."""
    try:
        record = from_json(line, cache_strings="keys")
    except ValueError:
        if not line.strip():
            return None
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise VendorProtocolError(vendor, "result line is not JSON") from exc
    if not isinstance(record, dict):
        raise VendorProtocolError(vendor, "result line is not a JSON object")
    return record


def _jobs(vendor: str, data: Any) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        raise VendorProtocolError(vendor, "list body has no jobs array")
    return [job for job in data["jobs"] if isinstance(job, dict)]
