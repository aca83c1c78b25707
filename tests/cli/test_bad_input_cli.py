"""Bad input at the command line: ids no row can have, addresses the service cannot listen
on, database paths that are not SQLite, simulator options out of range, an export the disk
refuses, reprocess options the API would refuse, vendor job ids no vendor issues and job
names that are blank or would garble listings. Each is one `Error:` line and a non-zero exit,
never a traceback, and changes nothing."""

from __future__ import annotations

import asyncio
import json
import resource
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from enrichwatch.models import VendorName
from tests.cli.conftest import CliResult, World, assert_one_line_error, clean_env, run_cli
from tests.conftest import snapshot, spawn

BEYOND_SQLITE = "99999999999999999999"
"""Larger than any SQLite integer (2**63 - 1), so no row can have it as its id."""


def run_sync(*args: str, env: dict[str, str], cwd: Path | None = None) -> CliResult:
    """For commands that would run until stopped if they wrongly accepted their input: the
    timeout kills the process instead of leaving it behind."""
    done = subprocess.run(
        [sys.executable, "-m", "enrichwatch", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd,
        check=False,
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


# -- 1. ids beyond SQLite's integers ------------------------------------------------------------


async def test_ids_beyond_sqlite_integers_are_unknown_ids(world: World):
    before, calls = snapshot(world.db), world.sim.stats.count()
    unknown_job = f"Error: no job with id {BEYOND_SQLITE}"
    for args, expected in [
        (["show", BEYOND_SQLITE], unknown_job),
        (["show", "--", f"-{BEYOND_SQLITE}"], f"Error: no job with id -{BEYOND_SQLITE}"),
        (["events", BEYOND_SQLITE], unknown_job),
        (["events", "--follow", BEYOND_SQLITE], unknown_job),
        (["results", BEYOND_SQLITE], unknown_job),
        (["check", BEYOND_SQLITE], unknown_job),
        (["resume", BEYOND_SQLITE], unknown_job),
        (["reprocess", BEYOND_SQLITE], unknown_job),
        (["replay", BEYOND_SQLITE], f"Error: no stored callback with inbox id {BEYOND_SQLITE}"),
        (
            ["notifications", "retry", BEYOND_SQLITE],
            f"Error: no notification with id {BEYOND_SQLITE}",
        ),
    ]:
        result = await world.cli(*args)
        assert assert_one_line_error(result) == expected, args

    # A filter, like --job 0 before it: a usage error, as the API's 422 for the same query.
    result = await world.cli("notifications", "--job", BEYOND_SQLITE)
    error = assert_one_line_error(result, code=2)
    assert "'--job'" in error
    assert "is not in the range" in error

    assert snapshot(world.db) == before
    assert world.sim.stats.count() == calls


# -- 2. serve and receiver that cannot listen ------------------------------------------------


@pytest.mark.parametrize("command", ["serve", "receiver"])
async def test_a_port_in_use_is_one_line_naming_host_and_port(command, tmp_path):
    db = tmp_path / "never.db"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = await run_cli(clean_env(db=str(db)), command, "--port", str(port))
    error = assert_one_line_error(result)
    assert error.startswith(f"Error: cannot serve on 127.0.0.1 port {port}: "), error
    assert "in use" in error
    assert result.out == ""  # no API token was issued
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("host", ["256.1.1.1", "nohost.invalid"])
async def test_a_host_that_is_not_an_address_here_is_one_line(host, tmp_path):
    db = tmp_path / "never.db"
    result = await run_cli(clean_env(db=str(db)), "serve", "--host", host, "--port", "8080")
    error = assert_one_line_error(result)
    assert error.startswith(f"Error: cannot serve on {host} port 8080: "), error
    assert list(tmp_path.iterdir()) == []


# -- 3. a database path that is not SQLite ---------------------------------------------------

EVERY_KIND_OF_COMMAND = [
    ["jobs"],
    ["stats"],
    ["show", "1"],
    ["notifications"],
    ["track", "crustdata", "b-1"],
    ["serve", "--port", "0"],
    ["receiver", "--port", "0"],
    ["reconciler"],
]


@pytest.mark.parametrize("args", EVERY_KIND_OF_COMMAND, ids=" ".join)
async def test_a_file_that_is_not_sqlite_is_one_line_naming_it(args, tmp_path):
    db = tmp_path / "notes.db"
    content = b"these are notes, not a database\n" * 20
    db.write_bytes(content)
    result = await run_cli(clean_env(db=str(db)), *args)
    assert assert_one_line_error(result) == (
        f"Error: cannot open the database {db}: file is not a database"
    )
    assert db.read_bytes() == content
    assert sorted(tmp_path.iterdir()) == [db]


@pytest.mark.parametrize("command", ["serve", "receiver", "reconciler"])
async def test_db_option_naming_a_non_sqlite_file_is_one_line(command, tmp_path):
    db = tmp_path / "notes.db"
    db.write_text("not SQLite\n" * 20)
    listen = [] if command == "reconciler" else ["--port", "0"]
    result = await run_cli(clean_env(), command, "--db", str(db), *listen)
    assert assert_one_line_error(result) == (
        f"Error: cannot open the database {db}: file is not a database"
    )


@pytest.mark.parametrize("args", EVERY_KIND_OF_COMMAND, ids=" ".join)
async def test_a_directory_as_database_is_one_line_naming_it(args, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    result = await run_cli(clean_env(db=str(folder)), *args)
    error = assert_one_line_error(result)
    # The reading commands never open a path that is not a file; the others say why not.
    assert error in (
        f"Error: no enrichwatch database at {folder} (set ENRICHWATCH_DB or --config)",
        f"Error: cannot open the database {folder}: it is a directory",
    )
    assert list(folder.iterdir()) == []


ABOUT_JOBS_THERE = [
    ["jobs"],
    ["stats"],
    ["notifications"],
    ["results", "1"],
    ["check", "1"],
    ["check", "--vendor", "ecore"],
    ["resume", "1"],
    ["reprocess", "1"],
    ["fetch", "1"],
]


@pytest.mark.parametrize("args", ABOUT_JOBS_THERE, ids=" ".join)
async def test_a_command_about_jobs_already_there_never_creates_a_database(args, tmp_path):
    """A mistaken path would otherwise be a new, empty database answering "no job with id 1"
    or "no open jobs", as if the jobs were gone."""
    missing = tmp_path / "missing.db"
    result = await run_cli(clean_env(db=str(missing)), *args)
    assert assert_one_line_error(result) == (
        f"Error: no enrichwatch database at {missing} (set ENRICHWATCH_DB or --config)"
    )
    assert list(tmp_path.iterdir()) == []


async def test_a_database_path_under_a_file_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way\n")
    db = blocker / "x.db"
    result = await run_cli(clean_env(), "serve", "--db", str(db), "--port", "0")
    assert assert_one_line_error(result) == (
        f"Error: cannot create the database {db}: {blocker} is not a directory"
    )
    assert blocker.read_text() == "in the way\n"


# -- 4. simulator (and demo) options -------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--port", "99999"], "'--port'"),
        (["--port", "-1"], "'--port'"),
        (["--speed", "0"], "'--speed'"),
        (["--speed", "-5"], "'--speed'"),
        (["--speed", "nan"], "'--speed'"),
        (["--speed", "inf"], "'--speed'"),
        (["--speed", "-inf"], "'--speed'"),
    ],
)
def test_sim_refuses_ports_and_speeds_it_cannot_use(args, option):
    result = run_sync("sim", *args, env=clean_env())
    assert option in assert_one_line_error(result, code=2)


@pytest.mark.parametrize("timeout", ["nan", "inf"])
def test_demo_refuses_a_timeout_that_is_not_a_number_of_seconds(timeout, tmp_path):
    db = tmp_path / "demo.db"
    result = run_sync("demo", "--db", str(db), "--timeout", timeout, env=clean_env())
    assert "is not a finite number" in assert_one_line_error(result, code=2)
    assert list(tmp_path.iterdir()) == []


# -- 5. an export the disk refuses ---------------------------------------------------------


def _job_with_most_results(world: World) -> int:
    return max(world.jobs.values(), key=lambda job: job.results_count).id


async def _job_results_count(world: World, job_id: int) -> int:
    return (await world.services.store.get_job(job_id)).results_count


async def test_results_to_a_full_device_is_one_line(world: World):
    job_id = _job_with_most_results(world)
    assert await _job_results_count(world, job_id) > 0
    before = snapshot(world.db)
    result = await world.cli("results", str(job_id), "-o", "/dev/full")
    assert assert_one_line_error(result) == "Error: cannot write /dev/full: No space left on device"

    with open("/dev/full", "wb") as full:
        process = await spawn(
            "results",
            str(job_id),
            env=world.env,
            stdout=full,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    to_stdout = CliResult(process.returncode, "", stderr.decode())
    assert assert_one_line_error(to_stdout) == (
        "Error: cannot write the results: No space left on device"
    )
    assert snapshot(world.db) == before


async def test_results_cut_short_leave_no_file_behind(world: World, tmp_path):
    """A file size limit (as a nearly full disk would) stops the export part-way."""
    job_id = _job_with_most_results(world)
    out = tmp_path / "results.jsonl"
    full = await world.cli("results", str(job_id))
    limit = len(full.out.encode()) // 2
    assert limit > 0

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    process = await spawn(
        "results",
        str(job_id),
        "-o",
        str(out),
        env=world.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=small_files,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    result = CliResult(process.returncode, stdout.decode(), stderr.decode())
    assert assert_one_line_error(result) == f"Error: cannot write {out}: File too large"
    assert not out.exists()
    assert "records written" not in result.err


# -- 6. reprocess options, checked as the API checks them ------------------------------------


async def test_reprocess_options_the_api_refuses_never_reach_the_vendor(world: World):
    job = world.jobs[VendorName.REPROMPT]
    before, calls = snapshot(world.db), world.sim.stats.count()
    for args, named in [
        (["-o", "zzz=1"], "zzz is not a reprocess option"),
        (["-o", "failed_only=maybe"], "failed_only"),
        (["-o", "attribute_set=everything"], "attribute_set"),
        (["-o", "attributes=5"], "attributes"),
    ]:
        result = await world.cli("reprocess", str(job.id), *args)
        error = assert_one_line_error(result, code=2)
        assert "--option" in error, error
        assert named in error, (args, error)
    assert snapshot(world.db) == before
    assert world.sim.stats.count() == calls
    assert not _reprocess_calls(world)

    # The same options the API takes do reach it.
    result = await world.cli("reprocess", str(job.id), "-o", "failed_only=false", "--json")
    assert result.code == 0, result.err
    assert _reprocess_calls(world) == 1


def _reprocess_calls(world: World) -> int:
    endpoints = world.sim.stats.by_endpoint("reprompt")
    return sum(n for endpoint, n in endpoints.items() if "reprocess" in endpoint)


# -- 7. vendor job ids no vendor issues ----------------------------------------------------


async def test_track_refuses_vendor_job_ids_no_vendor_issues(world: World):
    before = snapshot(world.db)
    for vendor_job_id, expected in [
        ("b" * 201, "must be at most 200 characters"),
        ("b" * 300, "must be at most 200 characters"),
        ("b-\x01-1", "must not contain control characters"),
        ("b-\x1b[31m-1", "must not contain control characters"),
        ("b-\n-1", "must not contain control characters"),
        ("b-\x7f-1", "must not contain control characters"),
        ("b-\x85-1", "must not contain control characters"),
    ]:
        result = await world.cli("track", "crustdata", vendor_job_id)
        error = assert_one_line_error(result, code=2)
        assert "VENDOR_JOB_ID" in error
        assert expected in error, repr(vendor_job_id)
    assert snapshot(world.db) == before

    longest = "b" * 200
    result = await world.cli("track", "crustdata", f"  {longest}\n", "--json")
    assert result.code == 0, result.err
    assert f'"vendor_job_id": "{longest}"' in result.out


async def test_a_database_that_cannot_be_read_is_one_line_naming_the_cause(world: World):
    """A file whose tables are not what this version wrote (a failing disk, a hand edit) is a
    refusal naming what could not be read, not a traceback."""
    job = world.jobs[VendorName.ECORE]
    await world.services.store._writer.run(
        lambda conn: conn.execute("ALTER TABLE events RENAME TO gone")
    )
    line = assert_one_line_error(await world.cli("show", str(job.id)))
    assert "could not read the event log: no such table: events" in line


def _people_csv(path: Path) -> Path:
    path.write_text("professional_network_profile_urls\nhttps://www.linkedin.com/in/p1/\n")
    return path


CONTROLS = "must not contain control characters (line breaks, tabs, escape sequences)"

BAD_NAMES = [
    ("", "must not be blank"),
    ("   ", "must not be blank"),
    ("line1\nline2\x1b[31mred", CONTROLS),
    ("tab\there", CONTROLS),
    ("bell\x07", CONTROLS),
    ("x" * 201, "must be at most 200 characters (this one has 201)"),
]


async def test_a_blank_name_or_one_that_would_garble_listings_is_refused(world: World, tmp_path):
    """An empty --name used to fall back to the file's name without a word, and a name with a
    line break or an escape sequence garbled every listing it was in; the API takes names of
    at most 200 characters, and so does the CLI now."""
    people = _people_csv(tmp_path / "people.csv")
    before, calls = snapshot(world.db), world.sim.stats.count()

    for name, expected in BAD_NAMES:
        for args in (["submit", "crustdata", str(people)], ["track", "ecore", "e-named"]):
            error = assert_one_line_error(await world.cli(*args, "--name", name), code=2)
            assert error == f"Error: Invalid value for '--name': {expected}", (args, name)

    assert snapshot(world.db) == before
    assert world.sim.stats.count() == calls
    result = await world.cli("track", "ecore", "e-named", "--name", "x" * 200)
    assert result.code == 0, result.err


async def test_a_file_whose_name_would_garble_listings_needs_a_name(world: World, tmp_path):
    """Without --name the job is named after the file, whose name may hold a tab or a line
    break as well."""
    tabbed = _people_csv(tmp_path / "q4\tpeople.csv")
    before, calls = snapshot(world.db), world.sim.stats.count()

    error = assert_one_line_error(await world.cli("submit", "crustdata", str(tabbed)), code=2)

    assert error == (
        "Error: the file's name cannot name the job: it must not contain control characters "
        "(line breaks, tabs, escape sequences); give --name"
    )
    assert snapshot(world.db) == before
    assert world.sim.stats.count() == calls
    result = await world.cli("submit", "crustdata", str(tabbed), "--name", "q4 people", "--json")
    assert result.code == 0, result.err
    assert [job["name"] for job in json.loads(result.out)] == ["q4 people"]
