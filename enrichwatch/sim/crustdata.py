"""Crustdata's Batch API (version 2025-11-01): submit, status, list, pre-signed gz JSONL.

Where the docs are silent the sim chooses: 401/404/429 bodies reuse the documented 402
envelope `{"error": {"type", "message", "metadata"}}`; `completed_at` is set for failed jobs
too; a completed job with `result_count: 0` gets a `download_url` *and* one part URL, both
404; Crustdata has no paused state, so a credit pause drawn from the profile shows as a
stalled `processing`. The callback body is the status body (with fresh links) as of the
moment the job ended; it is unsigned unless `sign_callbacks` is on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Iterator
from typing import Any, cast

from aiohttp import web

from enrichwatch.sim.base import (
    VERDICT_KEY,
    JobView,
    VendorSim,
    bearer_token,
    json_response,
    read_json,
)
from enrichwatch.sim.callbacks import Outgoing
from enrichwatch.sim.clock import iso_micro
from enrichwatch.sim.config import CrustdataConfig
from enrichwatch.sim.crustdata_files import (
    ENDPOINTS,
    CrustJob,
    Endpoint,
    endpoint_path,
    result_count,
    result_lines,
)
from enrichwatch.sim.jobs import Phase
from enrichwatch.sim.limits import Verdict
from enrichwatch.sim.storage import BUCKET

API_VERSION = "2025-11-01"
STATUSES = ("pending", "processing", "completed", "failed")
_PHASE_STATUS = {
    Phase.QUEUED: "pending",
    Phase.COMPLETED: "completed",
    Phase.FAILED: "failed",
    Phase.STOPPED: "failed",
}


def error(status: int, kind: str, message: str, **metadata: Any) -> web.Response:
    return json_response(
        {"error": {"type": kind, "message": message, "metadata": metadata}}, status
    )


def _as_list(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list) and all(isinstance(v, str | int) for v in value):
        return [str(v) for v in value]
    return None


class CrustdataSim(VendorSim):
    name = "crustdata"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.jobs: dict[str, CrustJob] = {}
        self.ctx.storage.resolvers[BUCKET] = self._resolve

    @property
    def cfg(self) -> CrustdataConfig:
        return cast(CrustdataConfig, self.config)

    def add_routes(self, router: web.UrlDispatcher, prefix: str) -> None:
        for path in ENDPOINTS:
            router.add_post(prefix + path, self._submit)
        router.add_get(prefix + "/batch/{id}", self._status)
        router.add_get(prefix + "/batch", self._list)

    async def authenticate(self, request: web.Request) -> web.StreamResponse | None:
        if bearer_token(request) == self.cfg.api_key:
            return None
        return error(401, "unauthorized", "Invalid or missing API key")

    def throttled(self, retry_after: int, verdict: Verdict | None) -> web.Response:
        limit = verdict.limit if verdict is not None else (self.cfg.rpm or 60)
        response = error(
            429,
            "rate_limit_exceeded",
            f"Rate limit exceeded. Retry in {retry_after} seconds.",
            limit=limit,
            reset=retry_after,
        )
        response.headers.update(
            {
                "x-ratelimit-limit": str(limit),
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": str(retry_after),
            }
        )
        return response

    def not_found(self) -> web.Response:
        return error(404, "not_found", "Not found")

    def response_headers(self, request: web.Request) -> dict[str, str]:
        limit = self.cfg.rpm
        if limit is None:
            return {}
        verdict = request.get(VERDICT_KEY) or self.limiter.peek(self.name, limit, self.now)
        return {
            "x-ratelimit-limit": str(verdict.limit),
            "x-ratelimit-remaining": str(verdict.remaining),
            "x-ratelimit-reset": str(verdict.reset),
        }

    # -- submit ------------------------------------------------------------------------

    async def _submit(self, request: web.Request) -> web.Response:
        version = request.headers.get("x-api-version")
        if version is None:
            return error(400, "invalid_request", "Missing required header: x-api-version")
        if version != API_VERSION:
            return error(
                400,
                "invalid_request",
                f"Unsupported x-api-version: {version}",
                supported_versions=[API_VERSION],
            )
        endpoint = ENDPOINTS[request.path.removeprefix("/" + self.name)]
        body = await read_json(request)
        if not isinstance(body, dict):
            return error(400, "invalid_request", "Request body must be a JSON object")
        parsed = self._validate(endpoint, body)
        if isinstance(parsed, web.Response):
            return parsed
        identifiers, fields, webhook_url, chunk_size = parsed
        if self.cfg.credits is not None and self.cfg.credits < len(identifiers):
            return error(
                402,
                "insufficient_credits",
                "Insufficient credits to run this batch job.",
                required=len(identifiers),
                available=self.cfg.credits,
            )
        active = sum(1 for j in self.jobs.values() if not j.job.progress(self.now).terminal)
        if active >= self.cfg.max_active_jobs:
            self.record_violation(f"POST {endpoint_path(endpoint)}", "concurrency")
            return error(
                429,
                "too_many_active_jobs",
                f"An account may have at most {self.cfg.max_active_jobs} active "
                "(pending or processing) batch jobs at a time.",
                active_jobs=active,
                limit=self.cfg.max_active_jobs,
            )
        if self.cfg.credits is not None:
            self.cfg.credits -= len(identifiers)
        crust = self.add_job(
            len(identifiers),
            kind=endpoint.kind,
            identifiers=identifiers,
            fields=fields,
            webhook_url=webhook_url,
            chunk_size=chunk_size,
        )
        return json_response(
            {
                "batch_id": crust.batch_id,
                "status": "pending",
                "entity": endpoint.entity,
                "action": endpoint.action,
                "identifier_count": len(identifiers),
                "entities_requested": len(identifiers),
                "status_url": f"/batch/{crust.batch_id}",
            }
        )

    def _validate(
        self, endpoint: Endpoint, body: dict[str, Any]
    ) -> web.Response | tuple[list[str], list[str], str | None, int]:
        given = [t for t in endpoint.identifier_types if body.get(t) is not None]
        if len(given) != 1:
            return error(
                400,
                "invalid_request",
                "Provide exactly one identifier type: " + " or ".join(endpoint.identifier_types),
                identifier_types=list(endpoint.identifier_types),
            )
        identifiers = _as_list(body[given[0]])
        if not identifiers:
            return error(400, "invalid_request", f"{given[0]} must be a non-empty list")
        cap = self.cfg.caps[endpoint.kind]
        if len(identifiers) > cap:
            return error(
                400,
                "invalid_request",
                f"Maximum {cap} identifiers per job; got {len(identifiers)}",
                max_identifiers=cap,
            )
        chunk_size = body.get("chunk_size", 100)
        if not isinstance(chunk_size, int) or isinstance(chunk_size, bool):
            return error(400, "invalid_request", "chunk_size must be an integer")
        if not 10 <= chunk_size <= 1000:
            return error(400, "invalid_request", "chunk_size must be between 10 and 1000")
        fields = _as_list(body.get("fields")) if body.get("fields") is not None else []
        if fields is None:
            return error(400, "invalid_request", "fields must be a list of strings")
        if endpoint.kind == "contact" and not fields:
            return error(400, "invalid_request", "fields is required and must not be empty")
        bad = [f for f in fields if f.split(".", 1)[0] not in endpoint.field_families]
        if bad:
            return error(
                400,
                "invalid_request",
                f"Unsupported field(s): {', '.join(bad)}",
                available_fields=list(endpoint.field_families),
            )
        webhook_url = body.get("webhook_url")
        if webhook_url is not None and (
            not isinstance(webhook_url, str) or not webhook_url.startswith(("http://", "https://"))
        ):
            return error(400, "invalid_request", "webhook_url must be an http(s) URL")
        return identifiers, fields, webhook_url, chunk_size

    def add_job(
        self,
        total: int,
        *,
        kind: str = "person",
        identifiers: list[str] | None = None,
        fields: list[str] | None = None,
        webhook_url: str | None = None,
        chunk_size: int = 100,
    ) -> CrustJob:
        """Create a job directly, skipping HTTP and the caps (for very large test jobs)."""
        endpoint = next(e for e in ENDPOINTS.values() if e.kind == kind)
        job, batch_id = self.new_job(total, granularity=chunk_size)
        crust = CrustJob(
            batch_id, endpoint, job, identifiers, fields or [], webhook_url, self.cfg.part_size
        )
        self.jobs[batch_id] = crust
        if webhook_url is not None:
            self.ctx.callbacks.watch(
                self.name,
                batch_id,
                webhook_url,
                job.terminal_at,
                lambda at: self._callback_body(crust, at),
                self._sign if self.cfg.sign_callbacks else None,
            )
        return crust

    def _callback_body(self, crust: CrustJob, at: float) -> Outgoing | None:
        body = self.status_body(crust, at)
        if body["status"] == "failed" and not self.cfg.callback_on_failure:
            return None
        return Outgoing(json.dumps(body).encode(), "application/json")

    def _sign(self, body: bytes, now: float) -> dict[str, str]:
        stamp = str(int(now))
        message = stamp.encode() + b"." + body
        digest = hmac.new(self.cfg.api_key.encode(), message, hashlib.sha256).hexdigest()
        event_id = hashlib.sha256(body).hexdigest()[:32]
        return {"x-crustdata-signature": f"t={stamp},v1={digest}", "x-crustdata-event-id": event_id}

    # -- status, list ------------------------------------------------------------------

    def status_body(self, crust: CrustJob, at: float, links: bool = True) -> dict[str, Any]:
        progress = crust.job.progress(at)
        status = _PHASE_STATUS.get(progress.phase, "processing")
        body: dict[str, Any] = {
            "batch_id": crust.batch_id,
            "status": status,
            "entity": crust.endpoint.entity,
            "action": crust.endpoint.action,
            "identifier_count": crust.job.total,
            "result_count": result_count(crust, progress.processed),
            "entities_requested": crust.job.total,
            "entities_fulfilled": progress.succeeded,
            "created_at": iso_micro(crust.job.created_at),
        }
        end = crust.job.terminal_at()
        if progress.terminal and end is not None:
            body["completed_at"] = iso_micro(end)
        if status == "failed":
            body["error_message"] = "Batch processing failed: upstream enrichment error"
        if status == "completed" and links:
            body.update(self._links(crust, body["result_count"], at))
        return body

    def _links(self, crust: CrustJob, count: int, at: float) -> dict[str, Any]:
        ttl, storage = self.cfg.link_ttl, self.ctx.storage
        prefix = f"{crust.batch_id}/output"
        parts = max(1, math.ceil(count / crust.part_size))
        return {
            "download_url": storage.presign(BUCKET, f"{prefix}/results.jsonl.gz", ttl, at),
            "download_urls": [
                storage.presign(BUCKET, f"{prefix}/part-{i:03d}.jsonl.gz", ttl, at)
                for i in range(parts)
            ],
        }

    async def _status(self, request: web.Request) -> web.Response:
        crust = self.jobs.get(request.match_info["id"])
        if crust is None:
            return error(404, "not_found", "Batch job not found", batch_id=request.match_info["id"])
        missing = self.ctx.faults.take(self.name, "GET /batch/{id}", "links_missing")
        if missing:
            self.ctx.stats.injected[(self.name, "links_missing")] += 1
        return json_response(self.status_body(crust, self.now, links=not missing))

    async def _list(self, request: web.Request) -> web.Response:
        try:
            limit = min(100, max(1, int(request.query.get("limit", "20"))))
        except ValueError:
            return error(400, "invalid_request", "limit must be an integer")
        wanted = request.query.get("status")
        if wanted is not None and wanted not in STATUSES:
            return error(
                400,
                "invalid_request",
                f"Invalid status: {wanted}. Must be one of {', '.join(STATUSES)}",
            )
        ordered = list(reversed(self.jobs.values()))
        cursor = request.query.get("cursor")
        if cursor is not None:
            ids = [c.batch_id for c in ordered]
            if cursor not in ids:
                return error(400, "invalid_request", "Invalid cursor")
            ordered = ordered[ids.index(cursor) + 1 :]
        now = self.now
        bodies = (self.status_body(c, now, links=False) for c in ordered)
        matching = [b for b in bodies if wanted is None or b["status"] == wanted]
        page = matching[:limit]
        has_more = len(matching) > limit
        return json_response(
            {
                "jobs": page,
                "next_cursor": page[-1]["batch_id"] if has_more else None,
                "has_more": has_more,
            }
        )

    # -- files -------------------------------------------------------------------------

    def _resolve(self, bucket: str, key: str) -> Iterator[bytes] | None:
        batch_id, _, name = key.partition("/output/")
        crust = self.jobs.get(batch_id)
        if crust is None:
            return None
        progress = crust.job.progress(self.now)
        count = result_count(crust, progress.processed)
        if progress.phase != Phase.COMPLETED or count == 0:
            return None
        if name == "results.jsonl.gz":
            return result_lines(crust, 0, count)
        if name.startswith("part-") and name.endswith(".jsonl.gz"):
            try:
                index = int(name[5:-9])
            except ValueError:
                return None
            start = index * crust.part_size
            if 0 <= start < count:
                return result_lines(crust, start, min(count, start + crust.part_size))
        return None

    def views(self) -> list[JobView]:
        out = []
        for crust in self.jobs.values():
            p = crust.job.progress(self.now)
            status = _PHASE_STATUS.get(p.phase, "processing")
            out.append(JobView(crust.batch_id, status, p.total, p.processed, p.succeeded, p.failed))
        return out
