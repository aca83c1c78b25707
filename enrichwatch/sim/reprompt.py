"""Reprompt place enrichment: batches of place jobs, status by job id lists, paged results.

The API is FastAPI, so undocumented errors take FastAPI's shapes: `{"detail": "..."}` and
422 `{"detail": [{"type", "loc", "msg"}]}` for schema errors. The sim's own choices:
`GET /batches` answers `{"batches", "total", "limit", "offset"}` newest first; `/jobs`
requires `batchId` and takes `limit` 1..1000 (default 100); each result job is
`{job_id, place_id, batch_id, status, inputs, outputs, job_metadata: {attribute_status},
created_at, updated_at}`; a finished batch is `failed` when a run failed outright or more
than `batch_failure_threshold` of its jobs failed, else `completed`. Each submit or
reprocess starts a new *round* (its own `SimJob`) over the places it touches, which is
how a `completed` batch goes back to `in_progress` after `/reprocess`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any, cast

from aiohttp import web

from enrichwatch.sim import records
from enrichwatch.sim.base import JobView, VendorSim, bearer_token, json_response, read_json
from enrichwatch.sim.clock import iso_z
from enrichwatch.sim.config import RepromptConfig
from enrichwatch.sim.jobs import Phase, Progress, RecordState, SimJob
from enrichwatch.sim.limits import Verdict

JOB_STATUSES = ("pending", "queued", "in_progress", "completed", "failed")
ATTRIBUTE_SETS = {
    "core": ["websites", "phoneNumbers", "categories", "openingHours"],
    "all": [
        "websites",
        "phoneNumbers",
        "categories",
        "openingHours",
        "socialHandles",
        "closed_permanently",
    ],
    "open_closed": ["closed_permanently"],
}
_STATE = {
    RecordState.PENDING: "pending",
    RecordState.QUEUED: "queued",
    RecordState.IN_PROGRESS: "in_progress",
    RecordState.SUCCEEDED: "completed",
    RecordState.FAILED: "failed",
    RecordState.CANCELLED: "failed",
}


@dataclass
class Round:
    job: SimJob
    members: list[int]
    attributes: list[str]


@dataclass
class RBatch:
    batch_id: str
    org: str
    batch_name: str
    created_at: float
    place_ids: list[str] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    rounds: list[Round] = field(default_factory=list)
    owner: list[tuple[int, int]] = field(default_factory=list)
    """Per place: (round index, position in that round) of its latest run."""
    rendered: dict[int, tuple[tuple[int, int], bytes]] = field(default_factory=dict)
    """Per finished place: its result job as JSON, and the run it is of. A finished place
    never changes until a reprocess gives it a new run, so it is serialised once."""


def sample_places(count: int) -> list[dict[str, str]]:
    """`count` valid places to submit to a Reprompt batch (distinct ids), for benchmarks and
    tests that need many."""
    return [
        {
            "place_id": f"place-{n}",
            "name": f"Store {n}",
            "full_address": f"{n} Main St, Springfield",
            "latitude": "40.7",
            "longitude": "-73.9",
        }
        for n in range(count)
    ]


def _detail(status: int, detail: Any) -> web.Response:
    return json_response({"detail": detail}, status)


def _invalid(loc: list[str | int], msg: str, kind: str = "value_error") -> web.Response:
    return _detail(422, [{"type": kind, "loc": loc, "msg": msg}])


class RepromptSim(VendorSim):
    name = "reprompt"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: dict[tuple[str, str], RBatch] = {}

    @property
    def cfg(self) -> RepromptConfig:
        return cast(RepromptConfig, self.config)

    def add_routes(self, router: web.UrlDispatcher, prefix: str) -> None:
        base = prefix + "/v1/{org}/place_enrichment"
        router.add_post(base + "/batches", self._submit)
        router.add_get(base + "/batches", self._list)
        router.add_get(base + "/batches/{id}", self._status)
        router.add_post(base + "/batches/{id}/reprocess", self._reprocess)
        router.add_get(base + "/jobs", self._jobs)

    async def authenticate(self, request: web.Request) -> web.StreamResponse | None:
        token = bearer_token(request) or request.headers.get("apiKey")
        if token is None:
            return _detail(401, "Not authenticated")
        if token != self.cfg.api_key:
            return _detail(401, "Invalid authentication credentials")
        org = request.match_info.get("org")
        if self.cfg.org is not None and org != self.cfg.org:
            return _detail(403, f"Not authorized for organization '{org}'")
        return None

    def throttled(self, retry_after: int, verdict: Verdict | None) -> web.Response:
        response = _detail(429, "Too Many Requests")
        response.headers["Retry-After"] = str(retry_after)
        return response

    def not_found(self) -> web.Response:
        return _detail(404, "Not Found")

    # -- submit, reprocess -------------------------------------------------------------

    async def _submit(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            return _invalid(["body"], "Input should be a valid dictionary", "dict_type")
        for key in ("batch_name", "jobs"):
            if key not in body:
                return _invalid(["body", key], "Field required", "missing")
        jobs = body["jobs"]
        if not isinstance(jobs, list) or not jobs:
            return _invalid(["body", "jobs"], "List should have at least 1 item", "too_short")
        if len(jobs) > self.cfg.max_jobs_per_request:
            return _detail(
                400, f"Batch exceeds maximum of {self.cfg.max_jobs_per_request} jobs per request"
            )
        for i, job in enumerate(jobs):
            if not isinstance(job, dict) or not isinstance(job.get("place_id"), str):
                return _invalid(["body", "jobs", i, "place_id"], "Field required", "missing")
            if not isinstance(job.get("inputs"), dict):
                return _invalid(["body", "jobs", i, "inputs"], "Field required", "missing")
        attributes = self._attributes(body)
        if isinstance(attributes, web.Response):
            return attributes
        org = request.match_info["org"]
        batch_id = body.get("batch_id")
        batch = self.batches.get((org, batch_id)) if isinstance(batch_id, str) else None
        if batch is None:
            batch = self._new_batch(org, batch_id, str(body["batch_name"]))
        start = len(batch.place_ids)
        for job in jobs:
            batch.place_ids.append(job["place_id"])
            batch.inputs.append(job["inputs"])
            batch.owner.append((-1, -1))
        self._start_round(batch, list(range(start, len(batch.place_ids))), attributes)
        return json_response(self.status_body(batch, with_metadata=False))

    def _attributes(self, body: dict[str, Any]) -> list[str] | web.Response:
        attributes, attribute_set = body.get("attributes"), body.get("attribute_set")
        if attributes is not None and attribute_set is not None:
            return _detail(400, "You cannot specify both attributes and attribute_set")
        if attribute_set is not None:
            if attribute_set not in ATTRIBUTE_SETS:
                return _invalid(
                    ["body", "attribute_set"],
                    "Input should be 'open_closed', 'core' or 'all'",
                    "enum",
                )
            return list(ATTRIBUTE_SETS[attribute_set])
        if attributes is not None:
            if not isinstance(attributes, list) or not all(isinstance(a, str) for a in attributes):
                return _invalid(["body", "attributes"], "Input should be a valid list", "list_type")
            return list(attributes)
        return list(ATTRIBUTE_SETS["core"])

    def _new_batch(self, org: str, batch_id: str | None, name: str) -> RBatch:
        if batch_id is None:
            _, batch_id = self.new_job(0)
        batch = RBatch(batch_id, org, name, self.now)
        self.batches[(org, batch_id)] = batch
        return batch

    def _start_round(self, batch: RBatch, members: list[int], attributes: list[str]) -> None:
        job, _ = self.new_job(len(members))
        batch.rounds.append(Round(job, members, attributes))
        index = len(batch.rounds) - 1
        for local, place in enumerate(members):
            batch.owner[place] = (index, local)

    async def _reprocess(self, request: web.Request) -> web.Response:
        batch = self.batches.get((request.match_info["org"], request.match_info["id"]))
        if batch is None:
            return _detail(404, "Batch not found")
        body = await read_json(request) or {}
        if not isinstance(body, dict):
            return _invalid(["body"], "Input should be a valid dictionary", "dict_type")
        failed_only = bool(body.get("failed_only", True))
        incomplete_only = bool(body.get("incomplete_only", False))
        attributes: list[str] | None = None
        if body.get("attributes") is not None or body.get("attribute_set") is not None:
            chosen = self._attributes(body)
            if isinstance(chosen, web.Response):
                return chosen
            attributes = chosen
        states = self.place_states(batch)
        wanted: set[str] = set()
        if failed_only:
            wanted.add("failed")
        if incomplete_only:
            wanted.update(("pending", "queued", "in_progress"))
        members = [i for i, s in enumerate(states) if not wanted or s in wanted]
        if members:
            last = batch.rounds[batch.owner[members[0]][0]].attributes
            self._start_round(batch, members, attributes or last)
        return json_response(self.status_body(batch, with_metadata=False))

    # -- reading -----------------------------------------------------------------------

    def _progress(self, batch: RBatch) -> list[Progress]:
        now = self.now
        return [r.job.progress(now) for r in batch.rounds]

    def place_states(self, batch: RBatch, indices: range | None = None) -> list[str]:
        now = self.now
        progress = self._progress(batch)
        # A round spends the first half of its start delay `pending` (not yet scheduled) and
        # the second half `queued` (waiting for a worker), as the documented lifecycle does.
        scheduled = [now >= r.job.created_at + r.job.plan.start_delay / 2 for r in batch.rounds]
        out = []
        for i in indices if indices is not None else range(len(batch.place_ids)):
            r, local = batch.owner[i]
            state = _STATE[batch.rounds[r].job.record_state(local, progress[r])]
            out.append("queued" if state == "pending" and scheduled[r] else state)
        return out

    def batch_status(self, batch: RBatch, states: list[str]) -> str:
        counts = {s: states.count(s) for s in JOB_STATUSES}
        total = len(states)
        if counts["pending"] == total:
            return "pending"
        done = counts["completed"] + counts["failed"]
        if done == total:
            outright = any(p.phase == Phase.FAILED for p in self._progress(batch))
            too_many = counts["failed"] > self.cfg.batch_failure_threshold * total
            return "failed" if outright or too_many else "completed"
        if done or counts["in_progress"]:
            return "in_progress"
        return "queued"

    def status_body(self, batch: RBatch, with_metadata: bool = True) -> dict[str, Any]:
        states = self.place_states(batch)
        grouped: dict[str, list[str]] = {s: [] for s in JOB_STATUSES}
        for place_id, state in zip(batch.place_ids, states, strict=True):
            grouped[state].append(place_id)
        body: dict[str, Any] = {
            "id": batch.batch_id,
            "batch_name": batch.batch_name,
            "status": self.batch_status(batch, states),
            "jobs": grouped,
            "metadata": _metadata(grouped) if with_metadata else None,
            "created_at": iso_z(batch.created_at),
        }
        return body

    async def _status(self, request: web.Request) -> web.Response:
        batch = self.batches.get((request.match_info["org"], request.match_info["id"]))
        if batch is None:
            return _detail(404, "Batch not found")
        return json_response(self.status_body(batch))

    async def _list(self, request: web.Request) -> web.Response:
        paging = _paging(request, default=20)
        if isinstance(paging, web.Response):
            return paging
        limit, offset = paging
        query = request.query.get("query", "").lower()
        org = request.match_info["org"]
        found = [
            b
            for (o, _), b in reversed(self.batches.items())
            if o == org and query in b.batch_name.lower()
        ]
        page = []
        for batch in found[offset : offset + limit]:
            full = self.status_body(batch)
            counts = {k: len(v) for k, v in full["jobs"].items()}
            page.append(
                {k: full[k] for k in ("id", "batch_name", "status", "created_at", "metadata")}
                | {"status_counts": counts}
            )
        return json_response(
            {"batches": page, "total": len(found), "limit": limit, "offset": offset}
        )

    async def _jobs(self, request: web.Request) -> web.Response:
        batch_id = request.query.get("batchId")
        if batch_id is None:
            return _invalid(["query", "batchId"], "Field required", "missing")
        paging = _paging(request, default=100)
        if isinstance(paging, web.Response):
            return paging
        limit, offset = paging
        batch = self.batches.get((request.match_info["org"], batch_id))
        if batch is None:
            return _detail(404, "Batch not found")
        indices = range(offset, min(offset + limit, len(batch.place_ids)))
        states = self.place_states(batch, indices)
        jobs = b",".join(self._job_json(batch, i, s) for i, s in zip(indices, states, strict=True))
        tail = {"total": len(batch.place_ids), "limit": limit, "offset": offset}
        body = b'{"jobs":[' + jobs + b"]," + json.dumps(tail, separators=(",", ":"))[1:].encode()
        return web.Response(body=body, content_type="application/json")

    def _job_json(self, batch: RBatch, i: int, state: str) -> bytes:
        if state not in ("completed", "failed"):
            return json.dumps(self._job(batch, i, state), separators=(",", ":")).encode()
        cached = batch.rendered.get(i)
        if cached is not None and cached[0] == batch.owner[i]:
            return cached[1]
        body = json.dumps(self._job(batch, i, state), separators=(",", ":")).encode()
        batch.rendered[i] = (batch.owner[i], body)
        return body

    def _job(self, batch: RBatch, i: int, state: str) -> dict[str, Any]:
        r, local = batch.owner[i]
        run = batch.rounds[r]
        name = str(batch.inputs[i].get("name", ""))
        done = state in ("completed", "failed")
        attr_state = {"completed": "completed", "failed": "failed"}.get(state, "pending")
        updated = run.job.processed_at(local + 1) if done else run.job.created_at
        digest = hashlib.blake2b(f"{batch.batch_id}:{i}".encode(), digest_size=16).digest()
        return {
            "job_id": str(uuid.UUID(bytes=digest, version=4)),
            "place_id": batch.place_ids[i],
            "batch_id": batch.batch_id,
            "status": state,
            "inputs": batch.inputs[i],
            "outputs": records.place_outputs(run.job.key, local, name, run.attributes)
            if state == "completed"
            else {},
            "job_metadata": {"attribute_status": {a: attr_state for a in run.attributes}},
            "created_at": iso_z(batch.created_at),
            "updated_at": iso_z(min(updated, self.now)),
        }

    def views(self) -> list[JobView]:
        out = []
        for batch in self.batches.values():
            states = self.place_states(batch)
            ok, bad = states.count("completed"), states.count("failed")
            out.append(
                JobView(
                    batch.batch_id, self.batch_status(batch, states), len(states), ok + bad, ok, bad
                )
            )
        return out


def _metadata(grouped: dict[str, list[str]]) -> dict[str, Any]:
    counts = {k: len(v) for k, v in grouped.items()}
    finished = counts["completed"] + counts["failed"]
    return {
        "total_jobs": sum(counts.values()),
        "completed_jobs": counts["completed"],
        "status_counts": counts,
        "success_rate": round(counts["completed"] / finished, 4) if finished else 0.0,
    }


def _paging(request: web.Request, default: int) -> tuple[int, int] | web.Response:
    try:
        limit = int(request.query.get("limit", default))
        offset = int(request.query.get("offset", 0))
    except ValueError:
        return _invalid(["query", "limit"], "Input should be a valid integer", "int_parsing")
    if not 1 <= limit <= 1000:
        return _invalid(["query", "limit"], "Input should be between 1 and 1000", "less_than_equal")
    if offset < 0:
        return _invalid(["query", "offset"], "Input should be >= 0", "greater_than_equal")
    return limit, offset
