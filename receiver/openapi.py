"""The OpenAPI 3.1 document of the JSON API, served at `GET /api/openapi.json`.

The document is built from the code, not written beside it: request bodies and query strings
are the pydantic models the handlers validate with, and answers are the response models below,
which mirror `enrichwatch.serialize` and `receiver.errors`. Two tests keep it honest:
`tests/test_openapi.py` compares the document's (method, path) pairs with the routes the app
registers under /api/, so an undocumented route fails the suite; and it fuzzes a running
receiver from this very document (schemathesis), so an answer the document does not promise
(a status, a field, a shape) fails too.

To add a route under /api/: register the handler in `receiver.app`, then add one
`Operation` to `OPERATIONS` below (method, path, summary, its query or body model, and each
status it can answer with the model of that answer). Nothing else needs to change.

The document itself needs no token: it describes shapes and reveals no data, and tools fetch
it before they have credentials. Every operation it describes still requires the bearer token.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from enrichwatch.actions import ReprocessOptions
from enrichwatch.models import EventSource, JobState, VendorName
from enrichwatch.store.notifications import Outcome
from enrichwatch.store.rows import MAX_ROW_ID
from receiver.api import CreateJob, EventQuery, JobQuery, ResultsQuery
from receiver.middleware import BEARER_CHALLENGE
from receiver.notifications import NotificationQuery

DOCUMENT_PATH = "/api/openapi.json"

_REF = "#/components/schemas/{model}"


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Progress(_Answer):
    done: int | None
    failed: int | None
    total: int | None


class ResultsSummary(_Answer):
    state: Literal["pending", "fetching", "partial", "stored", "fetch_failed"] | None
    count: int


class JobNotify(_Answer):
    """A job's own targets as shown: email addresses, and of a URL only its host
    (`https://hooks.slack.com/…`): the rest may be its secret."""

    slack: str | None = None
    email: list[str] | None = None
    webhook: str | None = None


class Job(_Answer):
    """A job as `enrichwatch.serialize.job_json` writes it."""

    id: int
    vendor: VendorName
    vendor_job_id: str | None
    name: str | None
    state: JobState
    vendor_status: str | None
    error: str | None
    progress: Progress
    results: ResultsSummary
    vendor_calls: float
    callbacks_received: int
    callback_url: str
    next_check_at: datetime | None
    created_at: datetime
    updated_at: datetime
    last_checked_at: datetime | None
    check_failures: int
    """Status checks in a row that failed."""
    failing_since: datetime | None
    """When those failures began; null while checks are answered."""
    paused_at: datetime | None
    """When the job was found paused, waiting on a person; null while it is not. It expires
    `ENRICHWATCH_MAX_JOB_AGE` after this unless resumed."""
    finished_at: datetime | None
    notify: JobNotify | None = None
    """Only on `GET /api/jobs/{id}`: the job's own notification targets (each replaces its
    channel's configured one), or null when it notifies the configured ones."""


class Event(_Answer):
    """An event as `enrichwatch.serialize.event_json` writes it."""

    seq: int
    job_id: int
    type: str
    source: EventSource
    payload: dict[str, Any]
    created_at: datetime


class JobPage(_Answer):
    jobs: list[Job]
    next_cursor: int | None


class EventPage(_Answer):
    events: list[Event]
    next_after: int


class SubmittedJobs(_Answer):
    """The vendor jobs one submitted batch became (large inputs are split)."""

    jobs: list[Job]


class VendorCheck(_Answer):
    """The vendor's open jobs, each due for a check now."""

    jobs: list[Job]


class Notification(_Answer):
    """A notification as `enrichwatch.notify.serialize.notification_json` writes it: one per
    job, outcome and channel."""

    id: int
    job_id: int
    outcome: Outcome
    channel: Literal["slack", "email", "webhook", "console"]
    state: Literal["pending", "sent", "dead"]
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    webhook_id: str
    leased: bool
    created_at: datetime
    updated_at: datetime


class NotificationPage(_Answer):
    notifications: list[Notification]
    next_cursor: int | None


class FieldProblem(_Answer):
    field: str
    message: str


class ErrorDetail(_Answer):
    """What `receiver.errors` puts under "error": a stable code, a sentence, and context."""

    code: str
    message: str
    fields: list[FieldProblem] | None = None
    row: int | None = None
    jobs: list[Job] | None = None
    job: Job | None = None
    """The job already tracked, on a 409 `already_tracked`."""
    failed_job: Job | None = None
    vendor_status: int | None = None
    reason: str | None = None
    allowed_methods: str | None = None


class Error(_Answer):
    error: ErrorDetail


class OpenApiDocument(BaseModel):
    """Only the shape of the top level; the rest is JSON Schema built below."""

    model_config = ConfigDict(extra="allow")

    openapi: str


