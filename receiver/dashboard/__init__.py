"""The dashboard: server-rendered pages over the event log, behind the API token.

Pages live at the root (`/`, `/jobs/{id}`, `/vendors/{vendor}`); the fragments their script
polls for live updates under `/dashboard/`; styles and script under `/static/`. Every other
path outside the API, the callbacks, health and metrics is the dashboard's too: a browser
asking for one that is not there gets the dashboard's page saying so, not the JSON error."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler
from yarl import URL

from enrichwatch.errors import UnknownJobError
from receiver.dashboard import auth, views
from receiver.dashboard.render import TEMPLATES, environment
from receiver.errors import ApiError

STATIC = Path(__file__).parent / "static"
_NOT_PAGES = ("/api", "/hooks", "/healthz", "/readyz", "/metrics")
"""Paths for programs, not people, and the paths under them: their 404s stay JSON whoever
asks, and are never redirected (a probe of `/healthz/` must not pass by following one)."""
_MAX_PATH_SHOWN = 200


def add_dashboard(app: web.Application) -> None:
    app[TEMPLATES] = environment()
    app.middlewares.append(pages_not_found)
    app.router.add_get("/", views.jobs_page)
    app.router.add_get("/login", views.login_form)
    app.router.add_post("/login", views.login)
    app.router.add_post("/logout", views.logout)
    app.router.add_get("/jobs/{job_id}", views.job_page)
    app.router.add_get("/jobs/{job_id}/results", views.download_results)
    app.router.add_get("/vendors/{vendor}", views.vendor_page)
    app.router.add_get("/dashboard/jobs", views.jobs_fragment)
    app.router.add_get("/dashboard/jobs/{job_id}", views.job_fragment)
    app.router.add_get("/static/{name}", static_file)


_STATIC_NAME = re.compile(r"[A-Za-z0-9_-]+\.[a-z]+")


async def static_file(request: web.Request) -> web.FileResponse:
    """One of the dashboard's own files, by plain name. A missing one is the 404 every
    unknown route gets (the page, or JSON for a client that asks for no HTML, as the page's
    own style and script requests do), which aiohttp's own static route does not give (it
    answers an empty one)."""
    name = request.match_info["name"]
    path = STATIC / name
    if not _STATIC_NAME.fullmatch(name) or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path)


@web.middleware
async def pages_not_found(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A path of the dashboard's that leads nowhere, typed or followed in a browser, is the
    dashboard's own page saying so, not a JSON error a person has to read; a page's path
    with a slash too many (`/jobs/1/`) is sent to the page. A client that does not ask for
    HTML, and every path of the API, the callbacks, health and metrics, keep the JSON 404
    the receiver gives everywhere else."""
    if not _is_page_path(request.path):
        return await handler(request)
    try:
        return await handler(request)
    except (web.HTTPNotFound, UnknownJobError, ApiError) as exc:
        if isinstance(exc, ApiError) and exc.status != 404:
            raise
        moved = await _without_trailing_slash(request)
        if moved is not None:
            return moved
        if not _asks_for_html(request):
            raise
        return views.not_found_page(request, _not_found(request, exc))


def _not_found(request: web.Request, exc: Exception) -> str:
    """What is missing, in the words the job page uses for a job that is not there."""
    if isinstance(exc, UnknownJobError | ApiError) and "job_id" in request.match_info:
        return f"There is no job {_shown(request.match_info['job_id'])}."
    if isinstance(exc, ApiError):
        return f"{exc.message[:1].upper()}{exc.message[1:]}."
    return f"There is no page at {_shown(request.path)}."


def _is_page_path(path: str) -> bool:
    return not any(path == tree or path.startswith(tree + "/") for tree in _NOT_PAGES)


def _shown(path: str) -> str:
    return path if len(path) <= _MAX_PATH_SHOWN else path[: _MAX_PATH_SHOWN - 1] + "…"


async def _without_trailing_slash(request: web.Request) -> web.Response | None:
    """A redirect to the same path without its trailing slashes, when that is a page (a
    link written with one, a URL pasted with one), else None. Only ever to a plain path on
    this site, as a login's `next` is: `//evil.example/` without its slash is another host."""
    if request.method not in ("GET", "HEAD"):
        return None
    raw_path = request.rel_url.raw_path
    path = raw_path.rstrip("/")
    if not path or path == raw_path:
        return None
    query = request.rel_url.raw_query_string
    target = f"{path}?{query}" if query else path
    if auth.safe_next(target) != target:
        return None
    match = await request.app.router.resolve(request.clone(rel_url=URL(target, encoded=True)))
    if match.http_exception is not None:
        return None
    return web.Response(status=301, headers={"Location": target})


def _asks_for_html(request: web.Request) -> bool:
    """Whether the client names text/html among what it accepts (a browser does, for a page;
    a bare `*/*` is a program's default, not a wish for a page)."""
    for accept in request.headers.getall("Accept", []):
        for media_range in accept.split(","):
            media_type, *parameters = media_range.split(";")
            if media_type.strip().lower() == "text/html" and _quality(parameters) > 0:
                return True
    return False


def _quality(parameters: list[str]) -> float:
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 0.0
    return 1.0


__all__ = ["add_dashboard"]
