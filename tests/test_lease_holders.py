"""Two reconcilers on one database never both handle a job; a killed one's leases are freed at
the next start, never a running one's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from enrichwatch.models import VendorName
from enrichwatch.store.holders import LeaseHolder, gone_holders, holders_directory
from reconciler import Reconciler, running
from reconciler.checks import check_due_jobs
from tests.conftest import eventually, query
from tests.test_reconciler_races import REPROMPT_STATUS
from tests.test_results_and_actions import world  # noqa: F401 (a fixture)

_HOLD = """
import sys
from pathlib import Path
from enrichwatch.store.holders import LeaseHolder
LeaseHolder.acquire(Path(sys.argv[1]), sys.argv[2])
print("holding", flush=True)
sys.stdin.read()
"""


@contextmanager
def holding(db: Path, owner: str) -> Iterator[None]:
    """`owner` holding in a process of its own until the block ends, then killed (-9)."""
    with subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(db), owner],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline() == "holding\n"
            yield
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def test_a_holder_is_running_until_its_process_is_killed(tmp_path):
    db = tmp_path / "enrichwatch.db"
    with holding(db, "host:42:abcd"):
        assert gone_holders(db, {"host:42:abcd", "host:7:left"}) == {"host:7:left"}
    assert gone_holders(db, {"host:42:abcd"}) == {"host:42:abcd"}
    assert list(holders_directory(db).iterdir()) == []  # its file went with it


def test_a_holder_that_ends_cleanly_leaves_no_file(tmp_path):
    db = tmp_path / "enrichwatch.db"
    holder = LeaseHolder.acquire(db, "host:1:beef")
    assert gone_holders(db, {"host:1:beef"}) == set()
    holder.release()
    assert list(holders_directory(db).iterdir()) == []
    assert gone_holders(db, {"host:1:beef"}) == {"host:1:beef"}


async def test_a_second_reconciler_leaves_a_running_ones_check_alone(world):  # noqa: F811
    """Reconciler A's status call is under way when B starts on the same database. B must
    neither free A's lease nor call the vendor about the job itself."""
    job = await world.submit(VendorName.REPROMPT)
    await world.sim.advance(600)  # past its first planned check
    world.sim.set_fault(
        "reprompt", slow_count=1, slow_seconds=3, slow_after_answer=True, endpoint=REPROMPT_STATUS
    )

    def lease_owner() -> str | None:
        return query(world.db, "SELECT lease_owner FROM jobs WHERE id = ?", (job.id,))[0][0]

    first = Reconciler(world.services)
    async with running(world.services, rc=first):
        await eventually(lambda: world.sim.stats.injected[("reprompt", "slow")] == 1)
        calls = world.sim.stats.count("reprompt", REPROMPT_STATUS)

        second = Reconciler(world.services)
        async with running(world.services, rc=second):
            assert lease_owner() == first.owner
            await check_due_jobs(second, VendorName.REPROMPT)
            assert world.sim.stats.count("reprompt", REPROMPT_STATUS) == calls
            await eventually(lambda: lease_owner() is None, what="A's answer recorded")
            assert world.sim.stats.count("reprompt", REPROMPT_STATUS) == calls  # one call in all


async def test_a_starting_reconciler_clears_the_files_of_holders_that_are_gone(services):
    """A holder killed while no lease names it, or between making its file and naming it,
    leaves a file nothing would ever look at again; a reconciler's start clears them, never a
    running holder's file or a draft too young to be a killed one's."""
    db = services.store.path
    with holding(db, "host:42:killed"):
        pass  # killed while no lease names it
    directory = holders_directory(db)
    stale_draft, young_draft = directory / ".new-stale", directory / ".new-young"
    stale_draft.touch()
    os.utime(stale_draft, (1, 1))
    young_draft.touch()
    running_holder = LeaseHolder.acquire(db, "host:7:running")
    try:
        left = {path.name for path in directory.iterdir()}
        assert {"host_42_killed.lock", ".new-stale", ".new-young", "host_7_running.lock"} <= left

        async with running(services):
            kept = {path.name for path in directory.iterdir()}
        # What is left: the young draft, the running holder's file and the reconciler's own.
        assert {".new-young", "host_7_running.lock"} < kept
        assert len(kept) == 3
        assert not {".new-stale", "host_42_killed.lock"} & kept
    finally:
        running_holder.release()