@dataclass(frozen=True)
class Header:
    description: str
    values: tuple[str, ...] | None = None
    """The only values it takes, where there are few."""


@dataclass(frozen=True)
class Response:
    description: str
    model: type[BaseModel] | tuple[type[BaseModel], ...] | None = None
    """The body's model; a tuple means any one of them; None means a text stream."""
    media_types: tuple[str, ...] = ("application/json",)
    headers: dict[str, Header] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    method: Literal["get", "post", "put", "patch", "delete"]
    path: str
    summary: str
    responses: dict[int, Response]
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    body_required: bool = True
    public: bool = False
    """No bearer token needed (only the document itself)."""


_UNAUTHORIZED = Response(
    "No or wrong API token (`Authorization: Bearer <token>`).",
    Error,
    headers={
        "WWW-Authenticate": Header(
            'The bearer challenge (RFC 6750); `error="invalid_token"` when a bearer token was '
            "sent but is not the API token.",
            (BEARER_CHALLENGE, f'{BEARER_CHALLENGE}, error="invalid_token"'),
        )
    },
)
_NO_JOB = Response("No job with this id.", Error)
_STORE_UNAVAILABLE = Response(
    "The event log could not take the write now (another process held its lock too long, or "
    "the disk is full); nothing changed. Send the same request again after `Retry-After`.",
    Error,
)
_BAD_QUERY = Response("A query parameter is unknown or out of range; `fields` names it.", Error)
_BAD_JSON = Response("The body is not JSON.", Error)
_TOO_LARGE = Response("The body exceeds the configured size limit.", Error)
_BAD_BODY = Response("The body breaks the schema; `fields` names each problem.", Error)
_JOB_ACCEPTED = Response("The request is recorded and the job is due for a check now.", Job)
_NOT_POSSIBLE = Response(
    "Not possible for this job: not sent yet, no such action at this vendor, or the vendor "
    "refused it in the job's state or with these options (`vendor_status`).",
    Error,
)
_VENDOR_FAILED = Response(
    "The vendor failed (unreachable, 5xx, credentials refused); `vendor_status` is its HTTP "
    "status.",
    Error,
)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "get",
        DOCUMENT_PATH,
        "This document.",
        {200: Response("The OpenAPI document.", OpenApiDocument)},
        public=True,
    ),
    Operation(
        "post",
        "/api/jobs",
        "Track a job submitted elsewhere (`vendor_job_id`), or send a batch (`submit`).",
        {
            200: Response("That vendor job was already tracked; the existing job.", Job),
            201: Response(
                "Tracked (the job), or sent (the jobs the batch became).", (Job, SubmittedJobs)
            ),
            400: _BAD_JSON,
            401: _UNAUTHORIZED,
            409: Response(
                "That vendor job is already tracked with other notification targets than "
                "`notify` names (`already_tracked`, with the tracked `job`); nothing changed.",
                Error,
            ),
            413: _TOO_LARGE,
            422: Response(
                "The body breaks the schema (`fields`), or the rows break the vendor's rules "
                "(`invalid_input`, with the 1-based `row`): nothing was sent. Or the vendor "
                "refused a part's input (`vendor_rejected`): `failed_job` is that part's job, "
                "kept as failed with what the vendor said, and `jobs` the parts sent before "
                "it, still tracked.",
                Error,
            ),
            502: Response(
                "The vendor failed to take a part (unreachable, 5xx, credentials refused); "
                "`failed_job` and `jobs` as for `vendor_rejected`.",
                Error,
            ),
        },
        body=CreateJob,
    ),
    Operation(
        "get",
        "/api/jobs",
        "Jobs, newest first; pass `next_cursor` back as `cursor` for the next page.",
        {200: Response("A page of jobs.", JobPage), 400: _BAD_QUERY, 401: _UNAUTHORIZED},
        query=JobQuery,
    ),
    Operation(
        "get",
        "/api/jobs/{job_id}",
        "One job.",
        {200: Response("The job.", Job), 401: _UNAUTHORIZED, 404: _NO_JOB},
    ),
    Operation(
        "get",
        "/api/jobs/{job_id}/events",
        "What happened to the job, oldest first; pass `next_after` back as `after` to follow.",
        {
            200: Response("A page of events.", EventPage),
            400: _BAD_QUERY,
            401: _UNAUTHORIZED,
            404: _NO_JOB,
        },
        query=EventQuery,
    ),
    Operation(
        "get",
        "/api/jobs/{job_id}/results",
        "The job's stored results, streamed as JSON lines or CSV (empty until fetched).",
        {
            200: Response(
                "The results; `X-Results-State` says whether they are complete.",
                media_types=("application/x-ndjson", "text/csv"),
                headers={
                    "X-Results-State": Header(
                        "Where the fetch stands: only `stored` means complete; `partial` is "
                        "what a job still open has so far.",
                        ("pending", "fetching", "partial", "stored", "fetch_failed", "none"),
                    ),
                    "Content-Disposition": Header("attachment; filename=job-ID.FORMAT"),
                },
            ),
            400: _BAD_QUERY,
            401: _UNAUTHORIZED,
            404: _NO_JOB,
        },
        query=ResultsQuery,
    ),
    Operation(
        "post",
        "/api/jobs/{job_id}/check",
        "Ask the vendor about this job now rather than when the polling policy would. An "
        "expired job is watched again (back to running, with a new maximum age).",
        {
            200: Response(
                "The job as it is, nothing recorded: it has completed or failed (and is not "
                "checked again) or has not been sent yet.",
                Job,
            ),
            202: _JOB_ACCEPTED,
            401: _UNAUTHORIZED,
            404: _NO_JOB,
        },
    ),
    Operation(
        "post",
        "/api/jobs/{job_id}/resume",
        "Resume a job the vendor paused (influencers.club, eCore), even one that expired "
        "waiting, or an influencers.club batch that failed mid-run, which then runs again as "
        "a new run.",
        {
            202: _JOB_ACCEPTED,
            401: _UNAUTHORIZED,
            404: _NO_JOB,
            409: _NOT_POSSIBLE,
            502: _VENDOR_FAILED,
        },
    ),
    Operation(
        "post",
        "/api/jobs/{job_id}/reprocess",
        "Run a finished batch again at the vendor (Reprompt); the body is optional.",
        {
            202: _JOB_ACCEPTED,
            400: _BAD_JSON,
            401: _UNAUTHORIZED,
            404: _NO_JOB,
            409: _NOT_POSSIBLE,
            413: _TOO_LARGE,
            422: _BAD_BODY,
            502: _VENDOR_FAILED,
        },
        body=ReprocessOptions,
        body_required=False,
    ),
    Operation(
        "post",
        "/api/jobs/{job_id}/fetch",
        "Fetch the job's results again after their fetch failed for good (`fetch_failed`), "
        "from the first record not stored; the reconciler fetches them on its next pass.",
        {
            202: _JOB_ACCEPTED,
            401: _UNAUTHORIZED,
            404: _NO_JOB,
            409: Response("The job's results are not `fetch_failed`.", Error),
        },
    ),
    Operation(
        "post",
        "/api/vendors/{vendor}/check",
        "Ask the vendor about every open job of ours there now, say once a refused key is "
        "mended at the vendor, rather than when each job's next check comes.",
        {
            202: Response(
                "Recorded on each job; every one is due for a check now (the reconciler asks "
                "with one list call where the vendor has one).",
                VendorCheck,
            ),
            401: _UNAUTHORIZED,
            404: Response("No vendor of that name.", Error),
        },
    ),
    Operation(
        "get",
        "/api/notifications",
        "Notifications, newest first: pending, sent or dead-lettered (with the last error).",
        {
            200: Response("A page of notifications.", NotificationPage),
            400: _BAD_QUERY,
            401: _UNAUTHORIZED,
        },
        query=NotificationQuery,
    ),
    Operation(
        "post",
        "/api/notifications/{notification_id}/retry",
        "Send a dead-lettered notification again, with fresh attempts.",
        {
            202: Response("Due now; the reconciler sends it on its next pass.", Notification),
            401: _UNAUTHORIZED,
            404: Response("No notification with this id.", Error),
            409: Response("The notification was delivered, or is being sent now.", Error),
        },
    ),
)


