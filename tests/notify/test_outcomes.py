"""Every outcome that notifies, reached the real way (simulator and reconciler), creates its
notification in the transaction of its event and says what it is: a failure's error, a
pause's action to take, a partial set of results, an expiry, a fetch that failed, checks the
vendor refuses, a late callback (when asked for)."""

from __future__ import annotations

import json
import time

import pytest
from pydantic import SecretStr

from enrichwatch.models import VendorName
from enrichwatch.sim import JobProfile, SimConfig
from reconciler.checks import check_job_now
from tests.notify.conftest import SECRET, smtp_settings
from tests.notify.servers import Answer
from tests.notify.test_slack import finished_crustdata_job
from tests.test_reconciler import INPUTS


def sim_with(vendor: str, **profile: float) -> SimConfig:
    config = SimConfig(seed=7, start_time=time.time())
    config.vendor(vendor).profile = JobProfile(**profile)
    return config


async def submit(world, vendor: str) -> dict:
    rows, options = INPUTS[VendorName(vendor)]
    body = {"vendor": vendor, "name": "leads", "submit": {"rows": rows, "options": options}}
    (job,) = (await world.api("POST", "/api/jobs", body))["jobs"]
    return job


def sent(world, job_id: int) -> dict[str, str]:
    """outcome -> state of each slack notification of the job."""
    return {row["outcome"]: row["state"] for row in world.notifications(job_id)}


async def test_a_failed_job_notifies_with_the_vendors_error(open_world, slack):
    config = sim_with("crustdata", job_failure_rate=1.0, base_seconds=60)
    async with open_world(sim_config=config, notify={"slack_webhook_url": slack.url}) as world:
        job = await submit(world, "crustdata")
        await world.passes(until=lambda: sent(world, job["id"]).get("failed") == "done")
        row = world.job(job["id"])
        assert row["state"] == "failed"
        assert row["error"]
        (message,) = [m for m in slack.messages() if m["text"].startswith("Job failed")]
        assert f"Error: {row['error']}" in str(message)


async def test_a_failure_without_a_reason_says_the_vendor_gave_none(open_world, slack):
    """Reprompt says only `failed`: that restates the state, and is no reason to pass on."""
    config = sim_with("reprompt", job_failure_rate=1.0, base_seconds=60)
    async with open_world(sim_config=config, notify={"slack_webhook_url": slack.url}) as world:
        job = await submit(world, "reprompt")
        await world.passes(until=lambda: sent(world, job["id"]).get("failed") == "done")
        row = world.job(job["id"])
        assert (row["state"], row["vendor_status"], row["error"]) == ("failed", "failed", None)
        (message,) = [m for m in slack.messages() if m["text"].startswith("Job failed")]
        problem = message["blocks"][2]["text"]["text"]
        assert problem.startswith("reprompt reported the job failed without giving a reason.")
        assert "Error" not in problem


REPROMPT_RESULTS = "GET /v1/{org}/place_enrichment/jobs"


async def test_a_failed_job_is_told_of_once_the_records_it_finished_are_stored(
    open_world, slack, receiver, mail_server, mail_tls, mail_port
):
    """A failed Reprompt batch serves the records it finished. Told of before they were
    fetched, the failure said none were stored, and nothing said so later; so it waits for
    the fetch, as a completion does, here held up by the vendor's 503 at the first try."""
    mail_server.start()
    config = sim_with("reprompt", job_failure_rate=1.0, base_seconds=60)
    async with open_world(
        sim_config=config,
        notify={
            "slack_webhook_url": slack.url,
            "webhook_url": receiver.url,
            "webhook_secret": SECRET,
            "email_to": ["ops@example.org"],
        },
        smtp=smtp_settings(mail_tls, mail_port),
    ) as world:
        world.sim.set_fault("reprompt", server_errors=2, endpoint=REPROMPT_RESULTS)
        job = await submit(world, "reprompt")
        await world.passes()
        row = world.job(job["id"])
        assert (row["state"], row["results_state"]) == ("failed", "stored")
        assert row["results_count"] > 0
        types = [e["type"] for e in world.events(job["id"], prefix="results.")]
        assert types[0] == "results.fetch_retry"

        assert {(r["channel"], r["outcome"], r["state"]) for r in world.notifications()} == {
            (channel, "failed", "done") for channel in ("email", "slack", "webhook")
        }
        stored = f"{row['results_count']} records"
        (message,) = slack.messages()
        fields = {
            f["text"].split("\n")[0].strip("*"): f["text"].split("\n")[1]
            for f in message["blocks"][1]["fields"]
        }
        assert fields["Results stored"] == str(row["results_count"])
        assert fields["Vendor calls"] == f"{row['vendor_calls']:g}"
        assert f"Its results so far are stored: {stored}." in str(message)
        (event,) = receiver.processed.values()
        assert event["data"]["results_stored"] == row["results_count"]
        assert event["data"]["vendor_calls"] == row["vendor_calls"]
        (mail,) = mail_server.handler.messages
        assert (
            f"Its results so far are stored: {stored}." in mail.get_body(("plain",)).get_content()
        )
        (attachment,) = list(mail.iter_attachments())
        assert len(attachment.get_content().splitlines()) == row["results_count"] + 1


