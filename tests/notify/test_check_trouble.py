"""Check trouble (a refused key, a vendor that stops answering) belongs to the vendor more
than to any one job: people hear of it once for all the vendor's open jobs, and again only
when a new run of failures begins, while a system on the webhook gets every job's event."""

from __future__ import annotations

import re
import time
from typing import Any

from pydantic import SecretStr

from enrichwatch.models import VendorName
from enrichwatch.serialize import iso
from enrichwatch.sim import JobProfile, SimConfig
from reconciler import reconcile_once
from tests.conftest import query
from tests.notify.conftest import SECRET
from tests.notify.servers import SlackEndpoint
from tests.test_reconciler import INPUTS

HOUR = 3600.0
ECORE_LIST = "GET /api/v1/enrichment/status/"


def slow_ecore() -> SimConfig:
    """eCore jobs that run for days, so they stay open through every failure here."""
    config = SimConfig(seed=7, start_time=time.time())
    config.vendor("ecore").profile = JobProfile(base_seconds=3 * 24 * HOUR, sigma=0.01)
    return config


async def submit(world, notify: dict[str, Any] | None = None) -> int:
    rows, options = INPUTS[VendorName.ECORE]
    body: dict[str, Any] = {"vendor": "ecore", "submit": {"rows": rows, "options": options}}
    if notify is not None:
        body["notify"] = notify
    (job,) = (await world.api("POST", "/api/jobs", body))["jobs"]
    return int(job["id"])


def told(world, job_id: int, channel: str) -> list[str]:
    """The job's notices on `channel`, as outcome names, oldest first."""
    return [row["outcome"] for row in world.notifications(job_id) if row["channel"] == channel]


def failed_at(world, job_id: int) -> list[float]:
    """When each of the job's status checks failed, oldest first."""
    rows = query(
        world.db,
        "SELECT created_at FROM events WHERE job_id = ? AND type = 'vendor.poll_failed' "
        "ORDER BY seq",
        (job_id,),
    )
    return [row["created_at"] for row in rows]


def settled(world, job_ids: list[int], failing: bool) -> bool:
    """Every job's last check failed (or succeeded), and nothing is left to send."""
    jobs_done = all((world.job(job_id)["check_failures"] > 0) is failing for job_id in job_ids)
    return jobs_done and all(row["state"] != "pending" for row in world.notifications())


async def test_a_revoked_key_is_told_to_people_once_and_to_the_webhook_for_every_job(
    open_world, slack, receiver
):
    notify = {"slack_webhook_url": slack.url, "webhook_url": receiver.url, "webhook_secret": SECRET}
    async with open_world(sim_config=slow_ecore(), notify=notify) as world:
        jobs = [await submit(world) for _ in range(3)]
        world.services.settings.ecore.api_key = SecretStr("revoked")
        await world.passes(until=lambda: settled(world, jobs, failing=True))

        (message,) = slack.messages()
        (teller,) = [job for job in jobs if told(world, job, "slack") == ["checks_refused"]]
        assert message["text"].startswith(
            f"Action needed: the vendor refuses our checks: ecore job {teller}"
        )
        assert "2 other open jobs at ecore wait on the same." in str(message)
        for job in jobs:
            if job != teller:
                assert told(world, job, "slack") == []
                assert world.events(job, "notification.covered") == [
                    {
                        "type": "notification.covered",
                        "outcome": "checks_refused",
                        "channel": "slack",
                        "by_job": teller,
                    }
                ]
        events = list(receiver.processed.values())
        assert sorted(event["data"]["job_id"] for event in events) == sorted(jobs)
        assert {event["type"] for event in events} == {"job.checks_refused"}


async def test_a_job_with_its_own_target_is_told_there_and_a_new_refusal_is_news_again(
    open_world, slack
):
    own = await SlackEndpoint().start()
    try:
        async with open_world(
            sim_config=slow_ecore(), notify={"slack_webhook_url": slack.url}
        ) as world:
            shared = [await submit(world) for _ in range(2)]
            apart = await submit(world, notify={"slack": own.url})
            jobs = [*shared, apart]
            settings = world.services.settings.ecore
            key = settings.api_key
            for revocation in (1, 2):
                settings.api_key = SecretStr("revoked")
                await world.passes(until=lambda: settled(world, jobs, failing=True))
                assert len(slack.messages()) == revocation
                assert len(own.messages()) == revocation
                assert told(world, apart, "slack") == ["checks_refused"] * revocation
                # Mended, and asked for: every job is checked with the key at once, by one list
                # call, not an hour later at its planned retry.
                settings.api_key = key
                lists = world.sim.stats.count("ecore", ECORE_LIST)
                now = world.sim.clock.now()
                answer = await world.api("POST", "/api/vendors/ecore/check", status=202)
                assert sorted(job["id"] for job in answer["jobs"]) == sorted(jobs)
                await reconcile_once(world.rc)
                assert world.sim.clock.now() == now
                assert settled(world, jobs, failing=False)
                assert world.sim.stats.count("ecore", ECORE_LIST) == lists + 1
            assert [world.job(job)["state"] for job in jobs] == ["running"] * 3
            # The job apart shares no target with the others, so its message counts them too.
            assert "2 other open jobs at ecore wait on the same." in str(own.messages()[0])
    finally:
        await own.stop()


async def test_a_vendor_that_stops_answering_is_told_once_it_has_outlasted_the_safety_net(
    open_world, slack
):
    async with open_world(
        sim_config=slow_ecore(), notify={"slack_webhook_url": slack.url}
    ) as world:
        jobs = [await submit(world) for _ in range(2)]
        world.sim.set_fault("ecore", server_errors=100_000)
        await world.passes(until=lambda: any(told(world, job, "slack") for job in jobs))
        await world.passes(until=lambda: settled(world, jobs, failing=True))

        (teller,) = [job for job in jobs if told(world, job, "slack") == ["checks_failing"]]
        (notice,) = world.notifications(teller)
        failures = failed_at(world, teller)
        began = world.job(teller)["failing_since"]
        assert began == failures[0]
        # Told at the first failure an hour (eCore's longest poll interval) after the first.
        told_at = failures.index(notice["created_at"])
        assert notice["created_at"] - began >= HOUR > failures[told_at - 1] - began

        (message,) = slack.messages()
        text = str(message)
        assert message["text"].startswith(
            f"The vendor is not answering our checks: ecore job {teller}"
        )
        assert re.search(r"has not answered this job's status checks for 1h \d\dm", text)
        assert "HTTP 503" in text
        assert "1 other open job at ecore waits on the same." in text

        # The other job's failures go on; that they were told of is recorded once.
        (other,) = [job for job in jobs if job != teller]
        failed = world.job(other)["check_failures"]
        await world.passes(until=lambda: world.job(other)["check_failures"] >= failed + 3)
        covered = world.events(other, "notification.covered")
        assert [(event["outcome"], event["by_job"]) for event in covered] == [
            ("checks_failing", teller)
        ]
        assert len(slack.messages()) == 1

        failures = failed_at(world, teller)
        shown = await world.api("GET", f"/api/jobs/{teller}")
        assert shown["check_failures"] == len(failures)
        assert shown["failing_since"] == iso(began)

        world.sim.clear_faults("ecore")
        await world.passes(until=lambda: settled(world, jobs, failing=False))
        assert [world.job(job)["failing_since"] for job in jobs] == [None, None]
        shown = await world.api("GET", f"/api/jobs/{teller}")
        assert (shown["check_failures"], shown["failing_since"]) == (0, None)
        assert len(slack.messages()) == 1
