"""The JSON API under /api/: track jobs and read what happened to them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from enrichwatch.models import EventSource, JobState, VendorName
from enrichwatch.store import EventRecord, JobRecord
from receiver.errors import ApiError, invalid
from receiver.keys import PUBLIC_URL, SERVICES

QueryT = TypeVar("QueryT", bound=BaseModel)


class TrackJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vendor: VendorName
    vendor_job_id: str = Field(min_length=1, max_length=200)
    name: str | None = Field(default=None, max_length=200)

    @field_validator("vendor_job_id")
    @classmethod
    def _no_blank_id(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value


class JobQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vendor: VendorName | None = None
    state: JobState | None = None
    limit: int = Field(default=50, ge=1, le=200)
    cursor: int | None = Field(default=None, ge=1)


class EventQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after: int = Field(default=0, ge=0)
    limit: int = Field(default=500, ge=1, le=1000)


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def job_json(job: JobRecord, public_url: str) -> dict[str, Any]:
    return {
        "id": job.id,
        "vendor": job.vendor.value,
        "vendor_job_id": job.vendor_job_id,
        "name": job.name,
        "state": job.state.value,
        "vendor_status": job.vendor_status,
        "error": job.error,
        "progress": {
            "done": job.progress_done,
            "failed": job.progress_failed,
            "total": job.progress_total,
        },
        "results": {"state": job.results_state, "count": job.results_count},
        "vendor_calls": job.vendor_calls,
        "callbacks_received": job.callbacks_received,
        "callback_url": f"{public_url}/hooks/{job.vendor.value}/{job.callback_token}",
        "next_check_at": iso(job.next_check_at),
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
        "last_checked_at": iso(job.last_checked_at),
        "finished_at": iso(job.finished_at),
    }


def event_json(event: EventRecord) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "job_id": event.job_id,
        "type": event.type,
        "source": event.source.value,
        "payload": event.payload,
        "created_at": iso(event.created_at),
    }


async def track_job(request: web.Request) -> web.Response:
    services = request.config_dict[SERVICES]
    try:
        raw = await request.json()
    except json.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"request body is not JSON: {exc}") from None
    try:
        body = TrackJob.model_validate(raw)
    except ValidationError as exc:
        raise invalid(exc) from None
    job, created = await services.store.track_job(
        body.vendor, body.vendor_job_id, body.name, source=EventSource.API
    )
    return web.json_response(
        job_json(job, request.config_dict[PUBLIC_URL]), status=201 if created else 200
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
    services = request.config_dict[SERVICES]
    job = await services.store.get_job(_job_id(request))
    return web.json_response(job_json(job, request.config_dict[PUBLIC_URL]))


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


def _query(model: type[QueryT], request: web.Request) -> QueryT:
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise invalid(exc, status=400) from None


def _job_id(request: web.Request) -> int:
    raw = request.match_info["job_id"]
    if not raw.isdigit():
        raise ApiError(404, "not_found", f"no job with id {raw!r}")
    return int(raw)
