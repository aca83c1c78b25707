"""eCore account and contact enrichment: submit records, status per job or for all jobs,
paged JSON results (also while paused), and pause/resume through the control endpoint.
No webhooks; credits are charged up front, so a 402 says what was needed."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterator, Collection, Mapping
from typing import Any

from enrichwatch.config import ECoreSettings
from enrichwatch.errors import (
    InputError,
    VendorAmbiguousError,
    VendorError,
    VendorProtocolError,
    VendorTransientError,
)
from enrichwatch.models import JobState, VendorName
from enrichwatch.vendors.answers import map_status, parse_timestamp, text
from enrichwatch.vendors.base import (
    ResultRecord,
    StatusSnapshot,
    SubmitRequest,
    SubmittedJob,
    VendorLimits,
)
from enrichwatch.vendors.http import HttpAdapter
from enrichwatch.vendors.inputs import cell, require_choice

ROOT = "/api/v1/enrichment"
CONTROL = "/api/v1/enrichment-control/"
MAX_PAGE_SIZE = 200
CATEGORIES = ("contact", "account")
STATES = {
    "queued": JobState.QUEUED,
    "in-progress": JobState.RUNNING,
    "paused": JobState.NEEDS_ACTION,
    "completed": JobState.COMPLETED,
    "failed": JobState.FAILED,
}


class ECoreAdapter(HttpAdapter):
    name = VendorName.ECORE
    has_list_endpoint = True
    limits = VendorLimits(
        max_batch_size=None,
        # Live tokens have no request rate limit; test tokens have a daily quota (429).
        requests_per_minute=None,
        recommended_poll_interval=15.0,
        extra={"max_results_page_size": MAX_PAGE_SIZE},
    )
    settings: ECoreSettings
    results_page_size = MAX_PAGE_SIZE
    max_list_pages = 10
    match_window = 300.0
    """Seconds either side of an ambiguous submit within which a listed job may be ours."""
    input_id_columns = (
        "imported_id",
        "imported_contact_email",
        "imported_email",
        "imported_linkedin_url",
        "imported_company_domain",
        "imported_domain",
        "imported_company_name",
    )
    """Echoed input columns that name a record, most specific first."""

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"{self.settings.auth_scheme} {self.api_key()}"}

    def validate(self, request: SubmitRequest) -> None:
        """Rows go as `records`; `options["category"]` is `contact` (default) or `account`,
        other options (`criteria`) go into the body as given. eCore prices and charges the
        whole job at submit, so a row with nothing to match on is refused here rather than
        paid for."""
        super().validate(request)
        require_choice(self.name, "category", _category(request.options), CATEGORIES)
        for number, row in enumerate(request.rows, 1):
            if not any(cell(row, column) for column in row):
                raise InputError(self.name, "every value is empty", row=number)

    async def submit_part(self, part: SubmitRequest) -> SubmittedJob:
        """eCore has no documented cap, so the input is one part. On an ambiguous failure the
        job list is read: a job submitted within `match_window` seconds of the attempt may
        be ours, the list saying nothing else about a job (see `adopt` for what follows)."""
        body = {**part.options, "category": _category(part.options), "records": part.rows}
        sent_at = time.time()
        try:
            data = await self.call("POST", ROOT + "/submit/", json_body=body)
            if not isinstance(data, dict) or not data.get("job_id"):
                raise VendorAmbiguousError(
                    self.name, "POST /submit/: accepted, but the answer names no job_id"
                )
        except VendorAmbiguousError as exc:
            listed = await self.read_back(exc, self._listed(sent_at, time.time()))
            data = self.adopt(listed, "job_id", exc)
        if not isinstance(data, dict) or "job_id" not in data:
            raise VendorProtocolError(self.name, "submit answer has no job_id")
        return SubmittedJob(vendor_job_id=str(data["job_id"]), raw=data)

    async def listed_since(self, since: float, rows: int) -> list[str]:
        """eCore's list gives no count of the rows sent, only when each job was."""
        return [str(job["job_id"]) for job in await self._listed(since, None)]

    async def _listed(self, earliest: float, latest: float | None) -> list[dict[str, Any]]:
        """The first page's jobs submitted between the two times (`match_window` either side
        for the clocks' skew; None: no upper bound), newest first."""
        low = earliest - self.match_window
        high = math.inf if latest is None else latest + self.match_window
        return [
            job
            for job in await self._jobs(page_limit=1)
            if low <= parse_timestamp(job.get("submitted_at")) <= high
        ]

    async def status(self, vendor_job_id: str) -> StatusSnapshot:
        data = await self.call("GET", ROOT + "/status/{id}/", {"id": vendor_job_id})
        return self._snapshot(data)

    async def list_status(
        self, vendor_job_ids: Collection[str], also: Collection[str] = ()
    ) -> dict[str, StatusSnapshot]:
        wanted = set(vendor_job_ids)
        reported = wanted | set(also)
        jobs = await self._jobs(page_limit=self.max_list_pages, wanted=wanted)
        found = {}
        for job in jobs:
            if str(job["job_id"]) in reported:
                # One job in words we cannot read is left to its own status call.
                with contextlib.suppress(VendorProtocolError):
                    found[str(job["job_id"])] = self._snapshot(job)
        return found

    async def _jobs(
        self, *, page_limit: int, wanted: set[str] | None = None
    ) -> list[dict[str, Any]]:
        """The job list, newest first. It is documented as unpaginated; should it come as a
        paginated envelope (`results`, `next`), pages are read only until every wanted job
        was seen."""
        jobs: list[dict[str, Any]] = []
        for page in range(1, page_limit + 1):
            params = {"page": page} if page > 1 else None
            data = await self.call("GET", ROOT + "/status/", params=params)
            items = data.get("results") if isinstance(data, dict) else data
            if not isinstance(items, list):
                raise VendorProtocolError(self.name, "job list is not an array")
            jobs += [job for job in items if isinstance(job, dict) and "job_id" in job]
            seen = {str(job["job_id"]) for job in jobs}
            if not isinstance(data, dict) or not data.get("next") or (wanted or set()) <= seen:
                break
        return jobs

    def _snapshot(self, data: Any) -> StatusSnapshot:
        if not isinstance(data, dict) or "job_id" not in data:
            raise VendorProtocolError(self.name, "status body has no job_id")
        vendor_status = str(data.get("status"))
        state = map_status(self.name, STATES, vendor_status)
        return StatusSnapshot(
            vendor_job_id=str(data["job_id"]),
            state=state,
            vendor_status=vendor_status,
            error=text(data.get("error") or data.get("message"))
            if state is JobState.FAILED
            else None,
            # Paused jobs serve the rows processed so far.
            results_available=state in (JobState.COMPLETED, JobState.NEEDS_ACTION),
            raw=data,
        )

    async def results(
        self, snapshot: StatusSnapshot, start: int = 0
    ) -> AsyncIterator[list[ResultRecord]]:
        size = self.results_page_size
        page = start // size + 1
        while True:
            params = {"page": page, "page_size": size}
            data = await self.call(
                "GET",
                ROOT + "/result/{id}/",
                {"id": snapshot.vendor_job_id},
                params=params,
                classify=_not_stored_yet if snapshot.results_available else None,
            )
            rows = data.get("data") if isinstance(data, dict) else None
            if not isinstance(rows, list):
                raise VendorProtocolError(self.name, "results body has no data array")
            first = (page - 1) * size
            records = [
                self._record(first + i, row) for i, row in enumerate(rows) if first + i >= start
            ]
            if records:
                yield records
            total = data.get("total_records")
            if not rows or (isinstance(total, int) and page * size >= total):
                return
            page += 1

    def _record(self, position: int, row: Any) -> ResultRecord:
        if not isinstance(row, dict):
            raise VendorProtocolError(self.name, "a result row is not an object")
        input_id = next((row[c] for c in self.input_id_columns if row.get(c)), None)
        return ResultRecord.of(
            position=position,
            input_id=None if input_id is None else str(input_id),
            status=row.get("enrichment_status"),
            data=row,
        )

    async def pause(self, vendor_job_id: str) -> None:
        await self._control(vendor_job_id, "pause")

    async def resume(self, vendor_job_id: str) -> None:
        """eCore prices the remaining rows on resume, so this can raise a payment error."""
        await self._control(vendor_job_id, "resume")

    async def _control(self, vendor_job_id: str, action: str) -> None:
        await self.call("POST", CONTROL, json_body={"csv_file_id": vendor_job_id, "action": action})


def _not_stored_yet(status: int, headers: Any, body: Any, message: str) -> VendorError | None:
    """For a job whose status said completed or paused, eCore still answers 404 while "no
    results are stored yet", and 400 "Results not ready." when a resume slipped in between:
    both are a wait, not a refusal."""
    if status in (400, 404):
        return VendorTransientError(VendorName.ECORE, message, status=status)
    return None


def _category(options: Mapping[str, Any]) -> Any:
    return options.get("category", CATEGORIES[0])
