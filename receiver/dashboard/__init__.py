"""The dashboard: server-rendered pages over the event log, behind the API token.

Pages live at the root (`/`, `/jobs/{id}`, `/vendors/{vendor}`); the fragments their script
polls for live updates under `/dashboard/`; styles and script under `/static/`."""

from __future__ import annotations

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
    app.router.add_static("/static/", STATIC)


__all__ = ["add_dashboard"]