async def test_a_failed_job_whose_records_cannot_be_fetched_is_told_of_then(open_world, slack):
    """The fetch that the failure waits for fails for good: the failure is told then, saying
    so, and the fetch's failure after it, with how to fetch again."""
    config = sim_with("reprompt", job_failure_rate=1.0, base_seconds=60)
    async with open_world(sim_config=config, notify={"slack_webhook_url": slack.url}) as world:
        world.sim.set_fault("reprompt", server_errors=100_000, endpoint=REPROMPT_RESULTS)
        job = await submit(world, "reprompt")
        await world.passes()
        row = world.job(job["id"])
        assert (row["state"], row["results_state"]) == ("failed", "fetch_failed")
        assert sent(world, job["id"]) == {"failed": "done", "fetch_failed": "done"}
        failure, fetch = slack.messages()
        assert failure["text"].startswith("Job failed")
        problem = failure["blocks"][2]["text"]["text"]
        assert "Its results could not be fetched; a message of its own says how" in problem
        assert fetch["text"].startswith("Results could not be fetched")


async def test_a_message_sent_late_tells_the_job_as_it_was_at_its_outcome(open_world, receiver):
    """Slack, a mail server or a webhook receiver can be down for hours. Meanwhile the job
    goes on (here a reprocess drops its results and runs it again); the message, when it
    goes, still tells the failure it is about, not the job as it is by then."""
    receiver.script = [Answer(503, "down")]
    config = sim_with("reprompt", job_failure_rate=1.0, base_seconds=60)
    notify = {"webhook_url": receiver.url, "webhook_secret": SECRET}
    async with open_world(sim_config=config, notify=notify) as world:
        job = await submit(world, "reprompt")
        await world.passes(until=lambda: len(receiver.requests) == 1)
        failed = world.job(job["id"])
        assert failed["results_count"] > 0
        await world.api("POST", f"/api/jobs/{job['id']}/reprocess", {})
        assert world.job(job["id"])["results_count"] == 0
        (first,) = world.notifications(job["id"])
        await world.passes(until=lambda: world.notifications(job["id"])[0]["state"] == "done")

        assert world.notifications(job["id"])[0]["id"] == first["id"]
        event = receiver.processed[receiver.requests[-1]["headers"]["webhook-id"]]
        assert event["type"] == "job.failed"
        assert event["data"]["state"] == "failed"
        assert event["data"]["results_stored"] == failed["results_count"]
        assert event["data"]["vendor_calls"] == failed["vendor_calls"]


async def test_a_pause_for_credits_says_what_to_do_and_its_partial_results_are_announced(
    open_world, slack
):
    config = sim_with("ecore", credit_pause_rate=1.0, base_seconds=60, credit_pause_at=0.5)
    async with open_world(sim_config=config, notify={"slack_webhook_url": slack.url}) as world:
        job = await submit(world, "ecore")
        await world.passes(
            until=lambda: sent(world, job["id"]) == {"needs_action": "done", "partial": "done"}
        )
        row = world.job(job["id"])
        assert row["state"] == "needs_action"
        by_title = {m["text"].split(":")[0]: str(m) for m in slack.messages()}
        action = by_title["Action needed"]
        # eCore's status says only `paused`: no reason, and none is made up of that word.
        assert "Action needed: ecore paused the job without giving a reason. Top up the " in action
        assert "(paused)" not in action
        assert "Top up the account's credits" in action
        assert f"enrichwatch resume {job['id']}" in action
        assert f"{world.url}/api/jobs/{job['id']}/resume" in action
        partial = by_title["Partial results stored (job paused)"]
        assert (
            "The job is paused; these are the results so far. To get the rest, top up the "
            "account's credits (or settle what the vendor asks) at ecore, then resume it: "
            f"`enrichwatch resume {job['id']}`"
        ) in partial
        assert row["results_count"] > 0
        assert f"*Results stored*\\n{row['results_count']}" in partial


