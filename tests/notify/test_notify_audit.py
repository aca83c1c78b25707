"""Notifications under hostile or unusual input, each against a real far end: job names that
try to inject mail headers or Slack mentions, names outside ASCII, mail servers that drop the
line, cannot check a password just now or find the results too big, Retry-After in every form
a server may send, a 2xx whose body never ends, Slack and webhook URLs that carry secrets,
targets that cannot be requested, and a manual retry that must change nothing when it cannot
work."""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import time
from email.utils import formatdate
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.smtp import AuthResult

from enrichwatch.config import load_settings
from enrichwatch.errors import SettingsError
from tests.conftest import free_port, snapshot
from tests.notify.conftest import SECRET, smtp_settings
from tests.notify.servers import Answer
from tests.notify.test_job_targets import run_cli

TEMPORARY_AUTH_FAILURE = "454 4.7.0 Temporary authentication failure"
MAIL_SIZE_LIMIT = 12_000
"""Bytes: room for a notification's text and HTML, not for 400 rows of results."""


async def finished_job(world, name: str, **extra: Any) -> dict[str, Any]:
    crust = world.sim.crustdata.add_job(20)
    end = crust.job.terminal_at()
    assert end is not None
    await world.sim.advance_to(end + 1)
    job: dict[str, Any] = await world.track("crustdata", crust.batch_id, name=name, **extra)
    return job


def everything_said(world, job_id: int) -> str:
    """What a person or another system can read about the job's notifications: the rows,
    the job's log and the API's list."""
    rows = [dict(r) for r in world.notifications(job_id)]
    return json.dumps(rows) + json.dumps(world.events(job_id))


# -- email ------------------------------------------------------------------------------------


@pytest.fixture
def mailing_world(open_world, mail_server, mail_tls, mail_port):
    """Opens a world whose jobs email ops@example.org through the test's mail server, which it
    starts then (so a test can change the server's behaviour first)."""

    def open_mailing():
        mail_server.start()
        return open_world(
            notify={"email_to": ["ops@example.org"]}, smtp=smtp_settings(mail_tls, mail_port)
        )

    return open_mailing


async def test_a_job_name_with_cr_lf_injects_no_header_and_the_email_goes_out_first_time(
    mailing_world, mail_server
):
    """The API and the CLI refuse such a name now; one stored before they did (written here
    straight into the file) still must not reach the mail's headers."""
    async with mailing_world() as world:
        job = await finished_job(world, "leads")
        conn = sqlite3.connect(world.db)
        with conn:
            conn.execute(
                "UPDATE jobs SET name = ? WHERE id = ?",
                ("leads\r\nBcc: victim@example.org\r\nX-Evil: 1", job["id"]),
            )
        conn.close()
        await world.passes()
        (row,) = world.notifications(job["id"])
        assert (row["state"], row["attempts"]) == ("done", 1)
        (mail,) = mail_server.handler.messages
        assert mail["Bcc"] is None
        assert mail["X-Evil"] is None
        assert mail["To"] == "ops@example.org"
        assert "\n" not in mail["Subject"]
        assert "\r" not in mail["Subject"]
        assert mail["Subject"].startswith(f"Results ready: crustdata job {job['id']} (leads")
        assert "victim@example.org" in mail["Subject"]


async def test_a_non_ascii_job_name_reaches_the_mailbox_intact(mailing_world, mail_server):
    name = "Müller \u2013 Café ☕ 東京"
    async with mailing_world() as world:
        job = await finished_job(world, name)
        await world.passes()
        (mail,) = mail_server.handler.messages
        assert mail["Subject"] == f"Results ready: crustdata job {job['id']} ({name})"
        assert f"Job: {job['id']} {name}" in mail.get_body(("plain",)).get_content()


async def test_a_mail_server_that_drops_the_line_mid_data_gets_the_mail_again(
    mailing_world, mail_server
):
    handler = mail_server.handler
    accept = handler.handle_DATA
    dropped: list[bytes] = []

    async def drop_first(server, session, envelope):
        if not dropped:
            dropped.append(envelope.content)
            server.transport.close()
            return "250 never heard"
        return await accept(server, session, envelope)

    handler.handle_DATA = drop_first
    async with mailing_world() as world:
        job = await finished_job(world, "leads")
        await world.passes()
        (row,) = world.notifications(job["id"])
        assert (row["state"], row["attempts"]) == ("done", 2)
        failed, sent = world.events(job["id"])
        assert not failed["dead"]
        assert sent["type"] == "notification.sent"
        (mail,) = handler.messages
        assert f"Message-ID: {mail['Message-ID']}".encode() in dropped[0]


