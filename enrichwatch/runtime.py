"""Opening everything a running enrichwatch needs, once, in one place, and closing it in
reverse order. The receiver, the reconciler and the CLI receive the resulting `Services`."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from enrichwatch.config import Settings
from enrichwatch.metrics import Metrics
from enrichwatch.models import VendorName
from enrichwatch.store import Store
from enrichwatch.store.holders import RECEIVER, LeaseHolder, owner_id, running_notes
from enrichwatch.store.notifications import NotifyRoutes
from enrichwatch.store.rows import token_digest
from enrichwatch.store.store import Clock
from enrichwatch.vendors import VendorAdapter, adapter_class
from enrichwatch.vendors.base import CreatedHook
from enrichwatch.vendors.budget import RequestBudgets


class CallTally:
    """Counts an adapter's vendor calls, so they can be charged to the job they were made for."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, _endpoint: str) -> None:
        self.count += 1

    def take(self) -> int:
        """The calls counted since the last take."""
        count, self.count = self.count, 0
        return count


class Sender:
    """This process's name on the submit calls it makes (`Store.begin_send`), kept alive by a
    lease-holder file from its first call until the services close: a call that a kill or a
    stop cut off is then known for one at once, by any process on the database, rather than
    only once no call could still be under way (reconciler.submissions)."""

    def __init__(self, db_path: Path) -> None:
        self._db_path = db_path
        self._owner = f"sender:{owner_id()}"
        self._holder: LeaseHolder | None = None

    def owner(self) -> str:
        if self._holder is None:
            self._holder = LeaseHolder.acquire(self._db_path, self._owner)
        return self._owner

    def release(self) -> None:
        if self._holder is not None:
            self._holder.release()
            self._holder = None


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: Store
    metrics: Metrics
    http: aiohttp.ClientSession
    api_token_digest: str | None
    """None until a token is configured or `serve` has generated one: the API then refuses
    every request."""
    generated_api_token: str | None
    """Set only on the start that created the token, so it can be shown exactly once."""
    budgets: RequestBudgets
    """Each vendor account's request budget, shared by every adapter `adapter` builds (and,
    through the store, by every process on the same file)."""
    sender: Sender
    due_now: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when a callback makes a job due, so an in-process reconciler looks at once."""

    async def public_url(self) -> str:
        """The base URL of callback, results and dashboard links: `ENRICHWATCH_PUBLIC_URL`
        when set, else where a receiver serving this database listens (a CLI or a separate
        reconciler cannot know the port `serve` was given): the one that started last, or,
        once it has stopped, one still running; else where one last listened, else
        HOST:PORT."""
        if self.settings.public_url is not None:
            return self.settings.base_url
        recorded = await self.store.service_url()
        running = running_notes(self.store.path, RECEIVER)
        if running and recorded not in running:
            return running[0]
        return recorded or self.settings.base_url

    def adapter(
        self,
        vendor: VendorName,
        on_call: Callable[[str], None] | None = None,
        on_created: CreatedHook | None = None,
    ) -> VendorAdapter:
        """An adapter for `vendor` whose calls are counted in the metrics and, when given,
        reported to `on_call` (to charge them to the job they were made for); `on_created`
        hears the id of a job a submission makes before the submission is done."""
        calls, failures = self.metrics.vendor_calls, self.metrics.vendor_call_failures

        def count(name: VendorName, endpoint: str) -> None:
            calls.labels(name.value, endpoint).inc()
            if on_call is not None:
                on_call(endpoint)

        def count_failure(name: VendorName, endpoint: str, answer: str) -> None:
            failures.labels(name.value, endpoint, answer).inc()

        return adapter_class(vendor)(
            self.settings.vendor(vendor),
            self.http,
            on_call=count,
            on_failure=count_failure,
            on_created=on_created,
            budgets=self.budgets,
        )


@asynccontextmanager
async def open_services(
    settings: Settings,
    *,
    clock: Clock = time.time,
    issue_api_token: bool = False,
    upgrade: bool = True,
) -> AsyncIterator[Services]:
    """Everything opened once; `issue_api_token` (for the serving process) generates and
    stores an API token when none is configured or stored yet; `upgrade` is `Store`'s."""
    async with AsyncExitStack() as stack:
        store = Store(settings.db, clock=clock, upgrade=upgrade)
        store.notify_routes = notify_routes(settings)
        await store.start()
        stack.push_async_callback(store.close)
        # No cookie jar: the session also fetches from third-party storage, where nothing of
        # a vendor's should travel.
        http = await stack.enter_async_context(
            aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        )
        digest, generated = await _api_token(settings, store, issue_api_token)
        sender = Sender(store.path)
        stack.callback(sender.release)
        yield Services(
            settings, store, Metrics(), http, digest, generated, RequestBudgets(store), sender
        )


async def _api_token(
    settings: Settings, store: Store, issue: bool
) -> tuple[str | None, str | None]:
    """The digest requests are checked against, and the token if this start generated it."""
    if settings.api_token is not None:
        return token_digest(settings.api_token.get_secret_value()), None
    generated = None
    if issue:
        candidate = secrets.token_urlsafe(32)
        generated = candidate if await store.ensure_api_token(candidate) else None
    return await store.api_token_digest(), generated


def notify_routes(settings: Settings) -> NotifyRoutes:
    """The configured notification channels, as the store needs them to create outbox rows."""
    return NotifyRoutes(
        channels=settings.notify.global_channels(settings.smtp),
        late_webhooks=settings.notify.late_webhooks,
    )
