"""The dashboard's pages and the fragments their script polls for live updates."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from enrichwatch.errors import UnknownJobError
from enrichwatch.models import JobState, VendorName
from enrichwatch.notify.message import build_message, watch_again
from enrichwatch.stats import vendor_stats
from enrichwatch.store import JobRecord
from enrichwatch.store.notifications import Outcome
from enrichwatch.vendors import adapter_class
from receiver import api
from receiver.dashboard import auth
from receiver.dashboard.charts import duration_chart, time_series
from receiver.dashboard.preview import results_preview
from receiver.dashboard.render import html
from receiver.errors import error_response
from receiver.ids import parse_id
from receiver.keys import PUBLIC_URL, SERVICES

JOBS_SHOWN = 100
EVENTS_SHOWN = 500


class PageError(Exception):
    """A request the dashboard cannot answer, shown to the person as a page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _common(request: web.Request) -> dict[str, Any]:
    return {"vendors": list(VendorName), "path": request.path}


def error_page(request: web.Request, exc: PageError) -> web.Response:
    return html(
        request,
        "error.html",
        status=exc.status,
        message=exc.message,
        logged_in=True,  # shown only behind the login
        **_common(request),
    )


def not_found_page(request: web.Request, message: str) -> web.Response:
    """The 404 page for a path that is no page; to someone not logged in it offers no
    navigation they could not use."""
    return html(
        request,
        "error.html",
        status=404,
        message=message,
        logged_in=auth.is_logged_in(request),
        **_common(request),
    )


# -- login ------------------------------------------------------------------------------------

# What aiohttp raises for a form body it cannot parse: bytes not in the charset (ValueError), an
# unknown charset (LookupError), broken multipart (ValueError, RuntimeError for an unknown part
# encoding, HttpProcessingError for too many part headers), a body that does not decompress.
_UNREADABLE_FORM = (
    ValueError,
    LookupError,
    RuntimeError,
    HttpProcessingError,
    web.RequestPayloadError,
)


async def login_form(request: web.Request) -> web.Response:
    """The form, or for someone logged in already, the page they were going to: a link or a
    bookmark to the form must not ask again for a token the browser holds."""
    target = auth.safe_next(request.query.get("next"))
    if auth.is_logged_in(request):
        return auth.see_other(target)
    return html(request, "login.html", next=target, error=None)


async def login(request: web.Request) -> web.Response:
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge:
        return html(
            request,
            "login.html",
            status=413,
            next="/",
            error=f"The login form is larger than {request.client_max_size} bytes. "
            "Enter the API token and try again.",
        )
    except _UNREADABLE_FORM:
        return html(
            request,
            "login.html",
            status=400,
            next="/",
            error="The login form could not be read. Enter the API token and try again.",
        )
    token, target = form.get("token", ""), form.get("next", "/")
    token = token.strip() if isinstance(token, str) else ""
    target = auth.safe_next(target if isinstance(target, str) else None)
    try:
        auth.check_token(request, token)
    except auth.LoginRefused as exc:
        return html(request, "login.html", status=401, next=target, error=str(exc))
    response = auth.see_other(target)
    auth.remember(request, response, token)
    return response


async def logout(request: web.Request) -> web.Response:
    response = auth.see_other("/login")
    auth.forget(response)
    return response


# -- jobs -------------------------------------------------------------------------------------


def _filters(request: web.Request) -> tuple[VendorName | None, JobState | None]:
    vendor, state = request.query.get("vendor") or None, request.query.get("state") or None
    try:
        return (
            VendorName(vendor) if vendor else None,
            JobState(state) if state else None,
        )
    except ValueError:
        raise PageError(400, f"No such filter: vendor={vendor!r}, state={state!r}.") from None


async def _jobs_context(request: web.Request) -> dict[str, Any]:
    services = request.config_dict[SERVICES]
    vendor, state = _filters(request)
    jobs = await services.store.list_jobs(vendor=vendor, state=state, limit=JOBS_SHOWN)
    return {
        "jobs": jobs,
        "now": services.store.clock(),
        "vendor": vendor,
        "state": state,
        "states": list(JobState),
        "query": request.query_string,
    }


