"""With no channel configured, notifications go to the service's log, so a new user running
`enrichwatch serve` sees them; configuring any channel turns that off unless asked for."""

from __future__ import annotations

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


async def test_a_configured_channel_turns_the_console_off(open_world, slack):
    async with open_world(notify={"slack_webhook_url": slack.url}) as world:
        job = await finished_crustdata_job(world)
        await world.passes()
        assert [row["channel"] for row in world.notifications(job["id"])] == ["slack"]
