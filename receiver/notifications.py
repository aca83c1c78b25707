"""The notifications part of the JSON API: list the outbox (to see what was sent, what waits
and what was dead-lettered) and retry one by hand; and the per-job targets of POST /api/jobs."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from enrichwatch.config import Settings
from enrichwatch.notify.serialize import notification_json
from enrichwatch.notify.targets import NotifyTargetError, job_targets
from enrichwatch.store.notifications import (
    JobTargets,
    NotificationStateError,
    UnknownNotificationError,
)
from enrichwatch.store.rows import MAX_ROW_ID
from receiver.errors import ApiError, invalid
from receiver.ids import parse_id
from receiver.keys import SERVICES


class NotifyBody(BaseModel):
    """`notify` in POST /api/jobs: this job's own targets, replacing the configured ones."""

    model_config = ConfigDict(extra="forbid")

    slack: str | None = Field(default=None, max_length=2000)
    email: list[str] | None = Field(default=None, min_length=1, max_length=50)
    webhook: str | None = Field(default=None, max_length=2000)


def targets_of(body: NotifyBody | None, settings: Settings) -> JobTargets | None:
    """The body's targets checked against the settings; a bad one is a 422 naming it."""
    if body is None:
        return None
    try:
        return job_targets(settings, slack=body.slack, email=body.email, webhook=body.webhook)
    except NotifyTargetError as exc:
        raise ApiError(422, "invalid_notify", str(exc)) from None


class NotificationQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: Literal["pending", "sent", "dead"] | None = None
    job_id: int | None = Field(default=None, ge=1, le=MAX_ROW_ID)
    limit: int = Field(default=50, ge=1, le=200)
    cursor: int | None = Field(default=None, ge=1, le=MAX_ROW_ID)


async def list_notifications(request: web.Request) -> web.Response:
    services = request.config_dict[SERVICES]
    try:
        query = NotificationQuery.model_validate(dict(request.query))
    except ValidationError as exc:
        raise invalid(exc, status=400) from None
    records = await services.store.list_notifications(
        state=query.state, job_id=query.job_id, limit=query.limit, before_id=query.cursor
    )
    return web.json_response(
        {
            "notifications": [notification_json(record) for record in records],
            "next_cursor": records[-1].id if len(records) == query.limit else None,
        }
    )


async def retry_notification(request: web.Request) -> web.Response:
    """Make a dead-lettered notification due now, with fresh attempts (202); a delivered one
    is refused (409)."""
    services = request.config_dict[SERVICES]
    raw = request.match_info["notification_id"]
    notification_id = parse_id(raw)
    if notification_id is None:
        raise ApiError(404, "not_found", f"no notification with id {raw!r}")
    try:
        record = await services.store.retry_notification(notification_id)
    except UnknownNotificationError as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except NotificationStateError as exc:
        raise ApiError(409, "not_retryable", str(exc)) from None
    services.due_now.set()
    return web.json_response(notification_json(record), status=202)


def add_routes(api_app: web.Application) -> None:
    api_app.router.add_get("/notifications", list_notifications)
    api_app.router.add_post("/notifications/{notification_id}/retry", retry_notification)