async def _job_context(request: web.Request) -> dict[str, Any]:
    services = request.config_dict[SERVICES]
    raw = request.match_info["job_id"]
    missing = PageError(404, f"There is no job {raw}.")
    job_id = parse_id(raw)
    if job_id is None:
        raise missing
    try:
        job = await services.store.get_job(job_id)
    except UnknownJobError:
        raise missing from None
    events, event_count = await services.store.recent_events(job.id, limit=EVENTS_SHOWN)
    now = services.store.clock()
    return {
        "job": job,
        "now": now,
        "events": events,
        "event_count": event_count,
        "preview": await results_preview(services.store, job.id),
        "action": _action(request, job, now),
    }


def _action(request: web.Request, job: JobRecord, now: float) -> str | None:
    """What a person has to do for a paused job, and by when, or may do for an expired one,
    in the very words of the notice they were sent about it, so the page and the message
    never tell two stories."""
    if job.state is JobState.EXPIRED:
        return watch_again(job, request.config_dict[PUBLIC_URL])
    if job.state is not JobState.NEEDS_ACTION:
        return None
    message = build_message(
        job,
        Outcome.NEEDS_ACTION,
        base_url=request.config_dict[PUBLIC_URL],
        at=now,
        detail=None,
        trouble=None,
        max_job_age=request.config_dict[SERVICES].settings.max_job_age,
    )
    return message.problem


Context = Callable[[web.Request], Awaitable[dict[str, Any]]]


def _page(template: str, context: Context) -> Handler:
    """A whole page; a request it cannot answer is shown as an error page."""

    async def handler(request: web.Request) -> web.Response:
        try:
            values = await context(request)
        except PageError as exc:
            return error_page(request, exc)
        return html(request, template, **values, **_common(request))

    return auth.page(handler)


def _fragment(template: str, context: Context, error_code: str) -> Handler:
    """The live part of a page, fetched by its script; errors answer as JSON."""

    async def handler(request: web.Request) -> web.Response:
        try:
            values = await context(request)
        except PageError as exc:
            return error_response(exc.status, error_code, exc.message)
        return html(request, template, **values)

    return auth.fragment(handler)


jobs_page = _page("jobs.html", _jobs_context)
jobs_fragment = _fragment("_job_rows.html", _jobs_context, "invalid_request")
job_page = _page("job.html", _job_context)
job_fragment = _fragment("_job_live.html", _job_context, "not_found")

# The browser sends the cookie, not a bearer token; the export is the API's own.
download_results = auth.page(api.job_results)


# -- vendors ----------------------------------------------------------------------------------


@auth.page
async def vendor_page(request: web.Request) -> web.Response:
    raw = request.match_info["vendor"]
    try:
        vendor = VendorName(raw)
    except ValueError:
        return error_page(request, PageError(404, f"There is no vendor {raw!r}."))
    store = request.config_dict[SERVICES].store
    # The same figures as the CLI's `stats`, so the two never disagree.
    (stats,) = [each for each in await vendor_stats(store) if each.vendor is vendor]
    finished = await store.finished_jobs(vendor)
    durations, calls = [], []
    for job in finished:
        assert job.finished_at is not None
        durations.append((job.finished_at, job.finished_at - job.created_at, _job_label(job)))
        calls.append((job.finished_at, job.vendor_calls, _job_label(job)))
    webhooks = adapter_class(vendor).supports_webhooks
    never = await store.jobs_never_called_back(vendor) if webhooks else []
    lost = {job.id for job in never}
    late = await store.late_callback_jobs(vendor) if webhooks else []
    return html(
        request,
        "vendor.html",
        vendor=vendor,
        stats=stats,
        finished=finished,
        duration_chart=duration_chart(durations, "Job duration: submitted to seen finished"),
        calls_chart=time_series(calls, title="Vendor calls per job", unit="calls", y_label="calls"),
        webhooks=webhooks,
        late=[job for job in late if job.id not in lost],
        never=never,
        **_common(request),
    )


def _job_label(job: JobRecord) -> str:
    return f"job {job.id}" + (f" ({job.name})" if job.name else "")