async def test_a_temporary_login_failure_is_retried_not_dead_lettered(mailing_world, mail_server):
    """454 says the server cannot check the password just now (RFC 4954): a later attempt
    logs in. 535, a wrong password, stays dead at once (test_email)."""
    check = mail_server.controller.SMTP_kwargs["authenticator"]
    busy_sessions: list[object] = []

    def busy_first(server, session, envelope, mechanism, auth_data):
        """Every mechanism the client tries on its first connection gets 454."""
        if not busy_sessions or busy_sessions[0] is session:
            busy_sessions[:1] = [session]
            return AuthResult(success=False, handled=False, message=TEMPORARY_AUTH_FAILURE)
        return check(server, session, envelope, mechanism, auth_data)

    mail_server.controller.SMTP_kwargs["authenticator"] = busy_first
    async with mailing_world() as world:
        job = await finished_job(world, "leads")
        await world.passes()
        failed, sent = world.events(job["id"])
        assert "454" in failed["error"]
        assert not failed["dead"]
        assert sent["type"] == "notification.sent"
        assert len(mail_server.handler.messages) == 1


async def test_results_the_mail_server_finds_too_big_are_linked_instead(mailing_world, mail_server):
    """Under our attach limit is not under the server's: a 552 for the message with the CSV
    would dead-letter the news that results are ready. The same mail goes out with the link."""
    mail_server.controller.SMTP_kwargs["data_size_limit"] = MAIL_SIZE_LIMIT
    async with mailing_world() as world:
        crust = world.sim.crustdata.add_job(400)
        await world.sim.advance_to(crust.job.terminal_at() + 1)
        job = await world.track("crustdata", crust.batch_id)
        await world.passes()
        (row,) = world.notifications(job["id"])
        assert (row["state"], row["attempts"]) == ("done", 1)
        assert world.job(job["id"])["results_count"] > 0
        (mail,) = mail_server.handler.messages
        assert list(mail.iter_attachments()) == []
        text = mail.get_body(("plain",)).get_content()
        assert "too large for the mail server" in text
        link = f"{world.url}/jobs/{job['id']}/results?format=csv"
        assert text.splitlines()[-1].endswith(
            f"too large for the mail server, so they are not attached; download them from {link}"
        )
        sent = world.events(job["id"])[-1]
        assert sent["type"] == "notification.sent"
        assert sent["attached"] is False


# -- Slack ------------------------------------------------------------------------------------


async def test_a_job_name_cannot_ping_or_link_from_slacks_notification_text(open_world, slack):
    async with open_world(notify={"slack_webhook_url": slack.url}) as world:
        job = await finished_job(world, "<!channel> & <https://evil.example|click>")
        await world.passes()
        (message,) = slack.messages()
        header, facts = message["blocks"][0], message["blocks"][1]
        assert header["text"]["type"] == "plain_text"  # shown as it is, never parsed
        mrkdwn = json.dumps([message["text"], facts])
        assert "<!channel>" not in mrkdwn
        assert "<https://evil.example" not in mrkdwn
        assert message["text"] == (
            f"Results ready: crustdata job {job['id']} "
            "(&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;)"
        )


async def test_a_malformed_slack_url_is_dead_at_once_and_never_shown(open_world):
    secret_url = "http://127.0.0.1:99999/services/T0/B0/sekret-token"
    async with open_world(notify={"slack_webhook_url": secret_url}) as world:
        job = await finished_job(world, "leads")
        await world.passes()
        (row,) = world.notifications(job["id"])
        assert (row["state"], row["attempts"]) == ("dead", 1)
        assert "not a valid URL" in row["last_error"]
        listed = await world.api("GET", f"/api/notifications?job_id={job['id']}")
        for text in (everything_said(world, job["id"]), json.dumps(listed)):
            assert "sekret-token" not in text
            assert "/services/" not in text


