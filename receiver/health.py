"""Liveness, readiness and metrics for orchestrators and Prometheus."""

from __future__ import annotations

import structlog
from aiohttp import web

from enrichwatch.errors import EnrichwatchError, StoreError
from receiver.keys import SERVICES

log = structlog.get_logger("enrichwatch.receiver")


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
    """The process's counters always; the backlog gauges when the database can be read. A
    scrape that failed whole would hide the counters that explain why the file cannot be
    read (rejections, 503s); `enrichwatch_database_up` says whether the gauges are there."""
    services = request.config_dict[SERVICES]
    store = services.store
    try:
        backlog = await store.open_jobs(), await store.unfinished_work()
    except StoreError as exc:
        log.warning("metrics_database_unreadable", error=str(exc))
        services.metrics.database_unreadable()
    else:
        services.metrics.observe_backlog(*backlog, store.clock())
    body = services.metrics.render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})
