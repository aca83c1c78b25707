"""The refusals of `submit`, `track`, `results`, `check`, `resume` and `reprocess`: each bad
input is one `Error:` line and a non-zero exit, never a traceback, and changes nothing in the
database nor at the vendor. (Their successes are shown in tests/test_submit.py and
tests/test_results_and_actions.py.)"""

from __future__ import annotations

import json

import pytest

from enrichwatch.models import JobState, VendorName
from reconciler.checks import check_job_now
from tests.cli.conftest import World, assert_one_line_error
from tests.conftest import query, run_cli, snapshot


def _people_csv(path, rows: int = 3):
    path.write_text(
        "professional_network_profile_urls\n"
        + "".join(f"https://www.linkedin.com/in/p{n}/\n" for n in range(rows))
    )
    return path


async def test_submit_refusals_change_nothing(world: World, tmp_path):
    people = _people_csv(tmp_path / "people.csv")
    (tmp_path / "latin1.csv").write_bytes(b"email\n\xe9l\xe8ve@example.com\n")
    (tmp_path / "folder.csv").mkdir()
    handles = tmp_path / "handles.csv"
    handles.write_text("handle\nsomeone\n")
    before, calls = snapshot(world.db), world.sim.stats.count()

    cases = [
        (["acme", str(people)], 2, "'acme' is not one of"),
        (["crustdata"], 2, "Missing argument 'FILE'"),
        (["crustdata", str(tmp_path / "folder.csv")], 2, "is a directory"),
        (["crustdata", str(tmp_path / "none.csv")], 1, "no such file"),
        (["crustdata", f"{people}/inner.csv"], 1, "cannot read"),
        (["ecore", str(tmp_path / "latin1.csv")], 1, "is not UTF-8 text"),
        (["crustdata", str(people), "-o", "novalue"], 2, "KEY=VALUE"),
        (["influencers_club", str(handles)], 1, "options must name an enrichment_mode"),
        (["ecore", str(people), "-o", "category=people"], 1, "category"),
    ]
    for args, code, expected in cases:
        result = await world.cli("submit", *args)
        assert expected in assert_one_line_error(result, code), args

    assert snapshot(world.db) == before
    assert world.sim.stats.count() == calls


async def test_track_refusals_change_nothing(world: World):
    before = snapshot(world.db)
    for args, expected in (
        (["acme", "b-1"], "'acme' is not one of"),
        (["crustdata", "   "], "must not be blank"),
        (["crustdata"], "Missing argument 'VENDOR_JOB_ID'"),
    ):
        result = await world.cli("track", *args)
        assert expected in assert_one_line_error(result, code=2), args
    assert snapshot(world.db) == before


async def test_results_refusals_write_nothing(world: World, tmp_path):
    job = world.jobs[VendorName.REPROMPT]
    before = snapshot(world.db)

    result = await world.cli("results", "999", "-o", str(tmp_path / "none.csv"))
    assert assert_one_line_error(result) == "Error: no job with id 999"
    result = await world.cli("results", str(job.id), "-o", str(tmp_path / "missing" / "r.csv"))
    assert "cannot write" in assert_one_line_error(result)
    result = await world.cli("results", str(job.id), "-o", str(tmp_path))
    assert "is a directory" in assert_one_line_error(result, code=2)
    result = await world.cli("results", "latest")
    assert "'latest' is not a valid integer" in assert_one_line_error(result, code=2)

    assert snapshot(world.db) == before
    assert not (tmp_path / "none.csv").exists()
    assert not (tmp_path / "missing").exists()


async def test_actions_on_an_unknown_job_or_with_bad_options_change_nothing(world: World):
    before, calls = snapshot(world.db), world.sim.stats.count()
    for command in ("check", "resume", "reprocess"):
        result = await world.cli(command, "999")
        assert assert_one_line_error(result) == "Error: no job with id 999"
        result = await world.cli(command)
        missing = "missing JOB (or --vendor" if command == "check" else "Missing argument 'JOB_ID'"
        assert missing in assert_one_line_error(result, code=2)
    result = await world.cli("check", "1", "--vendor", "ecore")
    assert "give JOB or --vendor, not both" in assert_one_line_error(result, code=2)
    result = await world.cli("check", "--vendor", "acme")
    assert "'acme' is not one of" in assert_one_line_error(result, code=2)
    reprompt = world.jobs[VendorName.REPROMPT]
    result = await world.cli("reprocess", str(reprompt.id), "-o", "failed_only")
    assert "KEY=VALUE" in assert_one_line_error(result, code=2)
    result = await world.cli("reprocess", str(world.jobs[VendorName.ECORE].id))
    assert assert_one_line_error(result) == "Error: ecore: reprocess is not offered"
    assert snapshot(world.db) == before
    assert world.sim.stats.count() == calls


