"""`jobs`, `show`, `events` and `replay` as subprocesses on the same database as a running
receiver, against jobs that really ran at the simulated vendors."""

from __future__ import annotations

import asyncio
import json
import re
import signal

from pydantic import SecretStr

from enrichwatch.models import VendorName
from enrichwatch.store import Store
from reconciler import reconcile_once
from reconciler.checks import check_job_now
from tests.cli.conftest import World, assert_one_line_error, clean_env, run_cli
from tests.conftest import query, snapshot, spawn

# -- jobs ------------------------------------------------------------------------------------


async def test_jobs_lists_every_job_with_state_progress_calls_results_and_age(world: World):
    rows = {row["id"]: row for row in query(world.db, "SELECT * FROM jobs")}

    result = await world.cli("jobs")

    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == [
        "ID", "┃", "Vendor", "┃", "Name", "┃", "State", "┃", "Progress", "┃", "Calls", "┃",
        "Callbacks", "┃", "Results", "┃", "Age",
    ]  # fmt: skip
    body = lines[2:]
    assert [int(line.split()[0]) for line in body] == sorted(rows, reverse=True)
    for line in body:
        row = rows[int(line.split()[0])]
        cells = [cell.strip() for cell in line.split("│")]
        assert cells[1] == row["vendor"]
        assert cells[2] == row["name"]
        assert cells[3] == "completed"
        if row["progress_total"] is None:  # eCore gives no counts: the input size shows
            assert f"?/{row['input_rows']}" in cells[4]
        else:
            assert f"{row['progress_done']}/{row['progress_total']}" in cells[4]
        assert "━" in cells[4]
        assert float(cells[5]) == row["vendor_calls"]
        assert int(cells[6]) == row["callbacks_received"]
        assert cells[7] == f"{row['results_count']} stored"
        assert cells[8]  # the age, in the simulator's time


async def test_jobs_shows_how_many_checks_of_an_open_job_failed(world: World):
    job = await world.submit(VendorName.ECORE)
    world.services.settings.ecore.api_key = SecretStr("revoked")
    for _ in range(2):
        await check_job_now(world.rc, job.id)

    result = await world.cli("jobs")

    assert result.code == 0, result.err
    cells = {
        int(line.split()[0]): [cell.strip() for cell in line.split("│")]
        for line in result.out.splitlines()[2:]
    }
    assert cells[job.id][3] == "submitted (2 checks failed)"
    assert {row[3] for id_, row in cells.items() if id_ != job.id} == {"completed"}


LONG_NAME = " ".join(["influencer handles for the Q4 campaign, second pass, EU only"] * 3)


async def _a_job_with_a_long_row(world: World) -> int:
    """A job whose row is wider than any screen: a long name, and two failed checks."""
    result = await world.cli("track", "ecore", "e-long", "--name", LONG_NAME, "--json")
    assert result.code == 0, result.err
    (job,) = json.loads(result.out)
    world.services.settings.ecore.api_key = SecretStr("revoked")
    for _ in range(2):
        await check_job_now(world.rc, job["id"])
    return int(job["id"])


async def test_a_piped_listing_keeps_every_column_and_every_cell_whole(world: World):
    """People pipe, grep and cron the listing: off a terminal no screen width applies, so
    nothing is cut to one (the ids, the last columns and the long cells were)."""
    long_id = await _a_job_with_a_long_row(world)
    rows = {row["id"]: row for row in query(world.db, "SELECT * FROM jobs")}

    result = await world.cli("jobs")

    assert result.code == 0, result.err
    assert "…" not in result.out
    lines = result.out.splitlines()
    assert [cell.strip() for cell in lines[0].split("┃")] == [
        "ID", "Vendor", "Name", "State", "Progress", "Calls", "Callbacks", "Results", "Age"
    ]  # fmt: skip
    cells = {int(line.split()[0]): [cell.strip() for cell in line.split("│")] for line in lines[2:]}
    assert sorted(cells) == sorted(rows)
    for job_id, row in rows.items():
        assert cells[job_id][2] == row["name"]
        assert float(cells[job_id][5]) == row["vendor_calls"]
        assert cells[job_id][8]  # the age
    assert cells[long_id][3] == "submitted (2 checks failed)"


