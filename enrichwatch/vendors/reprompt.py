"""Reprompt place enrichment: batches of up to 50,000 places, status with every place id
grouped by job status, results paged by offset, reprocessing, and a batch list. No webhooks."""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
from collections import deque
from collections.abc import AsyncIterator, Collection, Mapping
from typing import Any

from enrichwatch.config import RepromptSettings
from enrichwatch.errors import (
    InputError,
    VendorAmbiguousError,
    VendorNotFoundError,
    VendorProtocolError,
    VendorTransientError,
)
from enrichwatch.models import JobState, VendorName
from enrichwatch.vendors.answers import collector_paused, map_status, progress, whole
from enrichwatch.vendors.base import (
    ResultRecord,
    StatusSnapshot,
    SubmitRequest,
    SubmittedJob,
    VendorLimits,
)
from enrichwatch.vendors.http import HttpAdapter
from enrichwatch.vendors.inputs import cell, header, parts_by_count, require_filled

ROOT = "/v1/{org}/place_enrichment"
MAX_PLACES = 50_000
STATES = {
    "pending": JobState.QUEUED,
    "queued": JobState.QUEUED,
    "in_progress": JobState.RUNNING,
    "completed": JobState.COMPLETED,
    "failed": JobState.FAILED,
}
INPUT_COLUMNS = ("name", "full_address", "latitude", "longitude")
PLACE_COLUMNS = ("place_id", *INPUT_COLUMNS)
BOUNDS = {"latitude": 90.0, "longitude": 180.0}
"""Each coordinate's largest magnitude."""
DEFAULT_NAME = "enrichwatch"


