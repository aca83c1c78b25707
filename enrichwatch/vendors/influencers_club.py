"""influencers.club batch enrichment: a one-column CSV upload, a status with row counts, one
JSON array of results, and resume after a pause for credits. It has no webhooks and no job
list, so it is polled job by job."""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import AsyncIterator, Iterable
from contextlib import aclosing
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp

from enrichwatch.errors import InputError, VendorError, VendorProtocolError, VendorTransientError
from enrichwatch.models import JobState, VendorName
from enrichwatch.vendors.answers import map_status, progress, text
from enrichwatch.vendors.base import (
    ResultRecord,
    StatusSnapshot,
    SubmitRequest,
    SubmittedJob,
    VendorLimits,
)
from enrichwatch.vendors.http import HttpAdapter
from enrichwatch.vendors.inputs import cell, header, parts_of, require_choice, require_filled

BATCH = "/public/v1/enrichment/batch/"
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MODES = ("raw", "full", "basic", "advanced")
"""Handles take raw or full; emails take basic or advanced."""
PLATFORMS = ("instagram", "youtube", "tiktok", "twitter", "twitch", "onlyfans")
UPLOAD_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10)
STATES = {
    "validating": JobState.QUEUED,
    "queued": JobState.QUEUED,
    "processing": JobState.RUNNING,
    "paused_insufficient_credits": JobState.NEEDS_ACTION,
    "finished": JobState.COMPLETED,
    "failed": JobState.FAILED,
    # The status endpoint's own summary names its states "queued/running/completed/failed".
    "running": JobState.RUNNING,
    "completed": JobState.COMPLETED,
}
_JSON_SPACE = " \t\r\n"


class InfluencersClubAdapter(HttpAdapter):
    name = VendorName.INFLUENCERS_CLUB
    # "Resume a paused or interrupted batch … If a batch was paused or failed mid-run".
    resumes_failed_runs = True
    limits = VendorLimits(
        max_batch_size=None,
        requests_per_minute=300,
        recommended_poll_interval=30.0,
        extra={"max_upload_bytes": MAX_UPLOAD_BYTES},
    )
    records_per_page = 500
    upload_timeout = UPLOAD_TIMEOUT

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key()}", "Accept": "application/json"}

    def validate(self, request: SubmitRequest) -> None:
        """Rows have one column (`handle` or `email`); options are the vendor's form fields.
        There is no job list to settle an ambiguous upload against, so what the docs say the
        vendor refuses is better found here than after a part was already sent."""
        super().validate(request)
        mode = request.options.get("enrichment_mode")
        if mode is None:
            raise InputError(
                self.name, f"options must name an enrichment_mode: one of {', '.join(MODES)}"
            )
        require_choice(self.name, "enrichment_mode", mode, MODES)
        if request.options.get("platform") is not None:
            require_choice(self.name, "platform", request.options["platform"], PLATFORMS)
        column = _single_column(self.name, request.rows)
        require_filled(self.name, request.rows, [column])
        room = MAX_UPLOAD_BYTES - len(_csv(column, []))
        for number, row in enumerate(request.rows, 1):
            if _line_bytes(cell(row, column)) > room:
                raise InputError(
                    self.name,
                    f"the value alone exceeds the {MAX_UPLOAD_BYTES // (1024 * 1024)} MB "
                    "upload limit",
                    row=number,
                )

    def split(self, request: SubmitRequest) -> list[SubmitRequest]:
        """Rows grouped so each part's CSV, header included, stays within the 10 MB upload
        cap; the vendor gives no row cap."""
        column = _single_column(self.name, request.rows)
        header_bytes = len(_csv(column, []))
        groups: list[list[dict[str, str]]] = []
        current: list[dict[str, str]] = []
        size = header_bytes
        for row in request.rows:
            line = _line_bytes(cell(row, column))
            if current and size + line > MAX_UPLOAD_BYTES:
                groups.append(current)
                current, size = [], header_bytes
            current.append(row)
            size += line
        if current:
            groups.append(current)
        return parts_of(request, groups)

    async def submit_part(self, part: SubmitRequest) -> SubmittedJob:
        """`include_lookalikes` is sent as false unless given, because the vendor's docs
        disagree on its default and it changes what is billed. There is no job list to
        consult, so an ambiguous failure is raised as it is."""
        column = _single_column(self.name, part.rows)
        values = [cell(row, column) for row in part.rows]
        form = aiohttp.FormData()
        form.add_field(
            "file", io.BytesIO(_csv(column, values)), filename="batch.csv", content_type="text/csv"
        )
        for key, value in {"include_lookalikes": False, **part.options}.items():
            if value is not None:
                form.add_field(key, _form_value(value))
        data = await self.call("POST", BATCH, form=form, client_timeout=self.upload_timeout)
        if not isinstance(data, dict) or "batch_id" not in data:
            raise VendorProtocolError(self.name, "create answer has no batch_id")
        return SubmittedJob(vendor_job_id=str(data["batch_id"]), raw=data)

    async def status(self, vendor_job_id: str) -> StatusSnapshot:
        data = await self.call("GET", BATCH + "{id}/status/", {"id": vendor_job_id})
        if not isinstance(data, dict):
            raise VendorProtocolError(self.name, "status body is not an object")
        vendor_status = str(data.get("status"))
        state = map_status(self.name, STATES, vendor_status)
        done, failed, total = progress(
            data.get("processed_rows"), data.get("failed_count"), data.get("total_rows")
        )
        return StatusSnapshot(
            vendor_job_id=str(data.get("batch_id") or vendor_job_id),
            state=state,
            vendor_status=vendor_status,
            done=done,
            failed=failed,
            total=total,
            error=text(data.get("status_message")),
            credits_used=_decimal(data.get("credits_used")),
            results_available=state is JobState.COMPLETED,
            raw=data,
        )

    async def results(
        self, snapshot: StatusSnapshot, start: int = 0
    ) -> AsyncIterator[list[ResultRecord]]:
        """The vendor sends the whole result set as one JSON array (CSV is the documented
        default but answers 404 in practice), parsed element by element as it arrives."""
        body = self.stream(
            "GET",
            BATCH + "{id}/",
            {"id": snapshot.vendor_job_id},
            params={"format": "json"},
            classify=_file_not_ready if snapshot.state is JobState.COMPLETED else None,
        )
        items, page, position = JsonArrayItems(self.name), [], 0
        async with aclosing(body) as chunks:
            async for chunk in chunks:
                for item in items.feed(chunk):
                    if position >= start:
                        page.append(_record(self.name, position, item))
                    position += 1
                while len(page) >= self.records_per_page:
                    yield page[: self.records_per_page]
                    page = page[self.records_per_page :]
        for item in items.close():
            if position >= start:
                page.append(_record(self.name, position, item))
            position += 1
        for i in range(0, len(page), self.records_per_page):
            yield page[i : i + self.records_per_page]

    async def resume(self, vendor_job_id: str) -> None:
        await self.call("POST", BATCH + "{id}/resume/", {"id": vendor_job_id}, json_body={})


