"""Email through a real aiosmtpd server that requires STARTTLS (a certificate from a CA made
for the test) and a login: exactly one message per outcome, with plain-text and HTML parts and
the results attached as CSV when they fit, else a link."""

from __future__ import annotations

import csv
import io
import re

import pytest

from tests.notify.conftest import MAIL_PASSWORD, MAIL_USER, smtp_settings
from tests.notify.servers import MailServer
from tests.notify.test_outcomes import sent, sim_with, submit
from tests.notify.test_slack import finished_crustdata_job


async def test_smtp_down_at_first_then_up_delivers_one_email_with_the_results_attached(
    open_world, mail_server, mail_tls, mail_port
):
    async with open_world(
        notify={"email_to": ["ops@example.org", "data@example.org"]},
        smtp=smtp_settings(mail_tls, mail_port),
    ) as world:
        job = await finished_crustdata_job(world, total=30)
        # Nobody listens on the mail port yet: the first attempt fails and is retried later.
        await world.passes(until=lambda: len(world.events(job["id"])) == 1)
        (failed,) = world.events(job["id"])
        assert failed["type"] == "notification.failed"
        assert "cannot send through 127.0.0.1" in failed["error"]
        assert not failed["dead"]

        mail_server.start()
        await world.passes()

        (notification,) = world.notifications(job["id"])
        assert (notification["channel"], notification["state"]) == ("email", "done")
        (mail,) = mail_server.handler.messages
        assert mail_server.handler.logins == [MAIL_USER]
        row = world.job(job["id"])
        assert mail["Subject"] == f"Results ready: crustdata job {job['id']} (leads)"
        assert mail["From"] == "enrichwatch@example.org"
        assert mail["To"] == "ops@example.org, data@example.org"
        text = mail.get_body(("plain",)).get_content()
        html = mail.get_body(("html",)).get_content()
        enriched = row["progress_done"] - row["progress_failed"]
        assert f"Enriched / failed / total: {enriched} / {row['progress_failed']} / 30" in text
        assert "Outcome: completed" in text
        results = f"{world.url}/jobs/{job['id']}/results?format=csv"
        assert f"Results: {results}" in text.splitlines()
        assert f"Dashboard: {world.url}/jobs/{job['id']}" in text
        assert f"href='{world.url}/jobs/{job['id']}'" in html
        assert f"href='{results.replace('&', '&amp;')}'" in html
        content_type, _ = await world.open_as_person(results)
        assert content_type == "text/csv"
        (attachment,) = list(mail.iter_attachments())
        assert attachment.get_filename() == f"job-{job['id']}-results.csv"
        records = list(csv.DictReader(io.StringIO(attachment.get_content())))
        assert len(records) == row["results_count"] > 0
        assert [int(r["position"]) for r in records] == list(range(row["results_count"]))
        sent = world.events(job["id"])[-1]
        assert sent["type"] == "notification.sent"
        assert sent["attached"] is True
        assert sent["to"] == ["ops@example.org", "data@example.org"]


async def test_results_over_the_attach_limit_are_linked_not_attached(
    open_world, mail_server, mail_tls, mail_port
):
    mail_server.start()
    async with open_world(
        notify={"email_to": ["ops@example.org"], "attach_limit_bytes": 200},
        smtp=smtp_settings(mail_tls, mail_port),
    ) as world:
        job = await finished_crustdata_job(world, total=30)
        await world.passes()
        (mail,) = mail_server.handler.messages
        assert list(mail.iter_attachments()) == []
        text = mail.get_body(("plain",)).get_content()
        html = mail.get_body(("html",)).get_content()
        assert "larger than 200 bytes, so they are not attached" in text
        link = f"{world.url}/jobs/{job['id']}/results?format=csv"
        assert text.splitlines()[-1].endswith(f"download them from {link}")
        assert f"download them from <a href='{link}'>{link}</a>" in html
        content_type, csv_text = await world.open_as_person(link)
        assert content_type == "text/csv"
        assert len(csv_text.splitlines()) == world.job(job["id"])["results_count"] + 1


async def test_a_refused_recipient_dead_letters_at_once_with_the_servers_reason(
    open_world, mail_server, mail_tls, mail_port
):
    mail_server.handler.refuse = {"nobody@example.org"}
    mail_server.start()
    async with open_world(
        notify={"email_to": ["nobody@example.org"]}, smtp=smtp_settings(mail_tls, mail_port)
    ) as world:
        job = await finished_crustdata_job(world)
        await world.passes()
        (dead,) = world.notifications(job["id"])
        assert dead["state"] == "dead"
        assert dead["attempts"] == 1
        assert "550" in dead["last_error"]
        assert "nobody@example.org" in dead["last_error"]
        assert mail_server.handler.messages == []


