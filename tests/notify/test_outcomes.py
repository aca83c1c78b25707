"""Every outcome that notifies, reached the real way (simulator and reconciler), creates its
notification in the transaction of its event and says what it is: a failure's error, a
pause's action to take, a partial set of results, an expiry, a fetch that failed, checks the
vendor refuses, a late callback (when asked for)."""

from __future__ import annotations

import time

import pytest
from pydantic import SecretStr

from enrichwatch.models import VendorName
from enrichwatch.sim import JobProfile, SimConfig
from reconciler.checks import check_job_now
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
    config = sim_with("reprompt", job_failure_rate=1.0, base_seconds=60)
    async with open_world(sim_config=config, notify={"slack_webhook_url": slack.url}) as world:
        job = await submit(world, "reprompt")
        await world.passes(until=lambda: sent(world, job["id"]).get("failed") == "done")
        row = world.job(job["id"])
        assert row["state"] == "failed"
        (message,) = [m for m in slack.messages() if m["text"].startswith("Job failed")]
        text = str(message)
        assert f"Error: {row['error'] or row['vendor_status']}" in text
        assert "reprompt" in text


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
        assert "Top up the account's credits" in action
        assert f"enrichwatch resume {job['id']}" in action
        assert f"{world.url}/api/jobs/{job['id']}/resume" in action
        partial = by_title["Partial results stored (job paused)"]
        assert "these are the results so far" in partial
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
