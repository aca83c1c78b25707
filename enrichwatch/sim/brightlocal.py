"""BrightLocal's legacy v4 batches: create → add jobs → commit → poll (status and results in one).

Jobs are added with `POST /v4/ld/fetch-reviews` (type `LdFetchReviews`). Parameters are read
from the query string and from a form, multipart or JSON body, for every method, since the
vendor's PHP client form-encodes even DELETE. Where the docs are silent the sim chooses:
a bad `api-key` answers 401 `{"errors": {"INVALID_API_KEY": "Invalid API key specified"}}`;
a missing or malformed `batch-id` answers 400 and an unknown one 404, both `INVALID_BATCH_ID`;
adding to or re-committing a committed batch answers 400 `BATCH_ALREADY_COMMITTED`; stopping
a batch that is not Committed/Running answers 400 `INVALID_BATCH_STATUS`; `results` lists only
jobs that reached Completed or Failed (an empty object before that); jobs cancelled by a stop
stay `Pending`; a batch whose run fails outright is `Stopped`. Workers take a batch's jobs in
parallel, so they finish out of the order they were added in: within each run of
`FINISH_SHUFFLE` jobs, in a shuffled order of their own. The callback body is the
`GET /v4/batch` body plus `batch-id`; in `form` encoding `results` and `statuses` are
JSON-encoded strings beside `success`, `batch-id` and `status`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from enrichwatch.sim import records
from enrichwatch.sim.base import PARAMS_KEY, JobView, VendorSim, json_response
from enrichwatch.sim.callbacks import Outgoing
from enrichwatch.sim.config import BrightLocalConfig
from enrichwatch.sim.jobs import Phase, RecordState, SimJob
from enrichwatch.sim.limits import Verdict

JOB_TYPE = "LdFetchReviews"
_JOB_STATE = {
    RecordState.PENDING: "Pending",
    RecordState.QUEUED: "Queued",
    RecordState.IN_PROGRESS: "Processing",
    RecordState.SUCCEEDED: "Completed",
    RecordState.FAILED: "Failed",
    RecordState.CANCELLED: "Pending",
}
_BATCH_STATE = {
    Phase.QUEUED: "Committed",
    Phase.RUNNING: "Running",
    Phase.PAUSED: "Running",
    Phase.PAUSED_CREDITS: "Running",
    Phase.COMPLETED: "Finished",
    Phase.FAILED: "Stopped",
    Phase.STOPPED: "Stopped",
}


@dataclass
class BLJob:
    job_id: int
    job_type: str
    params: dict[str, str]


@dataclass
class BLBatch:
    batch_id: int
    stop_on_error: bool
    callback: str | None
    callback_format: str
    jobs: list[BLJob] = field(default_factory=list)
    run: SimJob | None = None
    finish_rank: list[int] = field(default_factory=list)
    """The n-th job added is the `finish_rank[n]`-th to finish."""
    deleted: bool = False


FINISH_SHUFFLE = 4


def finish_ranks(count: int, key: str) -> list[int]:
    """Each job's place in the order of finishing: its own, shuffled within runs of
    `FINISH_SHUFFLE`."""
    rng = random.Random(key)
    ranks = list(range(count))
    for start in range(0, count, FINISH_SHUFFLE):
        window = ranks[start : start + FINISH_SHUFFLE]
        rng.shuffle(window)
        ranks[start : start + FINISH_SHUFFLE] = window
    return ranks


def fail(status: int, code: str, message: str) -> web.Response:
    return json_response({"success": False, "errors": {code: message}}, status)


async def read_params(request: web.Request) -> dict[str, str]:
    params = dict(request.query)
    ctype = request.content_type
    if ctype == "multipart/form-data" and request.method in ("POST", "PUT", "PATCH"):
        params.update({k: str(v) for k, v in (await request.post()).items()})
    elif ctype == "application/json":
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            body = {}
        if isinstance(body, dict):
            params.update({k: str(v) for k, v in body.items()})
    elif request.can_read_body:
        text = (await request.read()).decode("utf-8", "replace")
        params.update(dict(parse_qsl(text, keep_blank_values=True)))
    return params


class BrightLocalSim(VendorSim):
    name = "brightlocal"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: dict[int, BLBatch] = {}
        self._next_batch = 17
        self._next_job = 318

    @property
    def cfg(self) -> BrightLocalConfig:
        return cast(BrightLocalConfig, self.config)

    def add_routes(self, router: web.UrlDispatcher, prefix: str) -> None:
        router.add_post(prefix + "/v4/batch", self._create)
        router.add_put(prefix + "/v4/batch", self._commit)
        router.add_get(prefix + "/v4/batch", self._get)
        router.add_delete(prefix + "/v4/batch", self._delete)
        router.add_put(prefix + "/v4/batch/stop", self._stop)
        router.add_post(prefix + "/v4/ld/fetch-reviews", self._add_reviews_job)

    async def authenticate(self, request: web.Request) -> web.StreamResponse | None:
        params = await read_params(request)
        request[PARAMS_KEY] = params
        if params.get("api-key") != self.cfg.api_key:
            return json_response({"errors": {"INVALID_API_KEY": "Invalid API key specified"}}, 401)
        return None

    def throttled(self, retry_after: int, verdict: Verdict | None) -> web.Response:
        response = fail(429, "RATE_LIMIT_EXCEEDED", "Too many requests")
        response.headers["Retry-After"] = str(retry_after)
        return response

    def not_found(self) -> web.Response:
        return fail(404, "INVALID_METHOD", "Method not found")

    def method_not_allowed(self) -> web.Response:
        return fail(405, "INVALID_METHOD", "Invalid method specified")

    def _batch(self, request: web.Request) -> BLBatch | web.Response:
        raw = request[PARAMS_KEY].get("batch-id", "")
        try:
            batch_id = int(raw)
        except ValueError:
            return fail(400, "INVALID_BATCH_ID", "Batch ID missing or invalid")
        batch = self.batches.get(batch_id)
        if batch is None or batch.deleted:
            return fail(404, "INVALID_BATCH_ID", "Batch ID not found")
        return batch

    # -- lifecycle ---------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.Response:
        params: dict[str, str] = request[PARAMS_KEY]
        stop = params.get("stop-on-job-error", "0")
        if stop not in ("0", "1", "true", "false"):
            return fail(400, "INVALID_STOP_ON_JOB_ERROR", "Allowed values: 1, 0")
        fmt = params.get("callback_request_format", "form")
        if fmt not in ("form", "json"):
            return fail(400, "INVALID_CALLBACK_REQUEST_FORMAT", "Allowed values: form, json")
        callback = params.get("callback") or None
        if callback is not None and not callback.startswith(("http://", "https://")):
            return fail(400, "INVALID_CALLBACK", "Callback URL is invalid")
        batch = BLBatch(self._next_batch, stop in ("1", "true"), callback, fmt)
        self._next_batch += 1
        self.batches[batch.batch_id] = batch
        shown: str | int = str(batch.batch_id) if self.cfg.batch_id_as_string else batch.batch_id
        return json_response({"success": True, "batch-id": shown}, 201)

    async def _add_reviews_job(self, request: web.Request) -> web.Response:
        batch = self._batch(request)
        if isinstance(batch, web.Response):
            return batch
        params: dict[str, str] = request[PARAMS_KEY]
        if batch.run is not None:
            return fail(400, "BATCH_ALREADY_COMMITTED", "This batch has been committed already")
        errors: dict[str, str] = {}
        if not params.get("profile-url", "").startswith(("http://", "https://")):
            errors["INVALID_PROFILE_URL"] = "Profile URL missing or invalid"
        country = params.get("country")
        if country is not None and not (len(country) == 3 and country.isalpha()):
            errors["INVALID_COUNTRY"] = "Invalid country specified"
        if not params.get("reviews-limit", "100").isdigit():
            errors["INVALID_REVIEWS_LIMIT"] = "Reviews limit must be a positive integer"
        if errors:
            return json_response({"success": False, "errors": errors}, 400)
        job = BLJob(self._next_job, JOB_TYPE, {k: v for k, v in params.items() if k != "api-key"})
        self._next_job += 1
        batch.jobs.append(job)
        return json_response({"success": True, "job-id": job.job_id}, 201)

    async def _commit(self, request: web.Request) -> web.Response:
        batch = self._batch(request)
        if isinstance(batch, web.Response):
            return batch
        if batch.run is not None:
            return fail(400, "BATCH_ALREADY_COMMITTED", "This batch has been committed already")
        if not batch.jobs:
            return fail(400, "INVALID_JOBS_COUNT", "Batch can't be committed with no jobs")
        batch.run, _ = self.new_job(len(batch.jobs), stop_on_failure=batch.stop_on_error)
        batch.finish_rank = finish_ranks(len(batch.jobs), batch.run.key)
        if batch.callback is not None:
            run = batch.run
            self.ctx.callbacks.watch(
                self.name,
                str(batch.batch_id),
                batch.callback,
                run.terminal_at,
                lambda at: self._callback_body(batch, at),
            )
        return json_response({"success": True})

    async def _stop(self, request: web.Request) -> web.Response:
        batch = self._batch(request)
        if isinstance(batch, web.Response):
            return batch
        status = self.batch_status(batch, self.now)
        if batch.run is None or status not in ("Committed", "Running"):
            return fail(400, "INVALID_BATCH_STATUS", f"Batch can't be stopped in status {status}")
        batch.run.stop(self.now)
        return json_response({"success": True})

    async def _delete(self, request: web.Request) -> web.Response:
        batch = self._batch(request)
        if isinstance(batch, web.Response):
            return batch
        batch.deleted = True
        return json_response({"success": True})

    # -- reading -----------------------------------------------------------------------

    def batch_status(self, batch: BLBatch, at: float) -> str:
        if batch.run is None:
            return "Created"
        return _BATCH_STATE[batch.run.progress(at).phase]

    def body(self, batch: BLBatch, at: float) -> dict[str, Any]:
        results: dict[str, list[dict[str, Any]]] = {}
        statuses: dict[str, int] = {}
        progress = batch.run.progress(at) if batch.run is not None else None
        for pos, job in enumerate(batch.jobs):
            state = "Pending"
            if batch.run is not None and progress is not None:
                state = _JOB_STATE[batch.run.record_state(batch.finish_rank[pos], progress)]
            statuses[state] = statuses.get(state, 0) + 1
            if state in ("Completed", "Failed"):
                results.setdefault(job.job_type, []).append(
                    self._job_result(batch, pos, job, state)
                )
        return {
            "success": True,
            "status": self.batch_status(batch, at),
            "results": results,
            "statuses": statuses,
        }

    def _job_result(self, batch: BLBatch, pos: int, job: BLJob, state: str) -> dict[str, Any]:
        if state == "Failed":
            return {
                "results": [],
                "status": state,
                "job-id": job.job_id,
                "error": "Unable to fetch reviews for this profile",
            }
        assert batch.run is not None
        limit = int(job.params.get("reviews-limit", "100") or 100)
        reviews = records.reviews(batch.run.key, pos, limit)
        found = {
            "profile-url": job.params.get("profile-url"),
            "reviews-count": len(reviews),
            "star-rating": f"{sum(r['rating'] for r in reviews) / max(1, len(reviews)):.1f}",
            "reviews": reviews,
        }
        return {"results": [found], "status": state, "job-id": job.job_id}

    async def _get(self, request: web.Request) -> web.Response:
        batch = self._batch(request)
        if isinstance(batch, web.Response):
            return batch
        return json_response(self.body(batch, self.now))

    def _callback_body(self, batch: BLBatch, at: float) -> Outgoing | None:
        if batch.deleted:
            return None
        body = self.body(batch, at)
        if batch.callback_format == "json":
            payload = {"batch-id": batch.batch_id, **body}
            return Outgoing(json.dumps(payload).encode(), "application/json")
        form = {
            "success": "1",
            "batch-id": str(batch.batch_id),
            "status": body["status"],
            "results": json.dumps(body["results"]),
            "statuses": json.dumps(body["statuses"]),
        }
        return Outgoing(urlencode(form).encode(), "application/x-www-form-urlencoded")

    def views(self) -> list[JobView]:
        out = []
        for batch in self.batches.values():
            if batch.deleted:
                continue
            status = self.batch_status(batch, self.now)
            if batch.run is None:
                out.append(JobView(str(batch.batch_id), status, len(batch.jobs), 0, 0, 0))
                continue
            p = batch.run.progress(self.now)
            out.append(
                JobView(str(batch.batch_id), status, p.total, p.processed, p.succeeded, p.failed)
            )
        return out