async def test_a_recipient_refused_beside_accepted_ones_is_recorded_not_resent(
    open_world, mail_server, mail_tls, mail_port
):
    """The server took the mail for the others: it is sent, and sending it again would repeat
    it to them. The job's log names who did not get it, and why."""
    mail_server.handler.refuse = {"nobody@example.org"}
    mail_server.start()
    async with open_world(
        notify={"email_to": ["ops@example.org", "nobody@example.org"]},
        smtp=smtp_settings(mail_tls, mail_port),
    ) as world:
        job = await finished_crustdata_job(world)
        await world.passes()
        (notification,) = world.notifications(job["id"])
        assert notification["state"] == "done"
        (mail,) = mail_server.handler.messages
        assert mail["To"] == "ops@example.org, nobody@example.org"
        sent = world.events(job["id"])[-1]
        assert sent["type"] == "notification.sent"
        assert sent["to"] == ["ops@example.org"]
        assert list(sent["refused"]) == ["nobody@example.org"]
        assert sent["refused"]["nobody@example.org"].startswith("550")


async def test_a_wrong_password_dead_letters_at_once(open_world, mail_server, mail_tls, mail_port):
    mail_server.start()
    smtp = {**smtp_settings(mail_tls, mail_port), "password": "wrong"}
    async with open_world(notify={"email_to": ["ops@example.org"]}, smtp=smtp) as world:
        job = await finished_crustdata_job(world)
        await world.passes()
        (dead,) = world.notifications(job["id"])
        assert dead["state"] == "dead"
        assert "login refused: 535" in dead["last_error"]
        assert "wrong" not in dead["last_error"]


@pytest.mark.parametrize("security", ["tls", "none"])
async def test_implicit_tls_and_plain_smtp_deliver_too(open_world, mail_tls, mail_port, security):
    server = MailServer(
        mail_tls, mail_port, user=MAIL_USER, password=MAIL_PASSWORD, mode=security
    ).start()
    try:
        smtp = {**smtp_settings(mail_tls, mail_port), "security": security}
        del smtp["username"], smtp["password"]
        async with open_world(notify={"email_to": ["ops@example.org"]}, smtp=smtp) as world:
            job = await finished_crustdata_job(world)
            await world.passes()
            (mail,) = server.handler.messages
            assert mail["Subject"].startswith(f"Results ready: crustdata job {job['id']}")
            assert world.notifications(job["id"])[0]["state"] == "done"
    finally:
        server.stop()


async def test_a_pause_mail_shows_its_commands_as_code_and_shared_calls_in_words(
    open_world, mail_server, mail_tls, mail_port
):
    """Backticks are how Slack shows a command; in HTML they are `<code>`. Three eCore jobs
    at once are checked by list calls, each charged a share of them, and a count such as
    2.6666666666666665 says nothing more to a person than "about 2.7"."""
    mail_server.start()
    config = sim_with("ecore", credit_pause_rate=1.0, base_seconds=60, credit_pause_at=0.5)
    async with open_world(
        sim_config=config,
        notify={"email_to": ["ops@example.org"]},
        smtp=smtp_settings(mail_tls, mail_port),
    ) as world:
        jobs = [await submit(world, "ecore") for _ in range(3)]
        told = {"needs_action": "done", "partial": "done"}
        await world.passes(until=lambda: all(sent(world, job["id"]) == told for job in jobs))
        assert len(mail_server.handler.messages) == 6  # paused, and its results so far
        shared = 0
        for mail in mail_server.handler.messages:
            job_id = int(re.findall(r"ecore job (\d+)", mail["Subject"])[0])
            html = mail.get_body(("html",)).get_content()
            assert f"<code>enrichwatch resume {job_id}</code>" in html
            assert "`" not in html
            text = mail.get_body(("plain",)).get_content()
            (calls,) = [line for line in text.splitlines() if line.startswith("Vendor calls: ")]
            value = calls.removeprefix("Vendor calls: ")
            if value.startswith("about "):
                shared += 1
                assert re.fullmatch(r"about \d+(\.\d)? \(some shared with other jobs\)", value)
            else:
                assert value.isdigit()
        assert shared > 0
        assert all(world.job(job["id"])["vendor_calls"] % 1 for job in jobs)