class JsonArrayItems:
    """The elements of one top-level JSON array, decoded as its bytes arrive, so a large
    array never has to be held whole. A body that stops before `]` is a transient error."""

    def __init__(self, vendor: str) -> None:
        self._vendor = vendor
        self._text = codecs.getincrementaldecoder("utf-8")()
        self._decoder = json.JSONDecoder()
        self._buffer = ""
        self._started = self._ended = self._after_item = False
        self._wait_for = 0

    def feed(self, data: bytes, *, final: bool = False) -> list[Any]:
        self._buffer += self._text.decode(data, final)
        items: list[Any] = []
        buffer, pos = self._buffer, 0
        while True:
            while pos < len(buffer) and buffer[pos] in _JSON_SPACE:
                pos += 1
            if pos >= len(buffer):
                break
            char = buffer[pos]
            if self._ended:
                raise VendorProtocolError(self._vendor, "data after the results array")
            if not self._started:
                if char != "[":
                    raise VendorProtocolError(self._vendor, "results are not a JSON array")
                self._started, pos = True, pos + 1
            elif char == "]":
                self._ended, pos = True, pos + 1
            elif self._after_item:
                if char != ",":
                    raise VendorProtocolError(self._vendor, "malformed results array")
                self._after_item, pos = False, pos + 1
            elif not final and len(buffer) - pos < self._wait_for:
                break
            else:
                try:
                    item, end = self._decoder.raw_decode(buffer, pos)
                except json.JSONDecodeError as exc:
                    if final and not buffer.rstrip().endswith("]"):
                        raise self._truncated() from exc
                    if final:
                        raise VendorProtocolError(self._vendor, "malformed results array") from exc
                    # An element cut by the chunk boundary: retry once the buffer has doubled,
                    # so one huge element is not re-parsed for every small chunk.
                    self._wait_for = 2 * (len(buffer) - pos)
                    break
                if end == len(buffer) and not final:
                    self._wait_for = len(buffer) - pos + 1
                    break
                items.append(item)
                pos, self._after_item, self._wait_for = end, True, 0
        self._buffer = buffer[pos:]
        return items

    def close(self) -> list[Any]:
        items = self.feed(b"", final=True)
        if not self._ended:
            raise self._truncated()
        return items

    def _truncated(self) -> VendorTransientError:
        return VendorTransientError(self._vendor, "results array ended early (truncated)")


def _single_column(vendor: str, rows: list[dict[str, str]]) -> str:
    columns = header(rows)
    if len(columns) != 1:
        raise InputError(
            vendor,
            "the upload takes exactly one column (handle or email); the input has "
            f"{', '.join(columns) or 'no columns'}",
        )
    return columns[0]


def _line_bytes(value: str) -> int:
    """Bytes one value adds to the uploaded CSV, quoting and line end included."""
    return len(_csv_rows([value]))


def _csv(column: str, values: list[str]) -> bytes:
    return _csv_rows([column, *values])


def _csv_rows(values: Iterable[str]) -> bytes:
    """One-column CSV lines, written the one way both the upload and its size use."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([value] for value in values)
    return out.getvalue().encode()


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _record(vendor: str, position: int, item: Any) -> ResultRecord:
    if not isinstance(item, dict):
        raise VendorProtocolError(vendor, "a result element is not an object")
    value = item.get("input_value")
    return ResultRecord.of(
        position=position,
        input_id=None if value is None else str(value),
        status=item.get("status"),
        data=item.get("enrichment_data"),
    )


def _file_not_ready(status: int, headers: Any, body: Any, message: str) -> VendorError | None:
    """For a batch whose status said `finished`, the vendor still answers 400 until the
    results file "has been generated": a wait, not a refusal."""
    if status == 400:
        return VendorTransientError(VendorName.INFLUENCERS_CLUB, message, status=status)
    return None


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None