class RepromptAdapter(HttpAdapter):
    name = VendorName.REPROMPT
    has_list_endpoint = True
    offers_reprocess = True
    limits = VendorLimits(
        max_batch_size=MAX_PLACES,
        requests_per_minute=None,
        recommended_poll_interval=10.0,
        extra={"input_columns": PLACE_COLUMNS},
    )
    settings: RepromptSettings
    results_page_size = 1000
    """Results asked for per request. Reprompt documents no maximum `limit` (the simulator
    takes 1..1000); a server that caps it lower answers short pages, which `results` follows
    from where each really ended."""
    results_read_ahead = 3
    """Result pages asked for at once at most."""
    list_page_size = 100
    max_list_pages = 10

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key()}"}

    def _path(self, **ids: str) -> dict[str, str]:
        return {"org": self.settings.org, **ids}

    def validate(self, request: SubmitRequest) -> None:
        """Rows have the columns `place_id,name,full_address,latitude,longitude`; options
        are the vendor's body fields (`attribute_set` or `attributes`). place_id keys the
        results and the batch's status lists, so a repeated one would make two places
        indistinguishable; a blank latitude or longitude is simply not sent."""
        super().validate(request)
        options = request.options
        if options.get("attribute_set") is not None and options.get("attributes") is not None:
            raise InputError(self.name, "give attribute_set or attributes, not both")
        columns = header(request.rows)
        missing = [column for column in PLACE_COLUMNS if column not in columns]
        if missing:
            raise InputError(
                self.name,
                f"the input lacks the columns {', '.join(missing)}; "
                f"Reprompt takes {','.join(PLACE_COLUMNS)}",
            )
        require_filled(self.name, request.rows, ["place_id"])
        first_seen: dict[str, int] = {}
        for number, row in enumerate(request.rows, 1):
            place_id = cell(row, "place_id")
            if place_id in first_seen:
                raise InputError(
                    self.name,
                    f"place_id {place_id!r} repeats row {first_seen[place_id]}",
                    row=number,
                )
            first_seen[place_id] = number
            for column, bound in BOUNDS.items():
                _coordinate(self.name, column, cell(row, column), bound, number)

    def split(self, request: SubmitRequest) -> list[SubmitRequest]:
        """Parts of at most 50,000 places, each with its own client-chosen `batch_id`:
        `options["batch_id"]` (suffixed `-1`, `-2`… when split, since a batch id that exists
        appends to that batch), else a fresh uuid decided here, so that a retried submit of
        the same part reuses it and an ambiguous failure can be settled by reading it back.
        Split parts are named "{name} (i/n)". A part splits into just itself."""
        parts = parts_by_count(request, MAX_PLACES)
        base_id = str(request.options.get("batch_id") or "")
        name = request.name or DEFAULT_NAME
        for n, part in enumerate(parts, 1):
            if not base_id:
                part.options["batch_id"] = str(uuid.uuid4())
            elif len(parts) > 1:
                part.options["batch_id"] = f"{base_id}-{n}"
            if len(parts) > 1:
                part.name = f"{name} ({n}/{len(parts)})"
        return parts

    async def submit_part(self, part: SubmitRequest) -> SubmittedJob:
        """The part carries the batch id `split` gave it, so an ambiguous failure is settled
        by reading that id back: a batch there is ours and adopted, a 404 means nothing was
        created. A stop mid-call is settled the same way (`settle_cut_off_submit`)."""
        batch_id = str(part.options["batch_id"])
        await self.created(batch_id)
        body = {
            **part.options,
            "batch_id": batch_id,
            "batch_name": part.name or DEFAULT_NAME,
            "jobs": [_place_job(row) for row in part.rows],
        }
        return await self._submit_one(batch_id, body)

    async def _submit_one(self, batch_id: str, body: dict[str, Any]) -> SubmittedJob:
        try:
            data = await self.call("POST", ROOT + "/batches", self._path(), json_body=body)
            if not isinstance(data, dict):
                raise VendorAmbiguousError(
                    self.name, "POST /batches: accepted, but the answer is not a batch"
                )
        except VendorAmbiguousError as exc:
            try:
                data = await self.read_back(exc, self._batch(batch_id))
            except VendorNotFoundError:
                raise VendorTransientError(
                    self.name, f"{exc.message} (no batch {batch_id} was created)"
                ) from exc
        return SubmittedJob(vendor_job_id=str(data.get("id") or batch_id), raw=data)

    async def settle_cut_off_submit(self, vendor_job_id: str) -> SubmittedJob | None:
        try:
            data = await self._batch(vendor_job_id)
        except VendorNotFoundError:
            return None
        return SubmittedJob(vendor_job_id=str(data.get("id") or vendor_job_id), raw=data)

    async def _batch(self, batch_id: str) -> dict[str, Any]:
        data = await self.call("GET", ROOT + "/batches/{id}", self._path(id=batch_id))
        if not isinstance(data, dict):
            raise VendorProtocolError(self.name, "batch body is not an object")
        return data

    async def status(self, vendor_job_id: str) -> StatusSnapshot:
        return self._snapshot(await self._batch(vendor_job_id), vendor_job_id)

    async def list_status(
        self, vendor_job_ids: Collection[str], also: Collection[str] = ()
    ) -> dict[str, StatusSnapshot]:
        """Pages newest first and stops as soon as every wanted batch was seen."""
        wanted, found = set(vendor_job_ids), {}
        reported = wanted | set(also)
        offset = 0
        for _ in range(self.max_list_pages):
            params = {"limit": self.list_page_size, "offset": offset}
            data = await self.call("GET", ROOT + "/batches", self._path(), params=params)
            batches = data.get("batches") if isinstance(data, dict) else None
            if not isinstance(batches, list):
                raise VendorProtocolError(self.name, "list body has no batches array")
            for batch in batches:
                if isinstance(batch, dict) and batch.get("id") in reported:
                    # One batch in words we cannot read is left to its own status call.
                    with contextlib.suppress(VendorProtocolError):
                        found[str(batch["id"])] = self._snapshot(batch, str(batch["id"]))
            offset += len(batches)
            total = data.get("total")
            if (
                wanted <= found.keys()
                or not batches
                or (isinstance(total, int) and offset >= total)
            ):
                break
        return found

    def _snapshot(self, data: Mapping[str, Any], batch_id: str) -> StatusSnapshot:
        vendor_status = str(data.get("status"))
        state = map_status(self.name, STATES, vendor_status)
        counts, total = _counts(data)
        completed, failed = counts.get("completed", 0), counts.get("failed", 0)
        done, failed_count, total = progress(
            completed + failed if counts else None, failed if counts else None, total
        )
        return StatusSnapshot(
            vendor_job_id=str(data.get("id") or batch_id),
            state=state,
            vendor_status=vendor_status,
            done=done,
            failed=failed_count,
            total=total,
            # A failed batch can still hold completed places.
            results_available=state in (JobState.COMPLETED, JobState.FAILED),
            raw=dict(data),
        )

    async def results(
        self, snapshot: StatusSnapshot, start: int = 0
    ) -> AsyncIterator[list[ResultRecord]]:
        """Pages by offset from `start`, with up to `results_read_ahead` requests in flight, so
        Reprompt prepares the next pages while the caller stores this one. Once `total` is
        known, the pages ahead are asked for at the offsets full pages would reach, and none
        past the last; a page shorter than asked (before the end) drops the guesses and goes
        on from where it really ended, so no position is skipped or repeated."""
        batch_id, size = snapshot.vendor_job_id, self.results_page_size
        ahead: deque[tuple[int, asyncio.Task[tuple[list[ResultRecord], int | None]]]] = deque()
        ahead.append((start, asyncio.create_task(self._results_page(batch_id, start))))
        try:
            while ahead:
                offset, request = ahead.popleft()
                page, total = await request
                if not page:
                    return
                end = offset + len(page)
                if len(page) != size:
                    _drop(ahead)
                # Without a total, where the pages end is unknown: one request at a time.
                depth = 1 if total is None else self.results_read_ahead
                following = ahead[-1][0] + size if ahead else end
                while len(ahead) < depth and (total is None or following < total):
                    task = asyncio.create_task(self._results_page(batch_id, following))
                    ahead.append((following, task))
                    following += size
                yield page
        finally:
            _drop(ahead)  # the caller stopped early

    async def _results_page(
        self, batch_id: str, offset: int
    ) -> tuple[list[ResultRecord], int | None]:
        """The page at `offset` as records. The body is parsed and made into records with the
        collector paused (`collector_paused`), and each record keeps only its JSON text, so
        the parsed objects are freed before the collector could walk them."""
        params: dict[str, str | int] = {
            "batchId": batch_id,
            "limit": self.results_page_size,
            "offset": offset,
        }
        route = ROOT + "/jobs"
        raw = await self.call_bytes("GET", route, self._path(), params=params)
        with collector_paused():
            return _page(self.parsed("GET", f"GET {route}", raw), offset)

    async def reprocess(self, vendor_job_id: str, options: Mapping[str, Any]) -> None:
        """Options are the vendor's: `failed_only` (its default true), `incomplete_only`,
        `refresh`, `attributes`, `attribute_set`."""
        await self.call(
            "POST",
            ROOT + "/batches/{id}/reprocess",
            self._path(id=vendor_job_id),
            json_body=dict(options),
        )


