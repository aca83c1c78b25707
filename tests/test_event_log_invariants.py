"""The event log's promises under any order of the writes that reach it.

The reconciler's writes race each other in real use: a callback lands while a status call is
out, a lease runs out and a second reconciler answers for the same job, an operator's
reprocess ends a fetch between two of its pages, or asks for failed results again while
the job moves on. Hypothesis drives the store's own write API
(on a real SQLite file) through random interleavings of those, and after every step checks
what must hold whatever the order:

- a job's state is the one its events say, and moves only forward (a reprocess, or an
  operator asking again about an expired job, alone starts a new run);
- an open job always has a next check (none is forgotten), a finished one never;
- the stored results are what the job's counts say, and a fetch that a later state or a
  reprocess ended writes nothing more: each of its writes is refused;
- at most one fetch per job is pending, and only while the job's results are pending; a
  finished job's results are pending only on a fetch queued for them;
- every vendor call is counted on the job once;
- every outcome of the job's run (failed, expired, paused, completed, fetch failed) is
  notified (a failure or completion with records to fetch, once the fetch ends).

A sequence it finds is kept at the end as a test of its own (`replayed`).
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import tempfile
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from enrichwatch.errors import FetchSupersededError, ResultsStateError
from enrichwatch.models import JobState, VendorName
from enrichwatch.store import InboundDelivery, JobRecord, Store
from enrichwatch.store.checks import CheckOutcome, moves_forward
from enrichwatch.store.fetches import FETCH_WORK
from enrichwatch.vendors.base import ResultRecord, StatusSnapshot

T = TypeVar("T")

VENDORS = (VendorName.ECORE, VendorName.BRIGHTLOCAL, VendorName.CRUSTDATA)
LEASE_S = 300.0
REOPENS = "job.reprocess_requested"

job_index = st.integers(0, len(VENDORS) - 1)
vendor_says = st.one_of(
    st.sampled_from([JobState.COMPLETED, JobState.NEEDS_ACTION, JobState.RUNNING]),
    st.sampled_from(list(JobState)),
)
"""Any state, the ones that bring results (and a fetch to race) the more often."""
pick = st.integers(0, 1_000)
"""Which of the outstanding claims or fetches a rule acts on (modulo how many there are)."""


class EventLogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="event-log-"))
        self.now = 1_000_000.0
        self.loop = asyncio.new_event_loop()
        self.store = Store(self.folder / "log.db", clock=lambda: self.now)
        self.run(self.store.start())
        self.db = sqlite3.connect(self.folder / "log.db")
        self.db.row_factory = sqlite3.Row
        self.jobs: list[JobRecord] = []
        self.claims: list[JobRecord] = []
        """Jobs as they were leased for a status call that has not answered yet."""
        self.fetches: list[int] = []
        """Fetch work items claimed and not yet ended by their holder."""
        self.calls: dict[int, float] = {}
        self.last_state: dict[int, JobState] = {}
        self.reopened_at: dict[int, int] = {}
        """The seq of each job's last reprocess or return from expiry: state may start over
        after it."""

    def run(self, step: Awaitable[T]) -> T:
        return self.loop.run_until_complete(step)

    def teardown(self) -> None:
        self.db.close()
        self.run(self.store.close())
        self.loop.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    @initialize()
    def track_jobs(self) -> None:
        for number, vendor in enumerate(VENDORS):
            job, _ = self.run(self.store.track_job(vendor, f"{vendor.value}-{number}", None))
            self.jobs.append(job)
            self.calls[job.id] = 0.0
            self.last_state[job.id] = job.state

    # -- what happens -------------------------------------------------------------------------

    @rule(seconds=st.sampled_from([1.0, 30.0, 301.0]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @rule(job=job_index, body=st.sampled_from([b'{"status":"done"}', b'{"status":"running"}']))
    def callback_arrives(self, job: int, body: bytes) -> None:
        record = self.jobs[job]
        delivery = InboundDelivery(
            method="POST",
            headers={},
            content_type="application/json",
            body=body,
            verification="none",
            dedupe_key=body.hex(),
        )
        assert self.run(
            self.store.record_callback(
                record.vendor, record.callback_token, delivery, vendor_sends_callbacks=True
            )
        )

    @rule(job=job_index)
    def status_call_goes_out(self, job: int) -> None:
        claimed = self.run(
            self.store.claim_job(self.jobs[job].id, owner="reconciler", lease_s=LEASE_S)
        )
        if claimed is not None:
            self.claims.append(claimed)

    @rule(job=job_index, state=vendor_says, done=st.integers(0, 6), available=st.booleans())
    def job_is_checked(self, job: int, state: JobState, done: int, available: bool) -> None:
        claimed = self.run(
            self.store.claim_job(self.jobs[job].id, owner="reconciler", lease_s=LEASE_S)
        )
        if claimed is not None:
            self.answer(claimed, state, done, available)

    @precondition(lambda self: self.claims)
    @rule(which=pick, state=vendor_says, done=st.integers(0, 6), available=st.booleans())
    def status_call_answers(self, which: int, state: JobState, done: int, available: bool) -> None:
        self.answer(self.claims.pop(which % len(self.claims)), state, done, available)

    def answer(self, claimed: JobRecord, state: JobState, done: int, available: bool) -> None:
        snapshot = StatusSnapshot(
            vendor_job_id=claimed.vendor_job_id or "",
            state=state,
            vendor_status=state.value,
            done=done,
            total=6,
            results_available=available,
        )
        outcome = CheckOutcome(snapshot=snapshot, cost=1.0, next_check_at=self.now + 60)
        self.run(self.store.record_check(claimed, outcome))
        self.calls[claimed.id] += 1.0

    @precondition(lambda self: self.claims)
    @rule(which=pick)
    def status_call_fails(self, which: int) -> None:
        claimed = self.claims.pop(which % len(self.claims))
        self.run(
            self.store.record_check_failure(
                claimed, "HTTP 503", cost=1.0, retry_at=self.now + 30, retry_after=None
            )
        )
        self.calls[claimed.id] += 1.0

    @precondition(lambda self: self.claims)
    @rule(which=pick)
    def request_budget_defers_the_call(self, which: int) -> None:
        claimed = self.claims.pop(which % len(self.claims))
        self.run(self.store.defer_checks([claimed.id], self.now + 5))

    @rule(holder=st.sampled_from(["reconciler", "fetcher"]))
    def a_restart_frees_what_a_killed_holder_leased(self, holder: str) -> None:
        self.run(self.store.release_leases({holder}))
        if holder == "reconciler":
            self.claims.clear()
        else:
            self.fetches.clear()
        self.run(self.store.make_open_jobs_due())

    @rule()
    def safety_sweep_runs(self) -> None:
        self.run(self.store.make_stale_jobs_due({vendor: 600.0 for vendor in VENDORS}))

    @rule(job=job_index)
    def operator_asks_for_a_check(self, job: int) -> None:
        job_id = self.jobs[job].id
        self.run(self.store.record_action(job_id, "job.check_requested", {}, vendor_calls=0))

    @rule(job=job_index)
    def operator_reprocesses(self, job: int) -> None:
        job_id = self.jobs[job].id
        self.run(self.store.record_action(job_id, REOPENS, {}, vendor_calls=1, reopen=True))
        self.calls[job_id] += 1.0

    @rule(job=job_index)
    def operator_fetches_again(self, job: int) -> None:
        """Taken only while the job's results are `fetch_failed`; refused, changing nothing,
        otherwise."""
        job_id = self.jobs[job].id
        (results,) = self.db.execute(
            "SELECT results_state FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        if results == "fetch_failed":
            self.run(self.store.refetch(job_id))
        else:
            with pytest.raises(ResultsStateError):
                self.run(self.store.refetch(job_id))

    @rule(job=job_index)
    def job_expires(self, job: int) -> None:
        self.run(self.store.end_job(self.jobs[job].id, JobState.EXPIRED, "too old"))

    @rule()
    def fetcher_claims(self) -> None:
        items = self.run(
            self.store.claim_work(FETCH_WORK, owner="fetcher", lease_s=LEASE_S, limit=5)
        )
        self.fetches.extend(item.id for item in items)

    @precondition(lambda self: self.fetches)
    @rule(which=pick, first=st.integers(0, 5), count=st.integers(1, 3))
    def fetcher_stores_a_page(self, which: int, first: int, count: int) -> None:
        item_id = self.fetches[which % len(self.fetches)]
        job_id = self.job_of(item_id)
        page = [
            ResultRecord(position, f"in-{position}", "ok", '{"x": 1}')
            for position in range(first, first + count)
        ]

        async def fetch() -> None:
            await self.store.start_fetch(job_id, item_id=item_id)
            await self.store.store_results(job_id, page, item_id=item_id, lease_s=LEASE_S)

        self.expect_refused_unless_pending(item_id, fetch(), ends=False)

    @precondition(lambda self: self.fetches)
    @rule(which=pick, how=st.sampled_from(["finish", "fail", "retry"]))
    def fetcher_ends_a_try(self, which: int, how: str) -> None:
        item_id = self.fetches[which % len(self.fetches)]
        job_id = self.job_of(item_id)
        store = self.store
        step: Awaitable[Any] = {
            "finish": lambda: store.finish_fetch(job_id, item_id),
            "fail": lambda: store.fail_fetch(item_id, job_id, "gave up"),
            "retry": lambda: store.retry_fetch(
                item_id, job_id, due_at=self.now + 10, error="HTTP 502"
            ),
        }[how]()
        self.expect_refused_unless_pending(item_id, step, ends=True)

    @precondition(lambda self: self.fetches)
    @rule(which=pick)
    def fetcher_finds_the_pause_over(self, which: int) -> None:
        """As the fetcher withdraws only a paused job's partial set, found gone because the job
        runs again, only a fetch that a pause started is withdrawn."""
        item_id = self.fetches[which % len(self.fetches)]
        (found,) = self.db.execute(
            "SELECT payload ->> '$.snapshot.state' FROM work WHERE id = ?", (item_id,)
        ).fetchone()
        if found == JobState.NEEDS_ACTION.value:
            step = self.store.withdraw_fetch(item_id, self.job_of(item_id), "running again")
            self.expect_refused_unless_pending(item_id, step, ends=True)

    def expect_refused_unless_pending(
        self, item_id: int, step: Awaitable[Any], *, ends: bool
    ) -> None:
        """A fetch's write is taken while its item is pending, and refused once anything
        ended it; either way the holder is done with an item that is not pending."""
        pending = self.item_state(item_id) == "pending"
        if pending:
            self.run(step)
        else:
            with pytest.raises(FetchSupersededError):
                self.run(step)
        if ends or not pending:
            self.fetches.remove(item_id)

    # -- what must hold -----------------------------------------------------------------------

    @invariant()
    def holds_for_every_job(self) -> None:
        for row in self.db.execute("SELECT * FROM jobs ORDER BY id").fetchall():
            job = JobRecord.from_row(row)
            self.state_is_the_event_logs_and_moves_forward(job)
            self.open_jobs_have_a_next_check_and_finished_ones_none(job)
            self.results_match_their_counts(job)
            self.one_pending_fetch_per_job_and_only_while_results_are_pending(job)
            self.every_call_is_counted_once(job)
            self.every_outcome_of_the_run_is_told(job)

    def state_is_the_event_logs_and_moves_forward(self, job: JobRecord) -> None:
        folded = JobState.SUBMITTED
        last_reopen = 0
        for seq, kind, before_state, next_state in self.db.execute(
            "SELECT seq, type, payload ->> '$.from', payload ->> '$.to' FROM events "
            "WHERE job_id = ? ORDER BY seq",
            (job.id,),
        ):
            if kind == "job.state_changed":
                folded = JobState(next_state)
                if before_state == JobState.EXPIRED:  # asked about again: a new run
                    last_reopen = seq
            elif kind == REOPENS:
                last_reopen = seq
        assert job.state is folded
        before = self.last_state[job.id]
        if last_reopen == self.reopened_at.get(job.id, 0):
            assert job.state is before or moves_forward(before, job.state)
        self.last_state[job.id] = job.state
        self.reopened_at[job.id] = last_reopen

    def open_jobs_have_a_next_check_and_finished_ones_none(self, job: JobRecord) -> None:
        if job.state.is_terminal:
            assert job.next_check_at is None
        else:
            assert job.next_check_at is not None

    def results_match_their_counts(self, job: JobRecord) -> None:
        (stored,) = self.db.execute(
            "SELECT COUNT(*) FROM results WHERE job_id = ?", (job.id,)
        ).fetchone()
        assert job.results_count == stored
        if job.results_state == "stored":
            last = self.db.execute(
                """SELECT type, payload ->> '$.count' AS count FROM events
                    WHERE job_id = ? AND type LIKE 'results.%' ORDER BY seq DESC LIMIT 1""",
                (job.id,),
            ).fetchone()
            assert (last["type"], last["count"]) == ("results.stored", stored)

    def one_pending_fetch_per_job_and_only_while_results_are_pending(self, job: JobRecord) -> None:
        (pending,) = self.db.execute(
            "SELECT COUNT(*) FROM work WHERE job_id = ? AND kind = ? AND state = 'pending'",
            (job.id, FETCH_WORK),
        ).fetchone()
        assert pending <= 1
        if pending:
            assert job.results_state in ("pending", "fetching")
        if job.results_state == "fetching" or (
            job.state.is_terminal and job.results_state == "pending"
        ):
            assert pending == 1  # results never wait on a fetch that nothing will run

    def every_call_is_counted_once(self, job: JobRecord) -> None:
        assert job.vendor_calls == self.calls[job.id]

    def every_outcome_of_the_run_is_told(self, job: JobRecord) -> None:
        told = {
            outcome
            for (outcome,) in self.db.execute(
                "SELECT payload ->> '$.outcome' FROM work WHERE job_id = ? AND kind = 'notify' "
                "AND unique_key LIKE ?",
                (job.id, "%" if job.run_started_at is None else f"%:run:{job.run_started_at!r}"),
            )
        }
        due = {
            # A failure with records to fetch is told once the fetch ends, as a completion is.
            JobState.FAILED: (
                {"failed"} if job.results_state in (None, "stored", "fetch_failed") else set()
            ),
            JobState.EXPIRED: {"expired"},
            JobState.NEEDS_ACTION: {"needs_action"},
            JobState.COMPLETED: {"completed"} if job.results_state in (None, "stored") else set(),
        }.get(job.state, set())
        if job.results_state == "fetch_failed":
            due.add("fetch_failed")
        assert due <= told

    # -- reading ------------------------------------------------------------------------------

    def job_of(self, item_id: int) -> int:
        (job_id,) = self.db.execute("SELECT job_id FROM work WHERE id = ?", (item_id,)).fetchone()
        return int(job_id)

    def item_state(self, item_id: int) -> str:
        (state,) = self.db.execute("SELECT state FROM work WHERE id = ?", (item_id,)).fetchone()
        return str(state)


EventLogMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=50,
    deadline=None,
    derandomize=True,  # the same interleavings every run: a failure here is a finding
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEventLog = EventLogMachine.TestCase


def replayed(*steps: tuple[str, dict[str, Any]]) -> None:
    """The machine driven through `steps` (rule name, arguments), its promises checked after
    each: how a sequence it found is kept as a test of its own."""
    machine = EventLogMachine()
    try:
        machine.track_jobs()
        for name, arguments in steps:
            getattr(machine, name)(**arguments)
            machine.holds_for_every_job()
    finally:
        machine.teardown()


PAUSED = {"job": 0, "state": JobState.NEEDS_ACTION, "done": 2, "available": True}


def test_a_fetch_a_reprocess_ended_cannot_queue_a_retry() -> None:
    """A fetch's transient failure, reported after a reprocess had ended the fetch, logged
    `results.fetch_retry` against the new run."""
    replayed(
        ("job_is_checked", {"job": 0, "state": JobState.COMPLETED, "done": 6, "available": True}),
        ("fetcher_claims", {}),
        ("operator_reprocesses", {"job": 0}),
        ("fetcher_ends_a_try", {"which": 0, "how": "retry"}),
    )


@pytest.mark.parametrize("pages", [0, 1], ids=["nothing-stored", "a-page-stored"])
@pytest.mark.parametrize(
    "ending",
    [
        ("job_expires", {"job": 0}),
        ("job_is_checked", {"job": 0, "state": JobState.FAILED, "done": 2, "available": False}),
    ],
    ids=["expired", "failed"],
)
def test_a_job_that_ends_after_its_partial_set_was_withdrawn_has_no_results_pending(
    ending: tuple[str, dict[str, Any]], pages: int
) -> None:
    """A paused job's partial set is withdrawn once the job runs again, leaving its results
    pending on the next state; a last state that brings none left them pending for ever.
    What the withdrawn fetch had stored stays, as the job's results."""
    page = ("fetcher_stores_a_page", {"which": 0, "first": 0, "count": 1})
    replayed(
        ("job_is_checked", PAUSED),
        ("fetcher_claims", {}),
        *[page] * pages,
        ("fetcher_finds_the_pause_over", {"which": 0}),
        ending,
    )


def test_a_partial_set_withdrawn_from_a_job_that_has_ended_is_not_left_pending() -> None:
    """The same, the other way round: the job failed while its partial set was being fetched,
    and the fetch, refused, is withdrawn after."""
    replayed(
        ("job_is_checked", PAUSED),
        ("fetcher_claims", {}),
        ("job_is_checked", {"job": 0, "state": JobState.FAILED, "done": 2, "available": False}),
        ("fetcher_finds_the_pause_over", {"which": 0}),
    )


def test_a_finished_job_an_operator_asks_about_gets_no_next_check() -> None:
    replayed(("job_expires", {"job": 0}), ("operator_asks_for_a_check", {"job": 0}))


def test_a_job_that_ended_while_its_call_waited_for_the_budget_gets_no_next_check() -> None:
    replayed(
        ("status_call_goes_out", {"job": 0}),
        ("job_expires", {"job": 0}),
        ("request_budget_defers_the_call", {"which": 0}),
    )
