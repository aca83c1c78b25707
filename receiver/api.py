"""The JSON API under /api/: submit or track jobs and read what happened to them."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from enrichwatch import actions, export
from enrichwatch.actions import ActionError, ReprocessOptions
from enrichwatch.errors import (
    ActionNotSupportedError,
    AlreadyTrackedError,
    InputError,
    VendorError,
    VendorNotFoundError,
    VendorRejectedError,
)
from enrichwatch.inputs import MAX_JOB_NAME, check_vendor_job_id, job_name_problem
from enrichwatch.models import ENDED_STATES, EventSource, JobState, VendorName
from enrichwatch.serialize import event_json, job_json, results_state
from enrichwatch.store import JobRecord
from enrichwatch.store.rows import MAX_ROW_ID
from enrichwatch.submission import SubmissionError, submit_batch
from enrichwatch.vendors.base import SubmitRequest
from receiver.errors import ApiError, invalid
from receiver.ids import parse_id
from receiver.keys import PUBLIC_URL, SERVICES
from receiver.notifications import NotifyBody, targets_of

QueryT = TypeVar("QueryT", bound=BaseModel)


class SubmitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: list[dict[str, str]] = Field(min_length=1)
    options: dict[str, Any] = {}


class CreateJob(BaseModel):
    """Either `vendor_job_id` (track a job submitted elsewhere) or `submit` (send a batch)."""

    model_config = ConfigDict(extra="forbid")

    vendor: VendorName
    vendor_job_id: str | None = None
    name: str | None = Field(default=None, max_length=MAX_JOB_NAME)
    submit: SubmitBody | None = None
    notify: NotifyBody | None = None

    @field_validator("name")
    @classmethod
    def _a_name_listings_can_show(cls, value: str | None) -> str | None:
        if value is not None and (problem := job_name_problem(value)) is not None:
            raise PydanticCustomError("job_name", problem)
        return value

    @field_validator("vendor_job_id")
    @classmethod
    def _an_id_a_vendor_could_issue(cls, value: str | None, info: ValidationInfo) -> str | None:
        vendor = info.data.get("vendor")
        if value is None or vendor is None:  # no vendor: that field's error says so
            return value
        return check_vendor_job_id(value, vendor)

    @model_validator(mode="after")
    def _one_of(self) -> CreateJob:
        if (self.vendor_job_id is None) == (self.submit is None):
            raise PydanticCustomError(
                "one_of", "give exactly one of vendor_job_id (to track) or submit (to send)"
            )
        return self


class JobQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vendor: VendorName | None = None
    state: JobState | None = None
    limit: int = Field(default=50, ge=1, le=200)
    cursor: int | None = Field(default=None, ge=1, le=MAX_ROW_ID)


class EventQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after: int = Field(default=0, ge=0, le=MAX_ROW_ID)
    limit: int = Field(default=500, ge=1, le=1000)


async def create_job(request: web.Request) -> web.Response:
    services = request.config_dict[SERVICES]
    public_url = request.config_dict[PUBLIC_URL]
    raw = await _json_body(request)
    try:
        body = CreateJob.model_validate(raw)
    except ValidationError as exc:
        raise invalid(exc) from None
    notify = targets_of(body.notify, services.settings)
    if body.submit is None:
        assert body.vendor_job_id is not None
        try:
            job, created = await services.store.track_job(
                body.vendor, body.vendor_job_id, body.name, source=EventSource.API, notify=notify
            )
        except AlreadyTrackedError as exc:
            tracked = job_json(await services.store.get_job(exc.job_id), public_url)
            raise ApiError(409, "already_tracked", str(exc), job=tracked) from None
        return web.json_response(job_json(job, public_url), status=201 if created else 200)

    submit = SubmitRequest(rows=body.submit.rows, name=body.name, options=body.submit.options)
    try:
        outcome = await submit_batch(
            services, body.vendor, submit, public_url=public_url, notify=notify
        )
    except InputError as exc:
        raise ApiError(422, "invalid_input", str(exc), row=exc.row) from None
    except SubmissionError as exc:
        status, code = (422, "vendor_rejected") if exc.rejected else (502, "vendor_error")
        raise ApiError(
            status,
            code,
            str(exc),
            jobs=[job_json(job, public_url) for job in exc.jobs],
            failed_job=job_json(exc.failed, public_url),
        ) from None
    return web.json_response(
        {"jobs": [job_json(job, public_url) for job in outcome.jobs]}, status=201
    )


async def list_jobs(request: web.Request) -> web.Response:
    services = request.config_dict[SERVICES]
    query = _query(JobQuery, request)
    jobs = await services.store.list_jobs(
        vendor=query.vendor, state=query.state, limit=query.limit, before_id=query.cursor
    )
    next_cursor = jobs[-1].id if len(jobs) == query.limit else None
    return web.json_response(
        {
            "jobs": [job_json(job, request.config_dict[PUBLIC_URL]) for job in jobs],
            "next_cursor": next_cursor,
        }
    )


async def get_job(request: web.Request) -> web.Response:
    """The job, with where it notifies: its own targets, or null for the configured ones."""
    services = request.config_dict[SERVICES]
    job = await services.store.get_job(_job_id(request))
    targets = await services.store.job_targets(job.id)
    body = job_json(job, request.config_dict[PUBLIC_URL])
    body["notify"] = None if targets.is_empty() else targets.shown()
    return web.json_response(body)


async def list_events(request: web.Request) -> web.Response:
    services = request.config_dict[SERVICES]
    query = _query(EventQuery, request)
    events = await services.store.list_events(
        _job_id(request), after_seq=query.after, limit=query.limit
    )
    return web.json_response(
        {
            "events": [event_json(event) for event in events],
            "next_after": events[-1].seq if events else query.after,
        }
    )


async def _json_body(request: web.Request) -> Any:
    """The body as JSON. Whatever keeps it from being read as such (bad JSON or UTF-8, an
    unknown charset, nesting too deep or a number too long to parse, a body that does not
    match its Content-Encoding) is a 400 saying so; one over the size limit a 413 naming it."""
    try:
        return json.loads(await request.text())
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(
            413, "payload_too_large", f"request body exceeds {request.client_max_size} bytes"
        ) from None
    except web.RequestPayloadError as exc:
        raise ApiError(400, "invalid_body", f"could not read the request body: {exc}") from None
    except (ValueError, LookupError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", f"request body is not JSON: {exc}") from None


def _query(model: type[QueryT], request: web.Request) -> QueryT:
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise invalid(exc, status=400) from None


def _job_id(request: web.Request) -> int:
    raw = request.match_info["job_id"]
    job_id = parse_id(raw)
    if job_id is None:
        raise ApiError(404, "not_found", f"no job with id {raw!r}")
    return job_id


class ResultsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["jsonl", "csv"] = "jsonl"


async def job_results(request: web.Request) -> web.StreamResponse:
    """The job's stored results, streamed page by page."""
    services = request.config_dict[SERVICES]
    query = _query(ResultsQuery, request)
    job = await services.store.get_job(_job_id(request))
    content_type = "application/x-ndjson" if query.format == "jsonl" else "text/csv"
    headers = {
        "Content-Type": f"{content_type}; charset=utf-8",
        "Content-Disposition": f'attachment; filename="job-{job.id}.{query.format}"',
        "X-Results-State": results_state(job) or "none",
    }
    if request.method == "HEAD":
        # A streamed body would be written whatever the method, ahead of the next answer
        # on the connection.
        return web.Response(headers=headers)
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    chunks = export.jsonl if query.format == "jsonl" else export.csv_rows
    try:
        async for chunk in chunks(services.store, job.id):
            await response.write(chunk)
    except Exception:
        # The status went out with the headers: a body cut off before its last chunk is the
        # one way left to say the export failed (an error page now would land mid-stream).
        if request.transport is not None:
            request.transport.close()
        raise
    await response.write_eof()
    return response


