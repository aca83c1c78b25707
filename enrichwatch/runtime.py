"""Opening everything a running enrichwatch needs, once, in one place, and closing it in
reverse order. The receiver, the reconciler and the CLI receive the resulting `Services`."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from enrichwatch.config import Settings
from enrichwatch.metrics import Metrics
from enrichwatch.store import Store
from enrichwatch.store.store import Clock, token_digest


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: Store
    metrics: Metrics
    api_token_digest: str
    generated_api_token: str | None
    """Set only on the start that created the token, so it can be shown exactly once."""


@asynccontextmanager
async def open_services(
    settings: Settings, *, clock: Clock | None = None
) -> AsyncIterator[Services]:
    store = Store(settings.db, clock=clock) if clock is not None else Store(settings.db)
    await store.start()
    try:
        generated: str | None = None
        if settings.api_token is not None:
            digest = token_digest(settings.api_token.get_secret_value())
        else:
            candidate = secrets.token_urlsafe(32)
            if await store.ensure_api_token(candidate):
                generated = candidate
            stored = await store.api_token_digest()
            assert stored is not None
            digest = stored
        yield Services(settings, store, Metrics(), digest, generated)
    finally:
        await store.close()
