"""BrightLocal's legacy v4 batches: create a batch, add one job per input row, commit it, then
read status and results together from `GET /v4/batch` as jobs finish. A callback per batch
says when it ends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from enrichwatch.errors import (
    InputError,
    VendorAmbiguousError,
    VendorError,
    VendorNotFoundError,
    VendorProtocolError,
    VendorRejectedError,
    VendorTransientError,
)
from enrichwatch.models import JobState, VendorName
from enrichwatch.vendors.answers import map_status, progress, whole
from enrichwatch.vendors.base import (
    ResultRecord,
    StatusSnapshot,
    SubmitRequest,
    SubmittedJob,
    VendorLimits,
)
from enrichwatch.vendors.http import HttpAdapter
from enrichwatch.vendors.inputs import require_filled

BATCH = "/v4/batch"
DEFAULT_JOB_PATH = "/v4/ld/fetch-reviews"
REQUIRED_PARAMS: dict[str, tuple[str, ...]] = {
    "/v4/ld/fetch-reviews": ("profile-url", "country"),
    "/v4/ld/fetch-reviews-by-business-data": (
        "business-names",
        "city",
        "postcode",
        "local-directory",
        "country",
    ),
    "/v4/seo/offsite": ("website-url",),
}
"""The add-job parameters BrightLocal's v4 docs mark Required, besides api-key and batch-id."""
STATES = {
    # Created means our commit has not happened yet: the adapter owns that step.
    "Created": JobState.SUBMITTED,
    "Committed": JobState.QUEUED,
    "Running": JobState.RUNNING,
    "Finished": JobState.COMPLETED,
    "Stopped": JobState.FAILED,
}


class BrightLocalAdapter(HttpAdapter):
    name = VendorName.BRIGHTLOCAL
    supports_webhooks = True
    limits = VendorLimits(
        max_batch_size=None,
        requests_per_minute=None,
        recommended_poll_interval=5.0,
        extra={"recommended_jobs_per_batch": 300},
    )
    records_per_page = 500

    @classmethod
    def job_id_problem(cls, vendor_job_id: str) -> str | None:
        if not vendor_job_id.isascii() or not vendor_job_id.isdigit():
            return "must be a BrightLocal batch id, a whole number"
        return None

    def auth_params(self) -> dict[str, str]:
        return {"api-key": self.api_key()}

    def validate(self, request: SubmitRequest) -> None:
        """Each row is one job: its columns are the job's form parameters, posted to
        `options["job_path"]` (default fetch-reviews), with the other options sent for every
        row (a row's own value wins). One job the vendor refuses stops the whole batch, so
        the parameters BrightLocal documents as required for that path must be filled in
        every row; a /v4/ path not listed in `REQUIRED_PARAMS` is left to the vendor."""
        super().validate(request)
        job_path = _job_path(request.options)
        if not job_path.startswith("/v4/"):
            raise InputError(self.name, f"job_path must be a /v4/ add-job path; got {job_path!r}")
        options = _job_options(request.options)
        require_filled(self.name, request.rows, REQUIRED_PARAMS.get(job_path, ()), options)

    async def submit_part(self, part: SubmitRequest) -> SubmittedJob:
        """Create → add jobs → commit. A failure before the commit deletes the batch (best
        effort) — an uncommitted batch never runs nor bills, so a retry from scratch is
        safe. An ambiguous commit is settled by reading the batch back, and committing again
        only if it is still Created."""
        job_path = _job_path(part.options)
        options = _job_options(part.options)
        create = {"stop-on-job-error": _flag(options.pop("stop-on-job-error", False))}
        if part.callback_url:
            create |= {"callback": part.callback_url, "callback_request_format": "json"}
        try:
            created = await self.call("POST", BATCH, form=create)
        except VendorAmbiguousError as exc:
            raise VendorTransientError(
                self.name, f"{exc.message} (an uncommitted batch never runs)"
            ) from exc
        batch_id = _batch_id(self.name, created)
        await self.created(batch_id)
        job_ids: list[int] = []
        try:
            for row in part.rows:
                added = await self.call(
                    "POST", job_path, form={"batch-id": batch_id, **options, **row}
                )
                job_ids.append(_job_order(added.get("job-id") if isinstance(added, dict) else None))
            await self.commit(batch_id)
        except VendorError as exc:
            try:
                await self.delete(batch_id)
            except VendorError:
                raise exc from None  # a commit that may have gone through stays unsettled
            if isinstance(exc, VendorAmbiguousError):
                raise VendorTransientError(self.name, f"{exc.message} (batch deleted)") from exc
            raise
        return SubmittedJob(vendor_job_id=batch_id, raw={"batch-id": batch_id, "job-ids": job_ids})

    async def settle_cut_off_submit(self, vendor_job_id: str) -> SubmittedJob | None:
        """The commit comes after the last job is added, so a committed batch holds every
        row and is tracked; one never committed would sit at the vendor for good, so it is
        deleted (it never ran nor billed)."""
        try:
            snapshot = await self.status(vendor_job_id)
            if snapshot.state is not JobState.SUBMITTED:
                return SubmittedJob(
                    vendor_job_id=vendor_job_id,
                    raw={"batch-id": vendor_job_id, "status": snapshot.vendor_status},
                )
            await self.delete(vendor_job_id)
        except VendorNotFoundError:
            pass  # already deleted: by the submission's own clean-up, or an earlier settling
        return None

    async def commit(self, vendor_job_id: str) -> None:
        """Idempotent: a batch already committed counts as committed."""
        try:
            await self._commit_once(vendor_job_id)
        except VendorAmbiguousError as exc:
            snapshot = await self.read_back(exc, self.status(vendor_job_id))
            if snapshot.state is JobState.SUBMITTED:
                await self._commit_once(vendor_job_id)

    async def _commit_once(self, vendor_job_id: str) -> None:
        try:
            await self.call("PUT", BATCH, form={"batch-id": vendor_job_id})
        except VendorRejectedError as exc:
            if "BATCH_ALREADY_COMMITTED" not in exc.message:
                raise

    async def status(self, vendor_job_id: str) -> StatusSnapshot:
        data = await self.call("GET", BATCH, params={"batch-id": vendor_job_id})
        if not isinstance(data, dict):
            raise VendorProtocolError(self.name, "batch body is not an object")
        vendor_status = str(data.get("status"))
        state = map_status(self.name, STATES, vendor_status)
        statuses = data.get("statuses") if isinstance(data.get("statuses"), dict) else {}
        assert isinstance(statuses, dict)
        counts = {str(k): n for k, v in statuses.items() if (n := whole(v)) is not None}
        entries = _entries(data)
        failures = [e for _, e in entries if e.get("status") == "Failed"]
        done, failed, total = progress(
            counts.get("Completed", 0) + counts.get("Failed", 0) if counts else None,
            counts.get("Failed", 0) if counts else None,
            sum(counts.values()) if counts else None,
        )
        return StatusSnapshot(
            vendor_job_id=vendor_job_id,
            state=state,
            vendor_status=vendor_status,
            done=done,
            failed=failed,
            total=total,
            error=_error(failures, vendor_status),
            # Results grow as jobs finish, and a stopped batch keeps what it had.
            results_available=state is JobState.COMPLETED or bool(entries),
            raw=data,
        )

    async def results(
        self, snapshot: StatusSnapshot, start: int = 0
    ) -> AsyncIterator[list[ResultRecord]]:
        """The results already sit in the status body, so a snapshot that carries them costs
        no call.

        Jobs finish in no fixed order while the batch runs, and their results are fetched
        as they come, so a job's rank among the finished ones is no place to keep it: each
        record's position is its BrightLocal job id. `start` is ignored: every fetch reads
        the whole body in hand, and the store skips the positions it already holds."""
        raw = (
            snapshot.raw
            if "results" in snapshot.raw
            else (await self.status(snapshot.vendor_job_id)).raw
        )
        records = [
            ResultRecord.of(
                position=_job_id(self.name, entry),
                input_id=str(entry.get("job-id")),
                status=entry.get("status"),
                data={"job_type": job_type, **entry},
            )
            for job_type, entry in _entries(raw)
        ]
        for i in range(0, len(records), self.records_per_page):
            yield records[i : i + self.records_per_page]

    async def stop(self, vendor_job_id: str) -> None:
        """Cancels the batch's unprocessed jobs; finished ones keep their results."""
        await self.call("PUT", BATCH + "/stop", form={"batch-id": vendor_job_id})

    async def delete(self, vendor_job_id: str) -> None:
        """Deletes the batch and every result it holds."""
        await self.call("DELETE", BATCH, params={"batch-id": vendor_job_id})