async def test_on_a_narrow_terminal_the_listing_keeps_every_job_id(world: World):
    """On a screen too narrow for the table the other columns give way; the id, which every
    other command takes, stays whole. (TTY_COMPATIBLE tells rich its output is a terminal.)"""
    await _a_job_with_a_long_row(world)
    ids = [row["id"] for row in query(world.db, "SELECT id FROM jobs ORDER BY id DESC")]

    result = await run_cli(world.env | {"TTY_COMPATIBLE": "1", "COLUMNS": "80"}, "jobs")

    assert result.code == 0, result.err
    lines = re.sub(r"\x1b\[[0-9;]*m", "", result.out).splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[0].split()[0] == "ID"
    firsts = [line.split("│", 1)[0].strip() for line in lines[2:]]
    assert [int(first) for first in firsts if first] == ids


async def test_jobs_json_is_the_stored_jobs(world: World):
    result = await world.cli("jobs", "--json")

    assert result.code == 0, result.err
    listed = json.loads(result.out)
    rows = query(world.db, "SELECT * FROM jobs ORDER BY id DESC")
    assert [job["id"] for job in listed] == [row["id"] for row in rows]
    for job, row in zip(listed, rows, strict=True):
        assert job["vendor"] == row["vendor"]
        assert job["state"] == row["state"] == "completed"
        assert job["vendor_calls"] == row["vendor_calls"]
        assert job["results"] == {"state": "stored", "count": row["results_count"]}
        assert job["progress"]["total"] == row["progress_total"]
        assert job["callback_url"].endswith(f"/hooks/{row['vendor']}/{row['callback_token']}")


async def test_jobs_filters_by_vendor_and_state(world: World):
    crustdata = world.jobs[VendorName.CRUSTDATA]
    result = await world.cli("jobs", "--vendor", "crustdata", "--json")
    assert result.code == 0, result.err
    assert [job["id"] for job in json.loads(result.out)] == [crustdata.id]

    result = await world.cli("jobs", "--state", "completed", "--vendor", "ecore", "--json")
    assert [job["vendor"] for job in json.loads(result.out)] == ["ecore"]

    result = await world.cli("jobs", "--state", "running", "--json")
    assert (result.code, json.loads(result.out)) == (0, [])
    result = await world.cli("jobs", "--state", "running")
    assert (result.code, result.out.strip()) == (0, "no jobs")

    newer = await world.submit(VendorName.REPROMPT)
    result = await world.cli("jobs", "--state", "submitted", "--json")
    assert [job["id"] for job in json.loads(result.out)] == [newer.id]
    result = await world.cli("jobs", "--limit", "2", "--json")
    assert [job["id"] for job in json.loads(result.out)] == [newer.id, newer.id - 1]


async def test_jobs_refuses_bad_options_and_a_missing_database(world: World, tmp_path):
    before = snapshot(world.db)
    for args, expected in (
        (("--state", "done"), "'done' is not one of"),
        (("--vendor", "acme"), "'acme' is not one of"),
        (("--limit", "0"), "0 is not in the range"),
        (("--bogus",), "No such option '--bogus'"),
    ):
        result = await world.cli("jobs", *args)
        assert expected in assert_one_line_error(result, code=2)
    assert snapshot(world.db) == before

    missing = tmp_path / "nowhere" / "none.db"
    env = world.env | {"ENRICHWATCH_DB": str(missing)}
    for command in (["jobs"], ["show", "1"], ["events", "1"], ["replay", "1"], ["stats"]):
        error = assert_one_line_error(await run_cli(env, *command))
        assert error == (
            f"Error: no enrichwatch database at {missing} (set ENRICHWATCH_DB or --config)"
        )
        assert not missing.parent.exists()


