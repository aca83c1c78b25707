"""Liveness, readiness and metrics for orchestrators and Prometheus."""

from __future__ import annotations

from aiohttp import web

from enrichwatch.errors import EnrichwatchError
from receiver.keys import SERVICES


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the database takes a write and its schema is the one this code expects."""
    store = request.config_dict[SERVICES].store
    try:
        await store.probe_writable()
        migrated = await store.is_migrated()
    except (EnrichwatchError, OSError) as exc:
        return web.json_response({"status": "unavailable", "reason": str(exc)}, status=503)
    if not migrated:
        return web.json_response(
            {"status": "unavailable", "reason": "database schema is not up to date"}, status=503
        )
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    services = request.config_dict[SERVICES]
    store = services.store
    services.metrics.observe_backlog(
        await store.open_jobs(), await store.unfinished_work(), store.clock()
    )
    body = services.metrics.render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})
