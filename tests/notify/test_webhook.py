"""Outbound webhooks, checked by a receiver that verifies them with the Standard Webhooks
reference library: the JSON event says what happened, and retries keep the `webhook-id`."""

from __future__ import annotations

import json
import time
from datetime import datetime

from tests.notify.conftest import SECRET
from tests.notify.servers import Answer
from tests.notify.test_slack import finished_crustdata_job


async def test_a_signed_event_verified_by_the_reference_library_once_across_retries(
    open_world, receiver
):
    receiver.script = [Answer(502, "bad gateway")]
    async with open_world(notify={"webhook_url": receiver.url, "webhook_secret": SECRET}) as world:
        job = await finished_crustdata_job(world)
        await world.passes()

        assert receiver.rejected == []
        first, second = receiver.requests
        assert first["answered"] == 502
        assert second["answered"] == 200
        # The idempotency key is the same on the retry; the attempt time is each attempt's.
        assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"]
        assert first["headers"]["webhook-id"].startswith("msg_")
        for request in receiver.requests:
            assert abs(int(request["headers"]["webhook-timestamp"]) - time.time()) < 60
        (event,) = receiver.processed.values()
        row = world.job(job["id"])
        assert event["type"] == "job.completed"
        assert datetime.fromisoformat(event["timestamp"]).timestamp() > 0
        data = event["data"]
        assert data["job_id"] == job["id"]
        assert data["vendor"] == "crustdata"
        assert data["name"] == "leads"
        assert data["outcome"] == "completed"
        assert data["counts"] == {
            "enriched": row["progress_done"] - row["progress_failed"],
            "failed": row["progress_failed"],
            "total": 40,
        }
        assert data["results_stored"] == row["results_count"]
        assert data["vendor_calls"] == row["vendor_calls"]
        links = data["links"]
        api = f"{world.url}/api/jobs/{job['id']}/results"
        assert links == {
            "results": api,
            "results_api": api,
            "results_download": links["results_download"],
            "dashboard": f"{world.url}/jobs/{job['id']}",
        }
        # A system fetches the results with the API token; a person the receiving system
        # shows the event to downloads them from the dashboard, logging in there.
        by_api = await world.api("GET", links["results_api"].removeprefix(world.url))
        content_type, by_person = await world.open_as_person(links["results_download"])
        assert content_type == "text/csv"
        assert len(by_api.splitlines()) == len(by_person.splitlines()) - 1 == row["results_count"]
        (notification,) = world.notifications(job["id"])
        assert json.loads(notification["payload"])["webhook_id"] == second["headers"]["webhook-id"]
        sent = world.events(job["id"])[-1]
        assert sent["webhook_id"] == second["headers"]["webhook-id"]


async def test_410_gone_dead_letters_at_once(open_world, receiver):
    receiver.script = [Answer(410, "gone")]
    async with open_world(notify={"webhook_url": receiver.url, "webhook_secret": SECRET}) as world:
        job = await finished_crustdata_job(world)
        await world.passes()
        (dead,) = world.notifications(job["id"])
        assert dead["state"] == "dead"
        assert "endpoint gone: HTTP 410 gone" in dead["last_error"]
        assert len(receiver.requests) == 1