# -- show ------------------------------------------------------------------------------------


async def test_show_tells_everything_about_a_job(world: World):
    job = world.jobs[VendorName.CRUSTDATA]
    (row,) = query(world.db, "SELECT * FROM jobs WHERE id = ?", (job.id,))
    inbox = query(world.db, "SELECT * FROM inbox WHERE job_id = ? ORDER BY id", (job.id,))
    events = query(world.db, "SELECT * FROM events WHERE job_id = ? ORDER BY seq", (job.id,))
    assert len(inbox) == 1  # the simulator's callback

    result = await world.cli("show", str(job.id), "--json")

    assert result.code == 0, result.err
    shown = json.loads(result.out)
    assert (shown["id"], shown["vendor"], shown["vendor_job_id"]) == (
        job.id,
        "crustdata",
        row["vendor_job_id"],
    )
    assert shown["state"] == "completed"
    assert shown["progress"] == {
        "done": row["progress_done"],
        "failed": row["progress_failed"],
        "total": row["progress_total"],
    }
    assert shown["results"] == {"state": "stored", "count": row["results_count"]}
    assert shown["vendor_calls"] == row["vendor_calls"]
    assert shown["callbacks_received"] == 1
    assert shown["expects_callback"] is True
    assert shown["late_webhook_at"] is None
    assert shown["callback_url"].endswith(f"/hooks/crustdata/{row['callback_token']}")
    assert [c["inbox_id"] for c in shown["callbacks"]] == [inbox[0]["id"]]
    assert shown["callbacks"][0]["bytes"] == len(inbox[0]["body"])
    assert [e["seq"] for e in shown["recent_events"]] == [e["seq"] for e in events][-10:]

    result = await world.cli("show", str(job.id))
    assert result.code == 0, result.err
    text = result.out
    assert f"Job            {job.id}  cli crustdata" in text
    assert f"crustdata  {row['vendor_job_id']}" in text
    assert "completed" in text
    assert f"{row['results_count']} stored" in text
    assert f"/hooks/crustdata/{row['callback_token']}" in text
    assert "1 received" in text
    assert "Callbacks" in text
    assert f" {inbox[0]['id']} " in text
    assert "webhook.received" in text
    assert "results.stored" in text


async def test_show_marks_the_callback_that_never_came(world: World):
    job = world.jobs[VendorName.BRIGHTLOCAL]

    result = await world.cli("show", str(job.id), "--json")

    shown = json.loads(result.out)
    assert shown["callbacks_received"] == 0
    assert shown["callbacks"] == []
    assert shown["late_webhook_at"] is not None
    assert "webhook.late" in [event["type"] for event in shown["recent_events"]]
    result = await world.cli("show", str(job.id))
    assert "0 received; late since" in result.out


async def test_show_and_events_of_an_unknown_job_are_one_line_errors(world: World):
    before = snapshot(world.db)
    for command in ("show", "events"):
        result = await world.cli(command, "999")
        assert assert_one_line_error(result) == "Error: no job with id 999"
        assert result.out == ""
        result = await world.cli(command, "first")
        assert "'first' is not a valid integer" in assert_one_line_error(result, code=2)
    result = await world.cli("events", "999", "--follow")
    assert assert_one_line_error(result) == "Error: no job with id 999"
    assert snapshot(world.db) == before


# -- events ----------------------------------------------------------------------------------


async def test_events_is_the_whole_timeline_in_order(world: World):
    job = world.jobs[VendorName.BRIGHTLOCAL]
    stored = query(world.db, "SELECT * FROM events WHERE job_id = ? ORDER BY seq", (job.id,))

    result = await world.cli("events", str(job.id), "--json")

    assert result.code == 0, result.err
    listed = json.loads(result.out)
    assert [(e["seq"], e["type"], e["source"]) for e in listed] == [
        (row["seq"], row["type"], row["source"]) for row in stored
    ]
    assert [e["payload"] for e in listed] == [json.loads(row["payload"]) for row in stored]
    types = [e["type"] for e in listed]
    assert (
        types.index("job.submitted") < types.index("webhook.late") < types.index("results.stored")
    )

    result = await world.cli("events", str(job.id))
    assert result.code == 0, result.err
    body = result.out.splitlines()[2:]
    assert [int(line.split()[0]) for line in body] == [row["seq"] for row in stored]
    late = next(line for line in body if "webhook.late" in line)
    assert "callback late: checking by polling instead" in late


