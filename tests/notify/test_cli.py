"""`enrichwatch notifications`: list (filter by state or job, as text or JSON) and retry a
dead-lettered one by hand; mistakes are one line and exit 1."""

from __future__ import annotations

import json
from datetime import datetime

from tests.notify.servers import Answer
from tests.notify.test_job_targets import run_cli
from tests.notify.test_slack import finished_crustdata_job


async def test_list_filter_and_retry_from_the_command_line(open_world, slack):
    slack.script = [Answer(404, "no_service")]
    async with open_world(notify={"slack_webhook_url": slack.url}) as world:
        job = await finished_crustdata_job(world)
        await world.passes()
        expired = await world.track("crustdata", "no-such-batch")
        await world.passes()
    env = {"ENRICHWATCH_DB": str(world.db), "ENRICHWATCH_LOG_LEVEL": "error"}

    listed = run_cli("notifications", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    records = {r["job_id"]: r for r in json.loads(listed.stdout)}
    assert records[job["id"]]["state"] == "dead"
    assert records[expired["id"]]["state"] == "sent"

    dead = run_cli("notifications", "--state", "dead", env=env)
    assert dead.returncode == 0
    (line, error) = dead.stdout.strip().splitlines()
    dead_id = records[job["id"]]["id"]
    assert line.startswith(f"{dead_id}  job {job['id']}  completed  slack  dead  attempts=1")
    assert error == "  last error: slack: HTTP 404 no_service"
    only = run_cli("notifications", "--job", str(expired["id"]), "--json", env=env)
    assert [r["outcome"] for r in json.loads(only.stdout)] == ["expired"]

    retried = run_cli("notifications", "retry", str(dead_id), "--json", env=env)
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["state"] == "pending"
    pending = run_cli("notifications", "--state", "pending", "--json", env=env)
    assert [r["id"] for r in json.loads(pending.stdout)] == [dead_id]
    # Printed, a pending one says when it is tried next; a sent one, when it was sent.
    next_try = datetime.fromisoformat(json.loads(pending.stdout)[0]["next_attempt_at"])
    waiting, _last_error = run_cli(
        "notifications", "--state", "pending", env=env
    ).stdout.splitlines()
    assert waiting.endswith(f"next try {next_try:%Y-%m-%d %H:%M:%S} UTC")
    (sent_line,) = run_cli("notifications", "--state", "sent", env=env).stdout.splitlines()
    assert " sent  attempts=1  sent 20" in sent_line

    sent_id = records[expired["id"]]["id"]
    for args, message in [
        (("retry", str(sent_id)), f"notification {sent_id} was already delivered"),
        (("retry", "999"), "no notification with id 999"),
    ]:
        refused = run_cli("notifications", *args, env=env)
        assert refused.returncode == 1
        assert refused.stderr.strip() == f"Error: {message}"
    bad = run_cli("notifications", "--state", "lost", env=env)
    assert bad.returncode == 2
    assert "'lost' is not one of" in bad.stderr