# -- Retry-After ------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["slack", "webhook"])
async def test_a_retry_after_given_as_an_http_date_is_honoured(
    open_world, slack, receiver, channel
):
    endpoint = slack if channel == "slack" else receiver
    in_two_hours = formatdate(time.time() + 7200, usegmt=True)
    endpoint.script = [Answer(503, "busy", {"Retry-After": in_two_hours})]
    notify = (
        {"slack_webhook_url": slack.url}
        if channel == "slack"
        else {"webhook_url": receiver.url, "webhook_secret": SECRET}
    )
    async with open_world(notify=notify) as world:
        job = await finished_job(world, "leads")
        await world.passes(until=lambda: len(endpoint.requests) == 1)
        (row,) = world.notifications(job["id"])
        assert row["state"] == "pending"
        assert row["next_attempt_at"] - row["updated_at"] >= 7200 - 60
        await world.passes()
        assert len(endpoint.requests) == 2
        assert world.notifications(job["id"])[0]["state"] == "done"


@pytest.mark.parametrize("value", ["1e999", "inf", "nan", "-5", "soon"])
async def test_a_retry_after_that_is_no_time_falls_back_to_backoff(open_world, receiver, value):
    receiver.script = [Answer(429, "slow down", {"Retry-After": value})]
    async with open_world(
        notify={"webhook_url": receiver.url, "webhook_secret": SECRET, "retry_base": 5.0}
    ) as world:
        job = await finished_job(world, "leads")
        await world.passes(until=lambda: len(receiver.requests) == 1)
        (row,) = world.notifications(job["id"])
        assert row["state"] == "pending"
        assert row["lease_owner"] is None
        wait = row["next_attempt_at"] - row["updated_at"]
        assert math.isfinite(wait)
        assert 0 < wait <= 10
        listed = await world.api("GET", "/api/notifications?state=pending")
        assert [n["id"] for n in listed["notifications"]] == [row["id"]]
        await world.passes()
        assert len(receiver.processed) == 1
        assert world.notifications(job["id"])[0]["state"] == "done"


async def test_a_retry_after_of_years_is_held_to_a_day(open_world, slack):
    slack.script = [Answer(429, "rate_limited", {"Retry-After": str(10 * 365 * 86400)})]
    async with open_world(notify={"slack_webhook_url": slack.url}) as world:
        job = await finished_job(world, "leads")
        await world.passes(until=lambda: len(slack.requests) == 1)
        (row,) = world.notifications(job["id"])
        assert 86400 <= row["next_attempt_at"] - row["updated_at"] <= 86400 + 60
        await world.passes()
        assert len(slack.messages()) == 1


# -- webhooks ---------------------------------------------------------------------------------


async def test_a_webhook_accepted_with_2xx_is_sent_even_if_its_answer_never_ends(open_world):
    """The receiver said 200: the event is delivered, however long the rest of the answer takes;
    waiting for it would time out, count as a failure and send the event again."""
    requests: list[str] = []
    release = asyncio.Event()

    async def accept_then_stall(request: web.Request) -> web.StreamResponse:
        requests.append(request.headers["webhook-id"])
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        await response.write(b"accepted, now streaming a very long receipt")
        await release.wait()
        return response

    app = web.Application()
    app.router.add_post("/events", accept_then_stall)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        url = f"http://127.0.0.1:{port}/events"
        async with open_world(
            notify={"webhook_url": url, "webhook_secret": SECRET, "timeout": 0.5}
        ) as world:
            job = await finished_job(world, "leads")
            await world.passes(until=lambda: len(world.events(job["id"])) >= 1)
            (row,) = world.notifications(job["id"])
            assert (row["state"], row["attempts"]) == ("done", 1)
            assert [e["type"] for e in world.events(job["id"])] == ["notification.sent"]
            assert len(requests) == 1
    finally:
        release.set()
        await runner.cleanup()


# -- webhook URLs with credentials --------------------------------------------------------------