def _counts(data: Mapping[str, Any]) -> tuple[dict[str, int], int | None]:
    """Per-status place counts and the total: the metadata's counts when it has them (a
    50,000-place batch lists every id, so counting arrays is the fallback), else the
    lengths of the `jobs` arrays."""
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    counts = metadata.get("status_counts") or data.get("status_counts")
    if not isinstance(counts, dict):
        jobs = data.get("jobs")
        counts = (
            {k: len(v) for k, v in jobs.items() if isinstance(v, list)}
            if isinstance(jobs, dict)
            else {}
        )
    counts = {str(k): n for k, v in counts.items() if (n := whole(v)) is not None}
    completed = whole(metadata.get("completed_jobs"))
    if completed is not None:
        counts["completed"] = completed
    total = whole(metadata.get("total_jobs"))
    if total is None:
        total = sum(counts.values()) if counts else None
    return counts, total


def _coordinate(vendor: str, column: str, value: str, bound: float, row: int) -> None:
    if not value:
        return
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if math.isnan(number):
        raise InputError(vendor, f"{column} {value!r} is not a number", row=row)
    if not -bound <= number <= bound:
        raise InputError(vendor, f"{column} {value!r} is outside -{bound:g}..{bound:g}", row=row)


def _place_job(row: Mapping[str, str]) -> dict[str, Any]:
    """One place as Reprompt takes it, from a row `validate` accepted: blank inputs are
    left out and coordinates sent as numbers."""
    inputs: dict[str, Any] = {}
    for column in INPUT_COLUMNS:
        value = cell(row, column)
        if value:
            inputs[column] = float(value) if column in BOUNDS else value
    return {"place_id": cell(row, "place_id"), "inputs": inputs}


def _drop(requests: deque[tuple[int, asyncio.Task[Any]]]) -> None:
    """Cancel pages asked for that will not be read; a failure one already had is not news."""
    while requests:
        _, request = requests.popleft()
        if not request.cancel() and not request.cancelled():
            request.exception()


def _page(data: Any, offset: int) -> tuple[list[ResultRecord], int | None]:
    """A results body's records, from position `offset`, and the total it gives."""
    jobs = data.get("jobs") if isinstance(data, dict) else None
    if not isinstance(jobs, list):
        raise VendorProtocolError(VendorName.REPROMPT, "results body has no jobs array")
    total = data.get("total")
    page = [_result(offset + i, job) for i, job in enumerate(jobs)]
    return page, total if isinstance(total, int) else None


def _result(position: int, job: Any) -> ResultRecord:
    if not isinstance(job, dict):
        raise VendorProtocolError(VendorName.REPROMPT, "a result job is not an object")
    place_id = job.get("place_id")
    return ResultRecord.of(
        position=position,
        input_id=None if place_id is None else str(place_id),
        status=job.get("status"),
        data=job,
    )