@functools.cache
def document() -> dict[str, Any]:
    """The whole document; built once per process (it depends only on the code)."""
    return _build(OPERATIONS)


async def serve_document(request: web.Request) -> web.Response:
    return web.json_response(document())


def _build(operations: tuple[Operation, ...]) -> dict[str, Any]:
    schemas = _Schemas(operations)
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        paths.setdefault(operation.path, {})[operation.method] = _operation(operation, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "enrichwatch API",
            "version": "1",
            "description": (
                "Jobs, events and results of the batch jobs enrichwatch tracks. Every error "
                'is JSON: `{"error": {"code": ..., "message": ..., ...}}`; an unexpected '
                "failure answers 500 with code `internal_error`."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The API token (ENRICHWATCH_API_TOKEN, or the one "
                    "`enrichwatch serve` printed at its first start).",
                }
            },
        },
        "security": [{"bearerAuth": []}],
    }


class _Schemas:
    """JSON Schemas of every model the operations name, with shared definitions under
    components/schemas."""

    def __init__(self, operations: tuple[Operation, ...]) -> None:
        wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = []
        for operation in operations:
            wanted += [(model, "serialization") for model in _answer_models(operation)]
            wanted += [
                (model, "validation") for model in (operation.body, operation.query) if model
            ]
        unique = list(dict.fromkeys(wanted))
        refs, definitions = models_json_schema(unique, ref_template=_REF)
        self._refs = refs
        self.components: dict[str, Any] = definitions.get("$defs", {})
        self._refine_create_job()

    def ref(self, model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return dict(self._refs[(model, mode)])

    def resolved(self, model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        name = self.ref(model, mode)["$ref"].rsplit("/", 1)[1]
        resolved: dict[str, Any] = self.components[name]
        return resolved

    def _refine_create_job(self) -> None:
        """What CreateJob's validators check, which pydantic cannot put in JSON Schema:
        exactly one of `vendor_job_id` and `submit`, and an id that is not blank."""
        schema = self.resolved(CreateJob, "validation")
        properties = schema["properties"]
        track = _not_null(properties["vendor_job_id"])
        track["pattern"] = r"\S"
        properties["vendor_job_id"] = {**properties["vendor_job_id"], "anyOf": [track, _NULL]}
        submit = _not_null(properties["submit"])
        schema["oneOf"] = [
            {
                "required": ["vendor_job_id"],
                "properties": {"vendor_job_id": track, "submit": _NULL},
            },
            {
                "required": ["submit"],
                "properties": {"submit": submit, "vendor_job_id": _NULL},
            },
        ]


_NULL = {"type": "null"}


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """The one non-null branch of an optional field's `anyOf`, copied."""
    (branch,) = [branch for branch in schema["anyOf"] if branch != _NULL]
    return copy.deepcopy(branch)


def _answer_models(operation: Operation) -> list[type[BaseModel]]:
    models: list[type[BaseModel]] = []
    for response in operation.responses.values():
        if isinstance(response.model, tuple):
            models += response.model
        elif response.model is not None:
            models.append(response.model)
    return models


def _operation(operation: Operation, schemas: _Schemas) -> dict[str, Any]:
    responses = dict(operation.responses)
    if operation.method != "get":  # every write may meet a store that cannot take it
        responses[503] = _STORE_UNAVAILABLE
    spec: dict[str, Any] = {
        "operationId": _operation_id(operation),
        "summary": operation.summary,
        "responses": {
            str(status): _response(response, schemas)
            for status, response in sorted(responses.items())
        },
    }
    parameters = _path_parameters(operation.path)
    if operation.query is not None:
        parameters += _query_parameters(schemas.resolved(operation.query, "validation"))
    if parameters:
        spec["parameters"] = parameters
    if operation.body is not None:
        spec["requestBody"] = {
            "required": operation.body_required,
            "content": {"application/json": {"schema": schemas.ref(operation.body, "validation")}},
        }
    if operation.public:
        spec["security"] = []
    return spec


def _operation_id(operation: Operation) -> str:
    words = [
        part.strip("{}").replace(".", "_")
        for part in operation.path.removeprefix("/api/").split("/")
    ]
    return "_".join([operation.method, *words])


def _response(response: Response, schemas: _Schemas) -> dict[str, Any]:
    spec: dict[str, Any] = {"description": response.description}
    if isinstance(response.model, tuple):
        schema: dict[str, Any] = {
            "anyOf": [schemas.ref(model, "serialization") for model in response.model]
        }
    elif response.model is not None:
        schema = schemas.ref(response.model, "serialization")
    else:
        schema = {"type": "string"}
    spec["content"] = {media_type: {"schema": schema} for media_type in response.media_types}
    if response.headers:
        spec["headers"] = {name: _header(header) for name, header in response.headers.items()}
    return spec


def _header(header: Header) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if header.values is not None:
        schema["enum"] = list(header.values)
    return {"description": header.description, "required": True, "schema": schema}


_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ROW_ID}
_PATH_SCHEMAS = {"vendor": {"type": "string", "enum": [vendor.value for vendor in VendorName]}}


def _path_parameters(path: str) -> list[dict[str, Any]]:
    """Each `{name}` in the path: a row id, or a vendor's name."""
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    return [
        {"name": name, "in": "path", "required": True, "schema": _PATH_SCHEMAS.get(name, _ID)}
        for name in names
    ]


def _query_parameters(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """One parameter per field; an optional field is simply left out of a query string, so
    the `null` pydantic allows for it has no spelling there and is dropped."""
    required = set(schema.get("required", []))
    parameters = []
    for name, field_schema in schema["properties"].items():
        field_schema = {key: value for key, value in field_schema.items() if key != "title"}
        if "anyOf" in field_schema:
            field_schema = _not_null(field_schema)
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": field_schema,
        }
        parameters.append(parameter)
    return parameters
