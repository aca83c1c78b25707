"""A world for notification tests: the vendor simulator, enrichwatch (receiver and
reconciler) on the simulator's clock, and the far ends of every channel on real sockets."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import pytest_asyncio

from enrichwatch.config import load_settings
from enrichwatch.runtime import Services, open_services
from enrichwatch.sim import SimConfig, SimServer
from receiver import serving
from receiver.dashboard.auth import COOKIE
from reconciler import Reconciler, reconcile_once
from tests.conftest import API_TOKEN, free_port, query
from tests.notify.servers import MailServer, MailTls, SlackEndpoint, WebhookReceiver

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MAIL_USER, MAIL_PASSWORD = "notifier", "mail-pass-0123"


@dataclass
class World:
    sim: SimServer
    services: Services
    url: str
    rc: Reconciler
    db: Path
    http: aiohttp.ClientSession

    async def api(self, method: str, path: str, body: Any = None, status: int | None = None):
        async with self.http.request(
            method, f"{self.url}{path}", json=body, headers=AUTH
        ) as response:
            if status is not None:
                assert response.status == status, await response.text()
            else:
                assert response.status < 300, await response.text()
            if response.content_type == "application/json":
                return await response.json()
            return await response.text()

    async def open_as_person(self, url: str) -> tuple[str, str]:
        """Open a link from a message as a person in a browser: not logged in to the
        dashboard, sent to its login form, which takes the API token and sends them back to
        the link. Returns the content type and body they get there."""
        async with self.http.get(url, allow_redirects=False) as response:
            assert response.status == 303, await response.text()
            login = response.headers["Location"]
        assert login.startswith("/login?next=")
        (back,) = parse_qs(urlsplit(login).query)["next"]
        form = {"token": API_TOKEN, "next": back}
        async with self.http.post(
            f"{self.url}/login", data=form, allow_redirects=False
        ) as response:
            assert response.status == 303, await response.text()
            cookie = response.cookies[COOKIE].value
            assert f"{self.url}{response.headers['Location']}" == url
        async with self.http.get(url, headers={"Cookie": f"{COOKIE}={cookie}"}) as response:
            assert response.status == 200, await response.text()
            return response.content_type, await response.text()

    async def track(self, vendor: str, vendor_job_id: str, **extra: Any) -> dict[str, Any]:
        body = {"vendor": vendor, "vendor_job_id": vendor_job_id, "name": "leads", **extra}
        return await self.api("POST", "/api/jobs", body)

    async def passes(self, until: Callable[[], bool] | None = None, max_passes: int = 400):
        """Reconcile passes, jumping the clock to whatever is due next, until nothing is due
        (or `until()` holds)."""
        for _ in range(max_passes):
            await reconcile_once(self.rc)
            if until is not None and until():
                return
            due = self.next_due()
            if due is None:
                if until is None:
                    return
                raise AssertionError("nothing left to do, and the condition never held")
            await self.sim.advance_to(max(due, self.sim.clock.now()))
        raise AssertionError("did not settle")

    def next_due(self) -> float | None:
        rows = query(
            self.db,
            """SELECT MIN(t) AS t FROM (
                 SELECT MIN(next_check_at) AS t FROM jobs
                  WHERE state NOT IN ('completed', 'failed', 'expired')
                 UNION ALL SELECT MIN(next_attempt_at) FROM work WHERE state = 'pending')""",
        )
        return rows[0]["t"]

    def notifications(self, job_id: int | None = None) -> list[sqlite3.Row]:
        sql = "SELECT *, json_extract(payload, '$.channel') AS channel, "
        sql += "json_extract(payload, '$.outcome') AS outcome FROM work WHERE kind = 'notify'"
        if job_id is None:
            return query(self.db, sql + " ORDER BY id")
        return query(self.db, sql + " AND job_id = ? ORDER BY id", (job_id,))

    def events(self, job_id: int, prefix: str = "notification.") -> list[dict[str, Any]]:
        rows = query(
            self.db,
            "SELECT type, payload FROM events WHERE job_id = ? AND type LIKE ? ORDER BY seq",
            (job_id, prefix + "%"),
        )
        return [{"type": row["type"], **json.loads(row["payload"])} for row in rows]

    def job(self, job_id: int) -> sqlite3.Row:
        (row,) = query(self.db, "SELECT * FROM jobs WHERE id = ?", (job_id,))
        return row


@pytest_asyncio.fixture
async def slack() -> AsyncIterator[SlackEndpoint]:
    endpoint = await SlackEndpoint().start()
    yield endpoint
    await endpoint.stop()


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    endpoint = await WebhookReceiver(SECRET).start()
    yield endpoint
    await endpoint.stop()


@pytest.fixture
def mail_tls(tmp_path: Path) -> MailTls:
    return MailTls.create(tmp_path)


@pytest.fixture
def mail_port() -> int:
    return free_port()


@pytest.fixture
def mail_server(mail_tls: MailTls, mail_port: int):
    """A mail server, not started: a test starts it when it wants it up."""
    server = MailServer(mail_tls, mail_port, user=MAIL_USER, password=MAIL_PASSWORD)
    yield server
    if server.controller._thread is not None:
        server.stop()


def smtp_settings(mail_tls: MailTls, mail_port: int) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": mail_port,
        "security": "starttls",
        "username": MAIL_USER,
        "password": MAIL_PASSWORD,
        "from": "enrichwatch@example.org",
        "ca_file": mail_tls.ca_file,
    }


@pytest.fixture
def open_world(tmp_path: Path):
    """`async with open_world(notify={...}, smtp={...}, sim_config=...) as world`."""

    @asynccontextmanager
    async def opened(
        *, sim_config: SimConfig | None = None, **settings: Any
    ) -> AsyncIterator[World]:
        config = sim_config or SimConfig(seed=5, start_time=time.time())
        async with SimServer(config) as sim:
            overrides = sim.vendor_settings()
            port = free_port()
            notify = {"retry_base": 5.0, **settings.pop("notify", {})}
            loaded = load_settings(
                db=tmp_path / "notify.db",
                api_token=API_TOKEN,
                port=port,
                public_url=f"http://127.0.0.1:{port}",
                notify=notify,
                **overrides,
                **settings,
            )
            async with (
                open_services(loaded, clock=sim.clock.now) as services,
                serving(services, "127.0.0.1", port) as url,
                aiohttp.ClientSession() as http,
            ):
                yield World(sim, services, url, Reconciler(services), loaded.db, http)

    return opened
