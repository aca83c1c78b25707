"""A job's own targets, given when it is tracked or submitted (API body or CLI options),
replace the configured channel for that job only; bad ones are refused with a clear error
and change nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import snapshot
from tests.notify.conftest import SECRET
from tests.notify.servers import SlackEndpoint


async def test_a_jobs_own_slack_and_webhook_targets_replace_the_configured_ones(
    open_world, slack, receiver
):
    own = await SlackEndpoint().start()
    try:
        async with open_world(
            notify={"slack_webhook_url": slack.url, "webhook_secret": SECRET}
        ) as world:
            crust = world.sim.crustdata.add_job(20)
            await world.sim.advance_to(crust.job.terminal_at() + 1)
            mine = await world.track(
                "crustdata", crust.batch_id, notify={"slack": own.url, "webhook": receiver.url}
            )
            other = await world.track("crustdata", "no-such-batch")
            await world.passes()

            (message,) = own.messages()
            assert message["text"].startswith(f"Results ready: crustdata job {mine['id']}")
            (event,) = receiver.processed.values()
            assert event["data"]["job_id"] == mine["id"]
            (elsewhere,) = slack.messages()
            assert elsewhere["text"].startswith(f"Job expired: crustdata job {other['id']}")
            channels = {r["channel"] for r in world.notifications(mine["id"])}
            assert channels == {"slack", "webhook"}
            # The stored targets are the job's, not copied into the outbox rows.
            assert own.url not in json.dumps([dict(r) for r in world.notifications()])
    finally:
        await own.stop()


async def test_a_submitted_batch_keeps_its_targets_on_every_part(open_world, slack):
    from tests.notify.test_outcomes import INPUTS, VendorName

    rows, options = INPUTS[VendorName.ECORE]
    body = {
        "vendor": "ecore",
        "submit": {"rows": rows, "options": options},
        "notify": {"slack": slack.url},
    }
    async with open_world() as world:
        (job,) = (await world.api("POST", "/api/jobs", body, status=201))["jobs"]
        await world.passes()
        assert world.job(job["id"])["state"] == "completed"
        assert [r["channel"] for r in world.notifications(job["id"])] == ["console", "slack"]
        (message,) = slack.messages()
        assert message["text"].startswith(f"Results ready: ecore job {job['id']}")


async def test_bad_targets_in_the_api_body_are_refused_and_change_nothing(open_world):
    async with open_world() as world:
        before = snapshot(world.db)
        cases = [
            ({"email": ["ops@example.org"]}, "smtp.host"),
            ({"webhook": "http://127.0.0.1:9/x"}, "webhook_secret"),
            ({"slack": "ftp://example.org/x"}, "not an http(s) URL"),
            ({"email": ["not-an-address"]}, "not an email address"),
        ]
        for notify, message in cases:
            body = {"vendor": "crustdata", "vendor_job_id": "b-1", "notify": notify}
            answer = await world.api("POST", "/api/jobs", body, status=422)
            assert answer["error"]["code"] == "invalid_notify"
            assert message in answer["error"]["message"]
        body = {"vendor": "crustdata", "vendor_job_id": "b-1", "notify": {"pager": "x"}}
        answer = await world.api("POST", "/api/jobs", body, status=422)
        assert answer["error"]["fields"][0]["field"] == "notify.pager"
        assert snapshot(world.db) == before


async def test_tracking_a_job_again_with_other_targets_is_refused_not_ignored(open_world, slack):
    """Tracking an already tracked job answers with the job, as tracking twice should; but
    if the second request names other targets, the job would keep its own and the caller's
    targets would be lost without a word: that is a 409 naming the job, and changes nothing."""
    own = {"slack": "https://hooks.example.org/services/T/B/mine"}
    async with open_world() as world:
        body = {"vendor": "crustdata", "vendor_job_id": "b-1", "notify": own}
        first = await world.api("POST", "/api/jobs", body, status=201)
        assert (await world.api("POST", "/api/jobs", body, status=200))["id"] == first["id"]
        plain = {"vendor": "crustdata", "vendor_job_id": "b-1"}
        assert (await world.api("POST", "/api/jobs", plain, status=200))["id"] == first["id"]

        before = snapshot(world.db)
        other = {**body, "notify": {"slack": slack.url}}
        answer = await world.api("POST", "/api/jobs", other, status=409)
        assert answer["error"]["code"] == "already_tracked"
        assert f"already tracked (job {first['id']})" in answer["error"]["message"]
        assert answer["error"]["job"]["id"] == first["id"]
        assert snapshot(world.db) == before

        unowned = {"vendor": "crustdata", "vendor_job_id": "b-2"}
        await world.api("POST", "/api/jobs", unowned, status=201)
        await world.api("POST", "/api/jobs", {**unowned, "notify": own}, status=409)


def test_cli_track_again_with_other_targets_is_one_line_and_exit_1(tmp_path):
    env = {"ENRICHWATCH_DB": str(tmp_path / "cli.db"), "ENRICHWATCH_LOG_LEVEL": "error"}
    slack = ("--notify-slack", "https://hooks.example.org/services/T/B/x")
    assert run_cli("track", "crustdata", "b-1", *slack, env=env).returncode == 0
    assert run_cli("track", "crustdata", "b-1", *slack, env=env).returncode == 0

    refused = run_cli(
        "track", "crustdata", "b-1", "--notify-slack", "https://hooks.example.org/y", env=env
    )
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "Error: crustdata job b-1 is already tracked (job 1) with other notification targets"
    ]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "enrichwatch", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_track_stores_the_targets_and_refuses_bad_ones(tmp_path):
    env = {"ENRICHWATCH_DB": str(tmp_path / "cli.db"), "ENRICHWATCH_LOG_LEVEL": "error"}
    refused = run_cli("track", "crustdata", "b-1", "--notify-email", "ops@example.org", env=env)
    assert refused.returncode == 1
    assert "notify email needs an SMTP server" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1

    done = run_cli(
        "track",
        "crustdata",
        "b-1",
        "--notify-slack",
        "https://hooks.example.org/services/T/B/x",
        "--notify-email",
        "a@example.org",
        "--notify-email",
        "b@example.org",
        "--json",
        env={**env, "ENRICHWATCH_SMTP__HOST": "127.0.0.1"},
    )
    assert done.returncode == 0, done.stderr
    (job,) = json.loads(done.stdout)
    import sqlite3

    conn = sqlite3.connect(tmp_path / "cli.db")
    try:
        (stored,) = conn.execute("SELECT notify FROM jobs WHERE id = ?", (job["id"],)).fetchone()
    finally:
        conn.close()
    assert json.loads(stored) == {
        "slack": "https://hooks.example.org/services/T/B/x",
        "email": ["a@example.org", "b@example.org"],
    }


async def test_a_job_shows_where_it_notifies_without_the_secrets_in_its_urls(open_world):
    """Its own targets are in the API's job and in `show`, so a person can see where its
    messages go; a Slack webhook's path is its secret, a webhook's may hold a token too."""
    slack = "https://hooks.slack.com/services/T0/B0/sekret-slack-path"
    hook = "https://ops:pw@example.org/hooks/tok-in-path?key=tok-in-query"
    async with open_world(
        notify={"webhook_secret": SECRET}, smtp={"host": "mail.example.com"}
    ) as world:
        mine = await world.track(
            "ecore",
            "e-own",
            notify={"slack": slack, "email": ["ops@example.com"], "webhook": hook},
        )
        plain = await world.track("ecore", "e-plain")

        shown = await world.api("GET", f"/api/jobs/{mine['id']}")
        assert shown["notify"] == {
            "slack": "https://hooks.slack.com/…",
            "email": ["ops@example.com"],
            "webhook": "https://example.org/…",
        }
        assert (await world.api("GET", f"/api/jobs/{plain['id']}"))["notify"] is None
        env = {**os.environ, "ENRICHWATCH_DB": str(world.db)}
        for job, expected in (
            (
                mine,
                "its own: slack https://hooks.slack.com/…; email ops@example.com; "
                "webhook https://example.org/…",
            ),
            (plain, "the configured channels"),
        ):
            show = subprocess.run(
                [sys.executable, "-m", "enrichwatch", "show", str(job["id"])],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
                check=True,
            )
            (line,) = [row for row in show.stdout.splitlines() if row.startswith("Notifies")]
            assert expected in " ".join(line.split())
    for secret in ("sekret-slack-path", "tok-in-path", "tok-in-query", "pw@"):
        assert secret not in json.dumps(shown)
        assert secret not in show.stdout
