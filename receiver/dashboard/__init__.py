"""The dashboard: server-rendered pages over the event log, behind the API token.

Pages live at the root (`/`, `/jobs/{id}`, `/vendors/{vendor}`); the fragments their script
polls for live updates under `/dashboard/`; styles and script under `/static/`."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from receiver.dashboard import views
from receiver.dashboard.render import TEMPLATES, environment

STATIC = Path(__file__).parent / "static"


def add_dashboard(app: web.Application) -> None:
    app[TEMPLATES] = environment()
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
    """One of the dashboard's own files, by plain name. A missing one is the JSON 404 every
    unknown route gets, which aiohttp's own static route does not give (it answers an empty
    one)."""
    name = request.match_info["name"]
    path = STATIC / name
    if not _STATIC_NAME.fullmatch(name) or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path)


__all__ = ["add_dashboard"]
