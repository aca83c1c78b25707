"""Building the aiohttp application and serving it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from aiohttp import web

from enrichwatch.config import listen_url
from enrichwatch.runtime import Services
from enrichwatch.store.holders import RECEIVER, LeaseHolder, owner_id, running_notes
from receiver import api, health, hooks, notifications, openapi
from receiver.dashboard import add_dashboard
from receiver.errors import answering_errors_in_json
from receiver.keys import PUBLIC_URL, SERVICES
from receiver.middleware import observe, require_api_token

log = structlog.get_logger("enrichwatch.receiver")


def create_app(services: Services, public_url: str | None = None) -> web.Application:
    """A pure function of its arguments: routes and middleware, no I/O.

    `public_url` is the base vendors reach us at (for callback URLs); by default the one the
    settings give.
    """
    max_body = services.settings.max_body_bytes
    app = web.Application(middlewares=[observe(services.metrics)], client_max_size=max_body)
    app[SERVICES] = services
    app[PUBLIC_URL] = public_url or services.settings.base_url
    app.router.add_post("/hooks/{vendor}/{token}", hooks.receive_callback)
    # Some vendors' forms add a trailing slash to the URL they are given.
    app.router.add_post("/hooks/{vendor}/{token}/", hooks.receive_callback)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/metrics", health.metrics)
    # The API document is public (it holds no data); the routes it describes are not.
    app.router.add_get(openapi.DOCUMENT_PATH, openapi.serve_document)

    # The token check runs only for the API, not on the callback hot path.
    api_app = web.Application(middlewares=[require_api_token], client_max_size=max_body)
    api_app.router.add_post("/jobs", api.create_job)
    api_app.router.add_get("/jobs", api.list_jobs)
    api_app.router.add_get("/jobs/{job_id}", api.get_job)
    api_app.router.add_get("/jobs/{job_id}/events", api.list_events)
    api_app.router.add_get("/jobs/{job_id}/results", api.job_results)
    api_app.router.add_post("/jobs/{job_id}/check", api.check_job)
    api_app.router.add_post("/jobs/{job_id}/resume", api.resume_job)
    api_app.router.add_post("/jobs/{job_id}/reprocess", api.reprocess_job)
    api_app.router.add_post("/jobs/{job_id}/fetch", api.fetch_results_again)
    api_app.router.add_post("/vendors/{vendor}/check", api.check_vendor_jobs)
    notifications.add_routes(api_app)
    app.add_subapp("/api/", api_app)
    add_dashboard(app)
    return app


@asynccontextmanager
async def serving(services: Services, host: str, port: int) -> AsyncIterator[str]:
    """Serve until the block exits, then stop accepting and let in-flight requests finish.

    Yields the URL actually bound (port 0 picks a free port).
    """
    sock = socket.create_server((host, port), family=_family(host), reuse_port=False)
    bound_url = listen_url(host, sock.getsockname()[1])
    settings = services.settings
    public_url = settings.base_url if settings.public_url is not None else bound_url
    runner = web.AppRunner(
        create_app(services, public_url),
        handle_signals=False,
        access_log=None,
        # aiohttp waits this long for in-flight requests to end, then as long again for the
        # ones it cut off (a download to a slow client goes on until then): half each keeps
        # the whole wait within the setting.
        shutdown_timeout=settings.shutdown_timeout / 2,
    )
    with contextlib.ExitStack() as held:
        held.callback(sock.close)
        await services.store.record_service_url(public_url)
        _warn_of_other_receivers(services, bound_url)
        holder = LeaseHolder.acquire(services.store.path, f"{RECEIVER}:{owner_id()}", bound_url)
        held.callback(holder.release)
        await runner.setup()
        server = runner.server
        assert server is not None  # set by setup()
        try:
            # Our own listener rather than a SockSite, so each connection can answer in JSON
            # even what aiohttp answers by itself.
            listener = await asyncio.get_running_loop().create_server(
                lambda: answering_errors_in_json(server()), sock=sock, backlog=128
            )
            try:
                yield bound_url
            finally:
                listener.close()
        finally:
            await runner.cleanup()


def _warn_of_other_receivers(services: Services, bound_url: str) -> None:
    """Two services on one file are a mistake the README warns of, but nothing stops them
    working: say so at start rather than refuse, so a rolling restart still goes through."""
    others = running_notes(services.store.path, RECEIVER)
    if others:
        log.warning(
            "another_receiver_running",
            db=str(services.store.path),
            other_urls=others,
            url=bound_url,
            hint="run one service per database: the last one started names the callback "
            "URL new jobs are given",
        )


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
