"""Slack: a job reaching its outcome the real way (simulator, reconciler) ends with exactly
one delivered post, whatever the endpoint does first (500s, 429 with Retry-After, a hang), and
the post says what happened: vendor, job, outcome, counts, links."""

from __future__ import annotations

import json

from tests.notify.servers import HANG, Answer


async def finished_crustdata_job(world, total: int = 40) -> dict:
    crust = world.sim.crustdata.add_job(total)
    end = crust.job.terminal_at()
    assert end is not None
    await world.sim.advance_to(end + 1)
    return await world.track("crustdata", crust.batch_id)


async def test_slack_answering_500_twice_then_200_gets_one_message_saying_what_happened(
    open_world, slack
):
    slack.script = [Answer(500, "internal_error"), Answer(500, "internal_error")]
    async with open_world(notify={"slack_webhook_url": slack.url}) as world:
        job = await finished_crustdata_job(world)
        await world.passes()

        row = world.job(job["id"])
        assert row["state"] == "completed"
        assert row["results_state"] == "stored"
        (notification,) = world.notifications(job["id"])
        assert (notification["channel"], notification["outcome"]) == ("slack", "completed")
        assert notification["state"] == "done"
        assert notification["attempts"] == 3
        assert len(slack.requests) == 3
        (message,) = slack.messages()
        events = world.events(job["id"])
        assert [e["type"] for e in events] == [
            "notification.failed",
            "notification.failed",
            "notification.sent",
        ]
        assert "HTTP 500 internal_error" in events[0]["error"]
        assert not events[0]["dead"]
        # The retries waited out a growing backoff on the reconciler's clock.
        assert events[1]["retry_at"] > events[0]["retry_at"]

        # What the post says, against what the job row says.
        text = json.dumps(message)
        enriched = row["progress_done"] - row["progress_failed"]
        assert row["progress_total"] == 40
        assert enriched > 0
        assert f"{enriched} / {row['progress_failed']} / 40" in text
        assert message["text"].startswith(f"Results ready: crustdata job {job['id']} (leads)")
        assert f"{world.url}/jobs/{job['id']}" in text
        assert "completed" in text
        fields = {
            f["text"].split("\n")[0].strip("*"): f["text"].split("\n")[1]
            for f in message["blocks"][1]["fields"]
        }
        assert fields["Vendor"] == "crustdata"
        assert fields["Results stored"] == str(row["results_count"])
        assert fields["Vendor calls"] == f"{row['vendor_calls']:g}"
        results, dashboard = [e["url"] for e in message["blocks"][-1]["elements"]]
        assert dashboard == f"{world.url}/jobs/{job['id']}"
        # The results button works for the person who clicks it: the dashboard's login, then
        # the CSV (the API's link, which takes the API token, would answer them a 401).
        content_type, csv = await world.open_as_person(results)
        assert content_type == "text/csv"
        assert len(csv.strip().splitlines()) == row["results_count"] + 1

        metrics = await world.api("GET", "/metrics")
        assert 'enrichwatch_notifications_total{channel="slack",result="failed"} 2.0' in metrics
        assert 'enrichwatch_notifications_total{channel="slack",result="sent"} 1.0' in metrics


async def test_a_429_is_retried_no_sooner_than_its_retry_after(open_world, slack):
    slack.script = [Answer(429, "rate_limited", {"Retry-After": "120"})]
    async with open_world(notify={"slack_webhook_url": slack.url}) as world:
        job = await finished_crustdata_job(world)
        await world.passes(until=lambda: len(slack.requests) == 1)
        (failed,) = world.events(job["id"])
        assert "HTTP 429" in failed["error"]
        (first,) = world.notifications(job["id"])
        assert first["next_attempt_at"] >= first["updated_at"] + 120
        await world.passes()
        assert len(slack.messages()) == 1
        assert len(slack.requests) == 2
        assert world.notifications(job["id"])[0]["state"] == "done"


async def test_a_hanging_endpoint_times_out_and_the_retry_delivers_once(open_world, slack):
    slack.script = [HANG]
    async with open_world(notify={"slack_webhook_url": slack.url, "timeout": 0.5}) as world:
        job = await finished_crustdata_job(world)
        await world.passes()
        (failed, sent) = world.events(job["id"])
        assert "no answer within 0.5s" in failed["error"]
        assert sent["type"] == "notification.sent"
        assert len(slack.messages()) == 1


async def test_slack_404_no_service_is_dead_lettered_at_once_and_retried_by_hand(open_world, slack):
    slack.script = [Answer(404, "no_service")]
    async with open_world(notify={"slack_webhook_url": slack.url}) as world:
        job = await finished_crustdata_job(world)
        await world.passes()
        (dead,) = world.notifications(job["id"])
        assert dead["state"] == "dead"
        assert dead["attempts"] == 1
        assert "HTTP 404 no_service" in dead["last_error"]
        (failed,) = world.events(job["id"])
        assert failed["dead"] is True
        assert slack.messages() == []

        listed = await world.api("GET", "/api/notifications?state=dead")
        (item,) = listed["notifications"]
        assert item["id"] == dead["id"]
        assert item["job_id"] == job["id"]
        assert item["outcome"] == "completed"
        assert "no_service" in item["last_error"]
        assert (await world.api("GET", "/api/notifications?state=sent"))["notifications"] == []
        metrics = await world.api("GET", "/metrics")
        assert 'enrichwatch_notifications_total{channel="slack",result="dead"} 1.0' in metrics

        retried = await world.api("POST", f"/api/notifications/{dead['id']}/retry", status=202)
        assert retried["state"] == "pending"
        assert retried["attempts"] == 0
        await world.passes()
        assert len(slack.messages()) == 1
        assert world.notifications(job["id"])[0]["state"] == "done"
        # Delivered: a second retry is refused and changes nothing.
        refused = await world.api("POST", f"/api/notifications/{dead['id']}/retry", status=409)
        assert refused["error"]["code"] == "not_retryable"
        assert "already delivered" in refused["error"]["message"]
        await world.api("POST", "/api/notifications/999/retry", status=404)
        await world.api("GET", "/api/notifications?state=lost", status=400)
        await world.passes()
        assert len(slack.messages()) == 1


async def test_retries_stop_after_max_attempts_and_the_row_is_dead_with_its_last_error(
    open_world, slack
):
    slack.script = [Answer(503, "busy")] * 3
    async with open_world(notify={"slack_webhook_url": slack.url, "max_attempts": 3}) as world:
        job = await finished_crustdata_job(world)
        await world.passes()
        (dead,) = world.notifications(job["id"])
        assert dead["state"] == "dead"
        assert dead["attempts"] == 3
        assert dead["last_error"] == "gave up after 3 attempts: slack: HTTP 503 busy"
        assert len(slack.requests) == 3
        assert slack.messages() == []
