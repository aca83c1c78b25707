"""influencers.club batch enrichment: CSV upload, status, one-shot JSON results, resume.

The API looks like Django REST Framework, so where the docs give no body the sim answers as
DRF would: field errors as `{"field": ["message"]}`, `{"detail": "Not found."}`, and 429
`{"detail": "Request was throttled. Expected available in N seconds."}` with `Retry-After`.
A first CSV row reading `handle`, `email`, `username` or `input` is taken as a header.
Per-record result `status` is `success` or `failed` (failed records carry
`enrichment_data: null`). Resuming is only accepted from `paused_insufficient_credits`.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web
from multidict import MultiDictProxy

from enrichwatch.sim import records
from enrichwatch.sim.base import JobView, VendorSim, bearer_token, json_response
from enrichwatch.sim.clock import iso_micro
from enrichwatch.sim.config import InfluencersClubConfig
from enrichwatch.sim.jobs import Phase, SimJob
from enrichwatch.sim.limits import Verdict

MODES = {"raw": 0.03, "full": 1.0, "basic": 0.05, "advanced": 0.05}
HANDLE_MODES = ("raw", "full")
PLATFORMS = ("instagram", "youtube", "tiktok", "twitter", "twitch", "onlyfans")
_HEADERS = {"handle", "handles", "email", "emails", "username", "input", "input_value"}
_BASE = "/public/v1/enrichment/batch/"
_PAUSE_MESSAGE = "Insufficient credits. Top up your credits and call the resume endpoint."
_STATUS = {
    Phase.QUEUED: "queued",
    Phase.RUNNING: "processing",
    Phase.PAUSED: "processing",
    Phase.PAUSED_CREDITS: "paused_insufficient_credits",
    Phase.COMPLETED: "finished",
    Phase.FAILED: "failed",
    Phase.STOPPED: "failed",
}


@dataclass
class ICBatch:
    batch_id: str
    job: SimJob
    inputs: list[str]
    mode: str
    platform: str | None
    metadata: dict[str, Any] | None


def _detail(status: int, detail: str) -> web.Response:
    return json_response({"detail": detail}, status)


class InfluencersClubSim(VendorSim):
    name = "influencers_club"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: dict[str, ICBatch] = {}

    @property
    def cfg(self) -> InfluencersClubConfig:
        return cast(InfluencersClubConfig, self.config)

    def add_routes(self, router: web.UrlDispatcher, prefix: str) -> None:
        base = prefix + _BASE
        router.add_post(base, self._create)
        router.add_get(base + "{id}/status/", self._status)
        router.add_get(base + "{id}/", self._results)
        router.add_post(base + "{id}/resume/", self._resume)

    async def authenticate(self, request: web.Request) -> web.StreamResponse | None:
        token = bearer_token(request)
        if token is None:
            return _detail(401, "Authentication credentials were not provided.")
        if token != self.cfg.api_key:
            return _detail(401, "Invalid token.")
        return None

    def throttled(self, retry_after: int, verdict: Verdict | None) -> web.Response:
        response = _detail(
            429, f"Request was throttled. Expected available in {retry_after} seconds."
        )
        response.headers["Retry-After"] = str(retry_after)
        return response

    def not_found(self) -> web.Response:
        return _detail(404, "Not found.")

    # -- create ------------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.Response:
        form = await request.post() if request.content_type == "multipart/form-data" else None
        if form is None:
            return json_response({"file": ["No file was submitted."]}, 400)
        parsed = self._validate(form)
        if isinstance(parsed, web.Response):
            return parsed
        inputs, mode, platform, metadata = parsed
        batch = self.add_batch(inputs, mode=mode, platform=platform, metadata=metadata)
        return json_response(
            {
                "batch_id": batch.batch_id,
                "status": "validating",
                "created_at": iso_micro(batch.job.created_at),
                "enrichment_mode": mode,
                "platform": platform,
                "metadata": metadata,
                "total_rows": len(inputs),
            }
        )

    def _validate(
        self, form: MultiDictProxy[Any]
    ) -> web.Response | tuple[list[str], str, str | None, dict[str, Any] | None]:
        errors: dict[str, list[str]] = {}
        upload = form.get("file")
        inputs: list[str] = []
        if upload is None or isinstance(upload, str):
            errors["file"] = ["No file was submitted."]
        else:
            raw = upload.file.read(self.cfg.max_file_bytes + 1)
            if len(raw) > self.cfg.max_file_bytes:
                errors["file"] = ["File size exceeds the 10 MB limit."]
            else:
                problem, inputs = _read_csv(raw)
                if problem:
                    errors["file"] = [problem]
        mode = str(form.get("enrichment_mode", ""))
        if not mode:
            errors["enrichment_mode"] = ["This field is required."]
        elif mode not in MODES:
            errors["enrichment_mode"] = [f'"{mode}" is not a valid choice.']
        platform = form.get("platform")
        platform = str(platform) if platform not in (None, "") else None
        if platform is not None and platform not in PLATFORMS:
            errors["platform"] = [f'"{platform}" is not a valid choice.']
        elif platform is None and mode in HANDLE_MODES:
            errors["platform"] = ["This field is required when enriching by handle."]
        metadata: dict[str, Any] | None = None
        if form.get("metadata") not in (None, "", "null"):
            try:
                metadata = json.loads(str(form["metadata"]))
            except ValueError:
                metadata = None
            if not isinstance(metadata, dict):
                errors["metadata"] = ["Value must be a valid JSON object."]
        if errors:
            return json_response(errors, 400)
        return inputs, mode, platform, metadata

    def add_batch(
        self,
        inputs: list[str],
        *,
        mode: str = "basic",
        platform: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> ICBatch:
        job, batch_id = self.new_job(len(inputs))
        batch = ICBatch(batch_id, job, inputs, mode, platform, metadata)
        self.batches[batch_id] = batch
        return batch

    # -- status, results, resume -------------------------------------------------------

    async def _status(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return self.not_found()
        now = self.now
        progress = batch.job.progress(now)
        status = _STATUS[progress.phase]
        end = batch.job.terminal_at()
        running = status in ("queued", "processing")
        return json_response(
            {
                "batch_id": batch.batch_id,
                "status": status,
                "total_rows": progress.total,
                "processed_rows": progress.processed,
                "success_count": progress.succeeded,
                "failed_count": progress.failed,
                "started_at": iso_micro(batch.job.created_at),
                "metadata": batch.metadata,
                "credits_used": f"{progress.succeeded * MODES[batch.mode]:.2f}",
                "estimated_completion": iso_micro(end) if running and end else None,
                "status_message": _PAUSE_MESSAGE
                if progress.phase == Phase.PAUSED_CREDITS
                else None,
            }
        )

    async def _results(self, request: web.Request) -> web.StreamResponse:
        batch = self.batches.get(request.match_info["id"])
        if batch is None or request.query.get("format", "csv") != "json":
            return self.not_found()
        progress = batch.job.progress(self.now)
        if progress.phase != Phase.COMPLETED:
            return _detail(400, "Batch enrichment is not finished yet.")
        latin1 = self.ctx.faults.take(self.name, f"GET {_BASE}{{id}}/", "latin1_results")
        if latin1:
            self.ctx.stats.injected[(self.name, "latin1_results")] += 1
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b"[")
        chunk: list[str] = []
        separator = ""
        for pos, value in enumerate(batch.inputs):
            record = self._record(batch, pos, value)
            chunk.append(json.dumps(record, separators=(",", ":"), ensure_ascii=not latin1))
            if len(chunk) >= 500 or pos == len(batch.inputs) - 1:
                text = separator + ",".join(chunk)
                await response.write(text.encode("latin-1", "replace") if latin1 else text.encode())
                chunk, separator = [], ","
        await response.write(b"]")
        await response.write_eof()
        return response

    def _record(self, batch: ICBatch, pos: int, value: str) -> dict[str, Any]:
        if batch.job.is_failed(pos):
            return {"input_value": value, "status": "failed", "enrichment_data": None}
        data = records.creator(batch.job.key, pos, value, batch.platform)
        return {"input_value": value, "status": "success", "enrichment_data": data}

    async def _resume(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return self.not_found()
        # "Resume a paused or interrupted batch … If a batch was paused or failed mid-run".
        if batch.job.progress(self.now).phase not in (Phase.PAUSED_CREDITS, Phase.FAILED):
            return _detail(400, "Batch is not paused.")
        batch.job.resume(self.now)
        return json_response(
            {"batch_id": batch.batch_id, "status": "processing", "message": "Batch resumed."}
        )

    def views(self) -> list[JobView]:
        out = []
        for b in self.batches.values():
            p = b.job.progress(self.now)
            out.append(
                JobView(b.batch_id, _STATUS[p.phase], p.total, p.processed, p.succeeded, p.failed)
            )
        return out


def _read_csv(raw: bytes) -> tuple[str | None, list[str]]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return "The file must be UTF-8 encoded CSV.", []
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if any(len([c for c in row if c.strip()]) > 1 for row in rows):
        return "The CSV must have exactly one column (handle or email).", []
    values = [next(c.strip() for c in row if c.strip()) for row in rows]
    if values and values[0].lower() in _HEADERS:
        values = values[1:]
    if not values:
        return "The submitted file is empty.", []
    return None, values
