"""`notifications` says as much as `jobs` and `show` do when there is nothing to list: an
unknown job is a one-line error, and an empty list says so."""

from __future__ import annotations

import json

from tests.cli.conftest import World, assert_one_line_error
from tests.conftest import snapshot


async def test_notifications_of_an_unknown_job_are_a_one_line_error(world: World):
    before = snapshot(world.db)
    for args in (("--job", "999"), ("--job", "999", "--json")):
        result = await world.cli("notifications", *args)
        assert assert_one_line_error(result) == "Error: no job with id 999"
        assert result.out == ""
    assert snapshot(world.db) == before


async def test_an_empty_list_of_notifications_says_so(world: World):
    result = await world.cli("notifications", "--state", "dead", "--json")
    assert (result.code, json.loads(result.out)) == (0, [])  # nothing failed here
    result = await world.cli("notifications", "--state", "dead")
    assert (result.code, result.out.strip(), result.err) == (0, "no notifications", "")

    # A job that exists but was told nothing is an empty list too, not an error.
    job = world.jobs[next(iter(world.jobs))]
    result = await world.cli("notifications", "--job", str(job.id), "--state", "dead")
    assert (result.code, result.out.strip()) == (0, "no notifications")
