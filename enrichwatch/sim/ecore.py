"""eCore account and contact enrichment: submit, status, paged results or CSV, pause/resume.

eCore's submit schema is not published, so the sim defines one:
`POST /api/v1/enrichment/submit/` with JSON `{"category": "contact" | "account", "records":
[{column: value, ...}, ...], "criteria": {...}?}` (criteria only for accounts; accepted and
echoed, not expanded into extra rows) answers 201 `{"job_id", "status": "queued",
"category", "total_records", "credits_charged", "submitted_at"}`. Credits are charged up
front at `credits_per_record` a row; a pause refunds the unprocessed rows and a resume
charges them again (402 if the wallet is short). Other choices: errors follow Django REST
Framework (`{"detail": ...}`, field maps); a `page` past the end answers 200 with empty
`data`; `total_records` counts the rows processed so far (every input row once
completed, including `not_enriched` ones with empty values); the job list is a plain
JSON array, newest first; the status body has no progress counters, as documented.
Each token is one user's account, as documented: it lists and reaches only its own jobs,
and another user's job answers 404, as an unknown one does (the wallet is shared).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web

from enrichwatch.sim import records
from enrichwatch.sim.base import JobView, VendorSim, json_response, read_json
from enrichwatch.sim.clock import iso_z
from enrichwatch.sim.config import ECoreConfig
from enrichwatch.sim.jobs import Phase, SimJob
from enrichwatch.sim.limits import SlidingWindow, Verdict

_BASE = "/api/v1/enrichment"
_STATUS = {
    Phase.QUEUED: "queued",
    Phase.RUNNING: "in-progress",
    Phase.PAUSED: "paused",
    Phase.PAUSED_CREDITS: "paused",
    Phase.COMPLETED: "completed",
    Phase.FAILED: "failed",
    Phase.STOPPED: "failed",
}
ACCOUNT_COLUMNS = (
    "company_name",
    "company_domain",
    "industry",
    "revenue",
    "employees",
    "naics_code",
    "sic_code",
)
CONTACT_COLUMNS = (
    "first_name",
    "last_name",
    "contact_email",
    "contact_mobile_phone",
    "job_title",
    "linkedin_url",
    "enrichment_source",
    "name_match_status",
    "still_in_company_status",
    "enrichment_status",
)


@dataclass
class ECoreJob:
    job_id: str
    category: str
    rows: list[dict[str, Any]]
    criteria: dict[str, Any] | None
    job: SimJob
    charged_rows: int
    account: str


def _detail(status: int, detail: str) -> web.Response:
    return json_response({"detail": detail}, status)


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(value, 2)


class ECoreSim(VendorSim):
    name = "ecore"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.jobs: dict[str, ECoreJob] = {}
        self.quota = SlidingWindow(86_400.0)

    @property
    def cfg(self) -> ECoreConfig:
        return cast(ECoreConfig, self.config)

    def add_routes(self, router: web.UrlDispatcher, prefix: str) -> None:
        base = prefix + _BASE
        router.add_post(base + "/submit/", self._submit)
        router.add_get(base + "/status/", self._list)
        router.add_get(base + "/status/{id}/", self._status)
        router.add_get(base + "/result/{id}/", self._result)
        router.add_post(prefix + "/api/v1/enrichment-control/", self._control)

    async def authenticate(self, request: web.Request) -> web.StreamResponse | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != self.cfg.auth_scheme.lower() or not token:
            return _detail(401, "Authentication credentials were not provided.")
        if token.strip() not in (self.cfg.api_key, *self.cfg.other_account_keys):
            return _detail(401, "Invalid token.")
        return None

    def _account(self, request: web.Request) -> str:
        """The caller's account: its token, which `authenticate` has let through."""
        return request.headers["Authorization"].partition(" ")[2].strip()

    def _job(self, request: web.Request, job_id: str) -> ECoreJob | None:
        """The job, if the caller's account may see it."""
        ejob = self.jobs.get(job_id)
        return ejob if ejob is not None and ejob.account == self._account(request) else None

    def check_limit(self, request: web.Request, endpoint: str) -> web.Response | None:
        limited = super().check_limit(request, endpoint)
        if limited is not None or self.cfg.daily_quota is None:
            return limited
        verdict = self.quota.check(self.name, self.cfg.daily_quota, self.now)
        if verdict.allowed:
            return None
        self.record_violation(endpoint, "quota")
        return self.throttled(max(1, verdict.reset), verdict)

    def throttled(self, retry_after: int, verdict: Verdict | None) -> web.Response:
        response = _detail(
            429, f"Request was throttled. Expected available in {retry_after} seconds."
        )
        response.headers["Retry-After"] = str(retry_after)
        return response

    def not_found(self) -> web.Response:
        return _detail(404, "Not found.")

    def _insufficient(self, required: float) -> web.Response | None:
        wallet = self.cfg.wallet
        if wallet is None or wallet >= required:
            return None
        need, have = _number(required), _number(wallet)
        return json_response(
            {
                "error": f"Insufficient credits. You need {need} credits but have {have}.",
                "required": need,
                "balance": have,
            },
            402,
        )

    def _charge(self, rows: int) -> None:
        if self.cfg.wallet is not None:
            self.cfg.wallet -= rows * self.cfg.credits_per_record

    # -- submit ------------------------------------------------------------------------

    async def _submit(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            return _detail(400, "JSON parse error - expected an object.")
        errors: dict[str, Any] = {}
        category = body.get("category")
        if category is None:
            errors["category"] = ["This field is required."]
        elif category not in ("contact", "account"):
            errors["category"] = [f'"{category}" is not a valid choice.']
        rows = body.get("records")
        if not isinstance(rows, list):
            errors["records"] = ["This field is required." if rows is None else "Expected a list."]
        elif not rows:
            errors["records"] = ["This list may not be empty."]
        else:
            bad = {
                str(i): ["Expected a dictionary of items."]
                for i, r in enumerate(rows)
                if not isinstance(r, dict)
            }
            if bad:
                errors["records"] = bad
        criteria = body.get("criteria")
        if criteria is not None and (not isinstance(criteria, dict) or category != "account"):
            errors["criteria"] = ["criteria is only allowed, as an object, for account enrichment."]
        if errors:
            return json_response(errors, 400)
        assert isinstance(rows, list)
        assert isinstance(category, str)
        cost = len(rows) * self.cfg.credits_per_record
        short = self._insufficient(cost)
        if short is not None:
            return short
        self._charge(len(rows))
        ejob = self.add_job(
            rows, category=category, criteria=criteria, account=self._account(request)
        )
        return json_response(
            {
                "job_id": ejob.job_id,
                "status": "queued",
                "category": category,
                "total_records": len(rows),
                "credits_charged": _number(cost),
                "submitted_at": iso_z(ejob.job.created_at),
            },
            201,
        )

    def add_job(
        self,
        rows: list[dict[str, Any]],
        *,
        category: str = "contact",
        criteria: dict[str, Any] | None = None,
        account: str | None = None,
    ) -> ECoreJob:
        """A job of `account` (a token; by default the configured key's)."""
        job, job_id = self.new_job(len(rows))
        ejob = ECoreJob(
            job_id, category, rows, criteria, job, len(rows), account or self.cfg.api_key
        )
        self.jobs[job_id] = ejob
        return ejob

    # -- status ------------------------------------------------------------------------

    def status_body(self, ejob: ECoreJob) -> dict[str, Any]:
        now = self.now
        return {
            "job_id": ejob.job_id,
            "status": _STATUS[ejob.job.progress(now).phase],
            "submitted_at": iso_z(ejob.job.created_at),
            "updated_at": iso_z(ejob.job.last_change(now)),
        }

    async def _status(self, request: web.Request) -> web.Response:
        ejob = self._job(request, request.match_info["id"])
        if ejob is None:
            return self.not_found()
        return json_response(self.status_body(ejob))

    async def _list(self, request: web.Request) -> web.Response:
        account = self._account(request)
        own = [j for j in reversed(self.jobs.values()) if j.account == account]
        return json_response([self.status_body(j) for j in own])

    # -- results -----------------------------------------------------------------------

    async def _result(self, request: web.Request) -> web.StreamResponse:
        ejob = self._job(request, request.match_info["id"])
        if ejob is None:
            return self.not_found()
        query = request.query
        report_type = query.get("report_type", "json")
        if report_type not in ("json", "csv"):
            return json_response({"error": "report_type must be json or csv."}, 400)
        progress = ejob.job.progress(self.now)
        if progress.phase not in (Phase.COMPLETED, Phase.PAUSED, Phase.PAUSED_CREDITS):
            return json_response({"error": "Results not ready."}, 400)
        if report_type == "csv":
            return await self._csv(request, ejob, progress.processed)
        try:
            page, page_size = int(query.get("page", "1")), int(query.get("page_size", "50"))
        except ValueError:
            return json_response({"error": "page and page_size must be integers."}, 400)
        if page < 1:
            return json_response({"error": "page must be at least 1."}, 400)
        if not 1 <= page_size <= 200:
            return json_response({"error": "page_size must be between 1 and 200."}, 400)
        start = (page - 1) * page_size
        stop = min(progress.processed, start + page_size)
        data = [self._row(ejob, pos) for pos in range(start, stop)]
        for row in data:
            row.pop("enrichment_status", None)
        return json_response(
            {
                "job_id": ejob.job_id,
                "total_records": progress.processed,
                "page": page,
                "page_size": page_size,
                "data": data,
            }
        )

    def _row(self, ejob: ECoreJob, pos: int) -> dict[str, Any]:
        found = not ejob.job.is_failed(pos)
        return records.ecore_row(ejob.job.key, pos, ejob.category, ejob.rows[pos], found)

    async def _csv(self, request: web.Request, ejob: ECoreJob, count: int) -> web.StreamResponse:
        imported = sorted({f"imported_{k}" for row in ejob.rows for k in row})
        sample = records.ecore_row(ejob.job.key, 0, ejob.category, ejob.rows[0], True)
        canonical = [c for c in (*ACCOUNT_COLUMNS, *CONTACT_COLUMNS) if c in sample]
        rest = sorted(k for k in sample if k not in imported and k not in canonical)
        columns = imported + canonical + rest
        filename = f"enrichment_results_{ejob.job_id}.csv"
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/csv",
                "Content-Disposition": f'attachment; filename="{filename}"',
            }
        )
        await response.prepare(request)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for pos in range(count):
            writer.writerow(self._row(ejob, pos))
            if pos % 500 == 499:
                await response.write(buffer.getvalue().encode())
                buffer.seek(0)
                buffer.truncate()
        await response.write(buffer.getvalue().encode())
        await response.write_eof()
        return response

    # -- control -----------------------------------------------------------------------

    async def _control(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            return _detail(400, "JSON parse error - expected an object.")
        errors: dict[str, list[str]] = {}
        if not body.get("csv_file_id"):
            errors["csv_file_id"] = ["This field is required."]
        action = body.get("action")
        if action not in ("pause", "resume"):
            errors["action"] = [f'"{action}" is not a valid choice.']
        if errors:
            return json_response(errors, 400)
        ejob = self._job(request, str(body["csv_file_id"]))
        if ejob is None:
            return self.not_found()
        now = self.now
        progress = ejob.job.progress(now)
        if action == "pause":
            if not ejob.job.pause(now):
                return json_response({"error": "Job can only be paused while in-progress."}, 400)
            self._charge(progress.processed - ejob.charged_rows)
            ejob.charged_rows = progress.processed
            return json_response(
                {"job_id": ejob.job_id, "status": "paused", "message": "Job paused."}
            )
        if progress.phase not in (Phase.PAUSED, Phase.PAUSED_CREDITS):
            return json_response({"error": "Only paused jobs can be resumed."}, 400)
        owed = ejob.job.total - ejob.charged_rows
        short = self._insufficient(owed * self.cfg.credits_per_record)
        if short is not None:
            return short
        self._charge(owed)
        ejob.charged_rows = ejob.job.total
        ejob.job.resume(now)
        return json_response(
            {"job_id": ejob.job_id, "status": "in-progress", "message": "Job resumed."}
        )

    def views(self) -> list[JobView]:
        out = []
        for ejob in self.jobs.values():
            p = ejob.job.progress(self.now)
            out.append(
                JobView(ejob.job_id, _STATUS[p.phase], p.total, p.processed, p.succeeded, p.failed)
            )
        return out