async def test_events_say_which_job_told_people_of_a_shared_refusal(world: World):
    teller, covered = await world.submit(VendorName.ECORE), await world.submit(VendorName.ECORE)
    world.services.settings.ecore.api_key = SecretStr("revoked")
    for job in (teller, covered):
        await check_job_now(world.rc, job.id)

    result = await world.cli("events", str(covered.id))

    assert result.code == 0, result.err
    (line,) = [line for line in result.out.splitlines() if "notification.covered" in line]
    assert (
        f"notification not sent (console, checks_refused): job {teller.id} told the same "
        "people of it"
    ) in " ".join(line.split())


async def test_events_follow_tails_a_running_job_until_it_is_done(world: World):
    job = await world.submit(VendorName.REPROMPT)
    process = await spawn(
        "events",
        str(job.id),
        "--follow",
        "--json",
        env=world.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    first = json.loads(await asyncio.wait_for(process.stdout.readline(), 10))
    assert first["type"] == "submit.requested"
    assert process.returncode is None  # still following

    await world.settle()

    stdout, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, stderr.decode()
    printed = [first] + [json.loads(line) for line in stdout.decode().splitlines()]
    stored = query(
        world.db, "SELECT seq, type FROM events WHERE job_id = ? ORDER BY seq", (job.id,)
    )
    assert [(e["seq"], e["type"]) for e in printed] == [(r["seq"], r["type"]) for r in stored]
    assert {"job.state_changed", "results.stored"} <= {e["type"] for e in printed}


async def test_events_follow_of_a_finished_job_prints_it_and_ends(world: World):
    job = world.jobs[VendorName.ECORE]
    stored = query(world.db, "SELECT seq FROM events WHERE job_id = ? ORDER BY seq", (job.id,))

    result = await world.cli("events", str(job.id), "--follow")

    assert result.code == 0, result.err
    assert [int(line.split()[0]) for line in result.out.splitlines()] == [
        row["seq"] for row in stored
    ]


# -- replay ----------------------------------------------------------------------------------


async def _running_job_with_a_callback(world: World) -> tuple[int, int]:
    """A Crustdata job still running at the vendor whose (early, forged) callback has been
    stored and already answered by a status check; returns (job id, inbox id)."""
    job = await world.submit(VendorName.CRUSTDATA)
    await reconcile_once(world.rc)  # plans the first check
    await world.sim.advance(30)
    async with world.services.http.post(job.callback_url(world.url), json={"hint": 1}) as reply:
        assert reply.status == 200
        inbox_id = (await reply.json())["inbox_id"]
    await reconcile_once(world.rc)  # the check the callback asked for: still running
    (row,) = query(world.db, "SELECT * FROM jobs WHERE id = ?", (job.id,))
    assert row["state"] in ("queued", "running")
    assert row["next_check_at"] > world.sim.clock.now()
    return job.id, inbox_id


def _job_row(world: World, job_id: int):
    (row,) = query(world.db, "SELECT * FROM jobs WHERE id = ?", (job_id,))
    return row


def _last_event(world: World, job_id: int):
    (row,) = query(
        world.db, "SELECT * FROM events WHERE job_id = ? ORDER BY seq DESC LIMIT 1", (job_id,)
    )
    return row["type"], json.loads(row["payload"])


async def test_replay_of_a_seen_delivery_is_a_duplicate_and_wakes_nothing(world: World):
    job_id, inbox_id = await _running_job_with_a_callback(world)
    before = _job_row(world, job_id)

    result = await world.cli("replay", str(inbox_id))

    assert result.code == 0, result.err
    (replayed,) = query(world.db, "SELECT * FROM inbox WHERE id > ?", (inbox_id,))
    (original,) = query(world.db, "SELECT * FROM inbox WHERE id = ?", (inbox_id,))
    assert result.out.strip() == (
        f"inbox {inbox_id} replayed as inbox {replayed['id']} for job {job_id}: recorded as a "
        "duplicate; the job was not woken (use --bypass-dedupe)"
    )
    assert replayed["duplicate_of"] == inbox_id
    assert (replayed["body"], replayed["dedupe_key"]) == (original["body"], original["dedupe_key"])
    assert _last_event(world, job_id) == (
        "webhook.duplicate",
        {"inbox_id": replayed["id"], "duplicate_of": inbox_id, "replay_of": inbox_id},
    )
    after = _job_row(world, job_id)
    assert after["callbacks_received"] == before["callbacks_received"] == 1
    assert after["next_check_at"] == before["next_check_at"]


async def test_replay_bypassing_dedupe_is_a_new_callback_that_makes_the_job_due(world: World):
    job_id, inbox_id = await _running_job_with_a_callback(world)
    polls = len(query(world.db, "SELECT 1 FROM events WHERE type = 'vendor.polled'"))

    result = await world.cli("replay", str(inbox_id), "--bypass-dedupe", "--json")

    assert result.code == 0, result.err
    shown = json.loads(result.out)
    (replayed,) = query(world.db, "SELECT * FROM inbox WHERE id > ?", (inbox_id,))
    assert (shown["inbox_id"], shown["replay_of"], shown["job_id"], shown["duplicate"]) == (
        replayed["id"],
        inbox_id,
        job_id,
        False,
    )
    assert replayed["duplicate_of"] is None
    kind, payload = _last_event(world, job_id)
    assert kind == "webhook.received"
    assert (payload["inbox_id"], payload["replay_of"]) == (replayed["id"], inbox_id)
    row = _job_row(world, job_id)
    assert row["callbacks_received"] == 2
    assert row["next_check_at"] <= world.sim.clock.now()  # due
    await reconcile_once(world.rc)
    assert len(query(world.db, "SELECT 1 FROM events WHERE type = 'vendor.polled'")) == polls + 1


async def test_replay_to_a_finished_job_is_recorded_but_schedules_nothing(world: World):
    job = world.jobs[VendorName.CRUSTDATA]
    (inbox,) = query(world.db, "SELECT id FROM inbox WHERE job_id = ?", (job.id,))

    result = await world.cli("replay", str(inbox["id"]), "--bypass-dedupe")

    assert result.code == 0, result.err
    assert result.out.strip().endswith("recorded as a new callback; the job is already completed")
    row = _job_row(world, job.id)
    assert row["next_check_at"] is None
    assert row["state"] == "completed"


async def test_replay_refuses_an_unknown_or_malformed_inbox_id(world: World):
    before = snapshot(world.db)
    result = await world.cli("replay", "999")
    assert assert_one_line_error(result) == "Error: no stored callback with inbox id 999"
    result = await world.cli("replay", "one")
    assert "'one' is not a valid integer" in assert_one_line_error(result, code=2)
    result = await world.cli("replay", "1", "--dedupe")
    assert "No such option '--dedupe'" in assert_one_line_error(result, code=2)
    assert snapshot(world.db) == before


async def test_events_follow_ends_quietly_on_ctrl_c(tmp_path):
    db = tmp_path / "follow.db"
    async with Store.open(db) as store:
        job, _ = await store.track_job(VendorName.ECORE, "e-1", "never ends")
    process = await spawn(
        "events",
        str(job.id),
        "--follow",
        env=clean_env(db=str(db)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
    assert "job.tracked" in line
    assert "tracking e-1" in line

    process.send_signal(signal.SIGINT)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 10)

    assert process.returncode == 0
    assert stdout == b""
    assert "Traceback" not in stderr.decode()