async def test_a_job_the_vendor_does_not_know_expires_and_notifies(open_world, slack):
    async with open_world(notify={"slack_webhook_url": slack.url}) as world:
        job = await world.track("crustdata", "no-such-batch")
        await world.passes()
        assert world.job(job["id"])["state"] == "expired"
        (message,) = slack.messages()
        assert message["text"].startswith(f"Job expired: crustdata job {job['id']}")
        assert "the vendor no longer knows this job" in str(message)


async def test_a_fetch_that_fails_notifies_fetch_failed(open_world, slack):
    async with open_world(notify={"slack_webhook_url": slack.url}) as world:
        # Result files from a host that is not allowed: the fetch fails for good.
        world.services.settings.crustdata.download_hosts.clear()
        job = await finished_crustdata_job(world)
        await world.passes()
        assert world.job(job["id"])["results_state"] == "fetch_failed"
        assert sent(world, job["id"]) == {"fetch_failed": "done"}
        (message,) = slack.messages()
        assert message["text"].startswith("Results could not be fetched")
        assert f"fetch them again: `enrichwatch fetch {job['id']}`" in str(message)
        assert f"{world.url}/api/jobs/{job['id']}/fetch" in str(message)


@pytest.mark.parametrize("wanted", [False, True])
async def test_a_late_callback_notifies_once_only_when_asked_for(open_world, slack, wanted):
    async with open_world(
        notify={"slack_webhook_url": slack.url, "late_webhooks": wanted}
    ) as world:
        world.sim.set_callbacks("brightlocal", loss_probability=1.0)
        job = await submit(world, "brightlocal")
        await world.passes()
        row = world.job(job["id"])
        assert row["state"] == "completed"
        assert row["late_webhook_at"] is not None
        outcomes = sent(world, job["id"])
        assert outcomes.pop("completed") == "done"
        assert outcomes == ({"webhook_late": "done"} if wanted else {})
        late = [m for m in slack.messages() if m["text"].startswith("Vendor callback")]
        assert len(late) == (1 if wanted else 0)


async def test_a_revoked_key_is_notified_once_with_what_to_mend(open_world, slack):
    async with open_world(notify={"slack_webhook_url": slack.url}) as world:
        job = await submit(world, "ecore")
        settings = world.services.settings.ecore
        key, settings.api_key = settings.api_key, SecretStr("revoked")
        await world.passes(until=lambda: sent(world, job["id"]) == {"checks_refused": "done"})
        # More refused checks, and a pass that would send what they caused: no second message.
        for _ in range(3):
            await check_job_now(world.rc, job["id"])
        await world.passes(until=lambda: True)
        assert world.job(job["id"])["check_failures"] >= 4

        (message,) = slack.messages()
        text = str(message)
        assert message["text"].startswith(
            f"Action needed: the vendor refuses our checks: ecore job {job['id']}"
        )
        assert "HTTP 401: Invalid token." in text
        assert "`enrichwatch check --vendor ecore`" in text
        assert f"{world.url}/api/vendors/ecore/check" in text

        settings.api_key = key
        await world.passes(until=lambda: sent(world, job["id"]).get("completed") == "done")
        assert world.job(job["id"])["state"] == "completed"
        assert sent(world, job["id"]) == {"checks_refused": "done", "completed": "done"}


async def test_a_fetch_failed_notice_counts_the_calls_the_failed_fetch_made(open_world):
    """Download links that stay expired: the fetch asks for fresh ones, then fails for good.
    Its notice reports the job's vendor calls with those asks in them."""
    async with open_world() as world:
        world.sim.set_fault("crustdata", expire_links=True)
        job = await finished_crustdata_job(world)
        await world.passes()
        row = world.job(job["id"])
        assert row["results_state"] == "fetch_failed"
        assert world.sim.stats.count("crustdata", "GET /batch/{id}") > 1  # fresh links asked
        (told,) = [
            json.loads(r["payload"])["job"]
            for r in world.notifications(job["id"])
            if r["outcome"] == "fetch_failed"
        ]
        assert told["vendor_calls"] == row["vendor_calls"]
