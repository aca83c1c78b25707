"""With no channel configured, notifications go to the service's log, so a new user running
`enrichwatch serve` sees them; configuring any channel turns that off unless asked for."""

from __future__ import annotations

import re

from structlog.testing import capture_logs

from tests.notify.test_slack import finished_crustdata_job


async def test_the_console_channel_is_on_when_nothing_else_is_configured(open_world):
    async with open_world() as world:
        job = await finished_crustdata_job(world)
        with capture_logs() as logs:
            await world.passes()
        (row,) = world.notifications(job["id"])
        assert (row["channel"], row["outcome"], row["state"]) == ("console", "completed", "done")
        (line,) = [entry for entry in logs if entry["event"] == "notification"]
        assert line["title"] == f"Results ready: crustdata job {job['id']} (leads)"
        assert line["results"] == f"{world.url}/jobs/{job['id']}/results?format=csv"
        # The facts every message gives, the log line too.
        job_row = world.job(job["id"])
        assert job_row["results_count"] > 0
        assert {key: line[key] for key in FACTS} == {
            "vendor": "crustdata",
            "vendor_job_id": job_row["vendor_job_id"],
            "enriched": job_row["progress_done"] - job_row["progress_failed"],
            "failed": job_row["progress_failed"],
            "total": 40,
            "results_stored": job_row["results_count"],
            "duration": line["duration"],
            "vendor_calls": f"{job_row['vendor_calls']:g}",
        }
        assert re.fullmatch(r"(\d+m )?\d+s", line["duration"])


FACTS = (
    "vendor",
    "vendor_job_id",
    "enriched",
    "failed",
    "total",
    "results_stored",
    "duration",
    "vendor_calls",
)


async def test_a_configured_channel_turns_the_console_off(open_world, slack):
    async with open_world(notify={"slack_webhook_url": slack.url}) as world:
        job = await finished_crustdata_job(world)
        await world.passes()
        assert [row["channel"] for row in world.notifications(job["id"])] == ["slack"]