async def test_check_of_a_finished_job_shows_it_without_calling_the_vendor(world: World):
    job = world.jobs[VendorName.INFLUENCERS_CLUB]
    before, calls = snapshot(world.db), world.sim.stats.count()

    result = await world.cli("check", str(job.id), "--json")

    assert result.code == 0, result.err
    (shown,) = json.loads(result.out)
    assert (shown["id"], shown["state"]) == (job.id, "completed")
    assert world.sim.stats.count() == calls
    assert snapshot(world.db) == before


async def test_results_to_dash_are_written_to_stdout_not_to_a_file_named_dash(
    world: World, tmp_path
):
    """`-o -` means stdout, as for most tools; a file named - is still `-o ./-`."""
    job = world.jobs[VendorName.REPROMPT]
    here = tmp_path / "here"
    here.mkdir()
    plain = await run_cli(world.env, "results", str(job.id), cwd=here)
    assert plain.code == 0, plain.err

    dashed = await run_cli(world.env, "results", str(job.id), "-o", "-", cwd=here)

    assert (dashed.code, dashed.err) == (0, "")
    assert dashed.out == plain.out
    assert len(dashed.out.splitlines()) == job_results_count(world, job.id) > 0
    assert list(here.iterdir()) == []

    named = await run_cli(world.env, "results", str(job.id), "-o", "./-", cwd=here)
    assert named.code == 0, named.err
    assert (here / "-").read_text() == plain.out


def job_results_count(world: World, job_id: int) -> int:
    (row,) = query(world.db, "SELECT results_count FROM jobs WHERE id = ?", (job_id,))
    return int(row["results_count"])


async def _paused(world: World, vendor: VendorName) -> int:
    """A job paused at the vendor and found so by a check: influencers.club out of credits,
    or an eCore job paused there."""
    world.sim.config.influencers_club.profile.credit_pause_rate = 1.0
    job = await world.submit(vendor)
    await world.sim.advance(20)
    if vendor is VendorName.ECORE:
        await world.services.adapter(vendor).pause(job.vendor_job_id or "")
    await world.sim.advance(3000)
    assert (await check_job_now(world.rc, job.id)).state is JobState.NEEDS_ACTION
    return job.id


@pytest.mark.parametrize("vendor", [VendorName.INFLUENCERS_CLUB, VendorName.ECORE])
async def test_resume_says_it_was_sent_and_a_second_one_says_why_the_vendor_refuses(
    world: World, vendor: VendorName
):
    """The job stays needs_action here until a check sees it run, so without a word the
    resume looks as if nothing happened; and a second resume before that check was refused
    in the vendor's bare words ("Batch is not paused."), which did not say it was resumed."""
    job_id = await _paused(world, vendor)

    first = await world.cli("resume", str(job_id))

    assert first.code == 0, first.err
    assert first.out.startswith(f"job {job_id}  {vendor.value}  ")
    assert "needs_action" in first.out
    assert first.err == (
        f"resume sent to {vendor.value}: job {job_id} shows needs_action until its next check "
        f"(due now) finds it running; `enrichwatch check {job_id}` checks it from here\n"
    )

    second = await world.cli("resume", str(job_id))

    error = assert_one_line_error(second)
    assert error.startswith(
        f"Error: {vendor.value}: job {job_id} was paused when last checked but is not paused "
        f"there any more: most likely it was resumed already. `enrichwatch check {job_id}`"
    )
    assert "HTTP 400" in error  # what the vendor said, still there for whoever digs
    checked = await world.cli("check", str(job_id), "--json")
    assert checked.code == 0, checked.err
    assert json.loads(checked.out)[0]["state"] == "running"
