"""The reconciler's loops, run by APScheduler. The schedule only says *when to look*; what is
due lives in the database, so a restart (or a second reconciler) loses nothing."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from enrichwatch.runtime import Services
from reconciler.submissions import send_queued_submissions


def owner_id() -> str:
    """Who holds a lease: unique per process, readable in the database."""
    return f"{socket.gethostname()}:{os.getpid()}"


@asynccontextmanager
async def running(services: Services) -> AsyncIterator[AsyncIOScheduler]:
    scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=UTC)
    scheduler.add_job(
        send_queued_submissions,
        "interval",
        seconds=services.settings.work_interval,
        args=[services, owner_id()],
        id="send_queued_submissions",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
    )
    scheduler.start()
    try:
        yield scheduler
    finally:
        scheduler.shutdown(wait=False)