def _batch_id(vendor: str, data: Any) -> str:
    """The docs show `"batch-id": "17"` and the vendor's own client insists on an int."""
    value = data.get("batch-id") if isinstance(data, dict) else None
    if isinstance(value, bool) or not str(value).strip().isdigit():
        raise VendorProtocolError(vendor, f"create answered no usable batch-id: {value!r}")
    return str(int(str(value).strip()))


def _entries(data: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    results = data.get("results")
    if not isinstance(results, dict):
        return []
    entries = [
        (str(job_type), entry)
        for job_type, items in results.items()
        if isinstance(items, list)
        for entry in items
        if isinstance(entry, dict)
    ]
    return sorted(entries, key=lambda item: (_job_order(item[1].get("job-id")), item[0]))


def _job_order(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _job_id(vendor: str, entry: Mapping[str, Any]) -> int:
    """The result's job id, where it is kept; one without is refused rather than guessed at,
    since a guessed place could take another job's."""
    value = entry.get("job-id")
    if isinstance(value, bool) or not str(value).strip().isdigit():
        raise VendorProtocolError(vendor, f"a batch result has no usable job-id: {value!r}")
    return int(str(value).strip())


def _error(failures: list[dict[str, Any]], vendor_status: str) -> str | None:
    if not failures:
        return "stopped" if vendor_status == "Stopped" else None
    first = failures[0].get("error") or failures[0].get("errors") or "job failed"
    return f"{len(failures)} job(s) failed; first: {first}"


def _job_path(options: Mapping[str, Any]) -> str:
    return str(options.get("job_path", DEFAULT_JOB_PATH))


def _job_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options that are job parameters: all but the one naming the add-job path."""
    return {key: value for key, value in options.items() if key != "job_path"}


def _flag(value: Any) -> str:
    return "1" if value in (True, 1, "1", "true") else "0"