async def test_credentials_in_a_webhook_url_never_reach_the_log_or_the_api(open_world, receiver):
    with_password = receiver.url.replace("http://", "http://hook-user:pw-sekret@")
    dead_port = f"http://hook-user:pw-sekret@127.0.0.1:{free_port()}/events"
    async with open_world(notify={"webhook_url": with_password, "webhook_secret": SECRET}) as world:
        delivered = await finished_job(world, "leads")
        unreachable = await finished_job(world, "other", notify={"webhook": dead_port})
        await world.passes(until=lambda: len(world.events(unreachable["id"])) >= 1)
        (event,) = receiver.processed.values()
        assert event["data"]["job_id"] == delivered["id"]
        sent = world.events(delivered["id"])[-1]
        assert sent["type"] == "notification.sent"
        assert sent["url"] == receiver.url
        (failed,) = world.events(unreachable["id"])
        assert "cannot reach" in failed["error"]
        listed = await world.api("GET", "/api/notifications")
        for job in (delivered, unreachable):
            assert "pw-sekret" not in everything_said(world, job["id"])
        assert "pw-sekret" not in json.dumps(listed)


# -- manual retry -------------------------------------------------------------------------------


def test_cli_retry_without_a_database_is_one_line_and_creates_nothing(tmp_path):
    db = tmp_path / "missing.db"
    env = {"ENRICHWATCH_DB": str(db), "ENRICHWATCH_LOG_LEVEL": "error"}
    refused = run_cli("notifications", "retry", "1", env=env)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"Error: no enrichwatch database at {db} (set ENRICHWATCH_DB or --config)"
    )
    assert not db.exists()


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:99999/services/x", "http://[::1/services/x", "http://h:port/x"]
)
async def test_a_target_url_that_cannot_be_requested_is_refused_and_changes_nothing(
    open_world, url
):
    async with open_world(notify={"webhook_secret": SECRET}) as world:
        before = snapshot(world.db)
        for channel in ("slack", "webhook"):
            body = {"vendor": "crustdata", "vendor_job_id": "b-1", "notify": {channel: url}}
            answer = await world.api("POST", "/api/jobs", body, status=422)
            assert answer["error"]["code"] == "invalid_notify"
            assert f"notify {channel}:" in answer["error"]["message"]
        assert snapshot(world.db) == before


async def test_an_address_with_a_line_break_is_refused_and_changes_nothing(
    open_world, mail_tls, mail_port
):
    async with open_world(smtp=smtp_settings(mail_tls, mail_port)) as world:
        before = snapshot(world.db)
        for address in ("ops@example.org\n", "ops@example.org\r\n"):
            body = {"vendor": "crustdata", "vendor_job_id": "b-1", "notify": {"email": [address]}}
            answer = await world.api("POST", "/api/jobs", body, status=422)
            assert answer["error"]["code"] == "invalid_notify"
            assert "not an email address" in answer["error"]["message"]
        assert snapshot(world.db) == before


def test_settings_refuse_a_recipient_with_a_line_break(tmp_path):
    with pytest.raises(SettingsError, match="not an email address"):
        load_settings(
            db=tmp_path / "x.db",
            smtp={"host": "127.0.0.1"},
            notify={"email_to": ["ops@example.org\n"]},
        )


async def test_a_mail_server_that_answers_each_command_just_in_time_is_cut_off_and_retried(
    open_world, mail_server, mail_tls, mail_port
):
    """A server that delays every reply (a tarpit) never trips the per-command timeout, and
    one send could go on for minutes, past its lease, when the notification would be taken
    up again and the mail sent twice. A send is cut off after twice the timeout, which its
    lease outlasts, and retried."""
    # Each reply half a second inside the 1 s timeout; the five of them (MAIL, three RCPT,
    # DATA) not inside twice that, and the cut comes before DATA.
    mail_server.handler.tarpit = 0.5
    mail_server.start()
    recipients = ["ops@example.org", "data@example.org", "growth@example.org"]
    async with open_world(
        notify={"email_to": recipients, "timeout": 1.0},
        smtp=smtp_settings(mail_tls, mail_port),
    ) as world:
        job = await finished_job(world, "leads")

        def email() -> dict[str, Any] | None:
            rows = [r for r in world.notifications(job["id"]) if r["channel"] == "email"]
            return dict(rows[0]) if rows else None

        await world.passes(until=lambda: (email() or {}).get("attempts", 0) >= 1)
        row = email()
        assert row is not None
        assert (row["state"], row["attempts"]) == ("pending", 1)
        assert "took longer than 2 s" in row["last_error"]
        assert mail_server.handler.messages == []

        mail_server.handler.tarpit = 0.0
        await world.passes()
        row = email()
        assert row is not None
        assert (row["state"], row["attempts"]) == ("done", 2)
        assert len(mail_server.handler.messages) == 1