async def resume_job(request: web.Request) -> web.Response:
    services = request.config_dict[SERVICES]
    job = await _acting(actions.resume(services, _job_id(request)))
    services.due_now.set()
    return web.json_response(job_json(job, request.config_dict[PUBLIC_URL]), status=202)


async def reprocess_job(request: web.Request) -> web.Response:
    services = request.config_dict[SERVICES]
    options: dict[str, Any] = {}
    if request.can_read_body:
        raw = await _json_body(request)
        try:
            options = ReprocessOptions.model_validate(raw).model_dump(exclude_none=True)
        except ValidationError as exc:
            raise invalid(exc) from None
    job = await _acting(actions.reprocess(services, _job_id(request), options))
    services.due_now.set()
    return web.json_response(job_json(job, request.config_dict[PUBLIC_URL]), status=202)


async def fetch_results_again(request: web.Request) -> web.Response:
    services = request.config_dict[SERVICES]
    job = await _acting(actions.fetch_again(services, _job_id(request)))
    services.due_now.set()
    return web.json_response(job_json(job, request.config_dict[PUBLIC_URL]), status=202)


async def check_job(request: web.Request) -> web.Response:
    """Make the job due now; the reconciler checks it at once. An expired job runs once
    more to be asked about again. One that completed or failed is never checked again, and
    one not sent yet has nothing to ask: either is answered as it is, with nothing recorded
    (as `enrichwatch check` does)."""
    services = request.config_dict[SERVICES]
    job = await services.store.get_job(_job_id(request))
    if job.state in ENDED_STATES or job.vendor_job_id is None:
        return web.json_response(job_json(job, request.config_dict[PUBLIC_URL]))
    job = await services.store.record_action(job.id, "job.check_requested", {}, vendor_calls=0)
    services.due_now.set()
    return web.json_response(job_json(job, request.config_dict[PUBLIC_URL]), status=202)


async def check_vendor_jobs(request: web.Request) -> web.Response:
    """Make every open job at the vendor due now; the reconciler checks them at once (with
    one list call where the vendor has one). Answers the jobs made due."""
    services = request.config_dict[SERVICES]
    raw = request.match_info["vendor"]
    try:
        vendor = VendorName(raw)
    except ValueError:
        raise ApiError(404, "not_found", f"no vendor named {raw!r}") from None
    jobs = await services.store.request_vendor_checks(vendor)
    services.due_now.set()
    public_url = request.config_dict[PUBLIC_URL]
    return web.json_response({"jobs": [job_json(job, public_url) for job in jobs]}, status=202)


async def _acting(action: Awaitable[JobRecord]) -> JobRecord:
    """An action's refusals as JSON errors: not offered, or refused by the vendor for this job
    or these options (409); the vendor failing (502)."""
    try:
        return await action
    except (ActionError, ActionNotSupportedError) as exc:
        raise ApiError(409, "action_not_possible", str(exc)) from None
    except (VendorRejectedError, VendorNotFoundError) as exc:
        raise ApiError(409, "action_not_possible", str(exc), vendor_status=exc.status) from None
    except VendorError as exc:
        raise ApiError(502, "vendor_error", str(exc), vendor_status=exc.status) from None
