"""kill -9 of a real `enrichwatch serve` while notifications are claimed and in flight, then
a restart: what the guarantee is, shown for each channel.

The kill comes at a known point, not after a guessed delay: each far end holds its request
open (Slack and the webhook receiver do not answer, the mail server does not acknowledge
DATA), the test waits until all three have the message and the three outbox rows are leased
but not sent, and kills then.

Guarantee: at least once. The message in flight at the kill was never acknowledged, so on
restart it is sent again: each far end receives it twice and accepts it once (the first
connection died unanswered). Where the far end did process the first copy before the crash,
the webhook receiver would recognise the second by its unchanged `webhook-id` (shown: both
copies carry the same id), an email carries the same Message-ID, and Slack, having no key,
would show it twice."""

from __future__ import annotations

import json

import aiohttp
import pytest_asyncio

from enrichwatch.sim import SimConfig, SimServer
from tests.conftest import eventually, free_port, query, started
from tests.notify.conftest import MAIL_PASSWORD, MAIL_USER, SECRET
from tests.notify.servers import HANG
from tests.test_reconciler_crash import AUTH, api, serve_env


@pytest_asyncio.fixture
async def sim():
    async with SimServer(SimConfig(seed=3, speed=300)) as server:
        yield server


def notify_env(slack, receiver, mail_tls, mail_port) -> dict[str, object]:
    return {
        "work_interval": 0.2,
        "notify__slack_webhook_url": slack.url,
        "notify__webhook_url": receiver.url,
        "notify__webhook_secret": SECRET,
        "notify__email_to": json.dumps(["ops@example.org"]),
        "smtp__host": "127.0.0.1",
        "smtp__port": mail_port,
        "smtp__security": "starttls",
        "smtp__username": MAIL_USER,
        "smtp__password": MAIL_PASSWORD,
        "smtp__from": "enrichwatch@example.org",
        "smtp__ca_file": mail_tls.ca_file,
    }


async def test_kill_9_between_claim_and_send_then_restart_delivers_every_channel_once(
    tmp_path, sim, slack, receiver, mail_server, mail_tls, mail_port
):
    db = tmp_path / "crash.db"
    mail_server.start()
    slack.script = [HANG]
    receiver.script = [HANG]
    mail_server.handler.hang.set()
    crust = sim.crustdata.add_job(30)
    await sim.advance_to(crust.job.terminal_at() + 1)
    # One port for both starts: the message's links name where the service listens.
    env = serve_env(sim, db, port=free_port(), **notify_env(slack, receiver, mail_tls, mail_port))

    def rows() -> list:
        return query(db, "SELECT * FROM work WHERE kind = 'notify' ORDER BY id")

    async with started(["serve"], env, tmp_path / "serve.log") as service:
        async with aiohttp.ClientSession() as http:
            job = await api(
                http,
                "POST",
                f"{service.url}/api/jobs",
                {"vendor": "crustdata", "vendor_job_id": crust.batch_id},
            )
        await eventually(
            lambda: slack.requests and receiver.requests and mail_server.handler.in_data.is_set(),
            30,
            "every channel has the message in flight",
        )
        in_flight = rows()
        assert len(in_flight) == 3
        assert all(r["state"] == "pending" and r["lease_owner"] for r in in_flight)
        assert all(r["attempts"] == 1 for r in in_flight)
        retry = f"{service.url}/api/notifications/{in_flight[0]['id']}/retry"
        async with aiohttp.ClientSession() as http, http.post(retry, headers=AUTH) as busy:
            assert busy.status == 409
            assert "being sent right now" in (await busy.json())["error"]["message"]
        await service.kill()

    assert [r["state"] for r in rows()] == ["pending"] * 3
    async with started(["serve"], env, tmp_path / "serve.log"):
        await eventually(
            lambda: [r["state"] for r in rows()] == ["done"] * 3, 30, "all sent after restart"
        )

    assert [r["attempts"] for r in rows()] == [2, 2, 2]
    # Slack: received twice, the same message, accepted once.
    assert len(slack.requests) == 2
    assert slack.requests[0]["body"] == slack.requests[1]["body"]
    assert slack.requests[0]["answered"] is None
    (message,) = slack.messages()
    assert message["text"].startswith(f"Results ready: crustdata job {job['id']}")
    # Webhook: received twice with one webhook-id; the receiver processes it once.
    ids = {r["headers"]["webhook-id"] for r in receiver.requests}
    assert len(receiver.requests) == 2
    assert len(ids) == 1
    assert list(receiver.processed) == list(ids)
    assert receiver.rejected == []
    # Email: the first DATA was never acknowledged; one message accepted.
    (mail,) = mail_server.handler.messages
    webhook_id = json.loads(rows()[0]["payload"])["webhook_id"]
    assert mail["Message-ID"].endswith("@enrichwatch>")
    assert mail["Subject"] == message["text"]
    events = query(
        db,
        "SELECT type, payload FROM events WHERE job_id = ? AND type LIKE 'notification.%'",
        (job["id"],),
    )
    assert [e["type"] for e in events] == ["notification.sent"] * 3
    assert webhook_id.startswith("msg_")
