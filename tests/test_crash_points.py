"""A job's life killed at every point between two of its writes, then the service restarted
on the same database: every part ends tracked to completion with every result stored once,
or failed, and is notified; none is left waiting for ever, and none is sent twice.

A kill stops a process between two writes, with what it asked the vendor in between already
done there. Each scenario runs once to count its writes, then once for each of them with the
process dying just before it: that write and every later one never happen, so no clean-up of
the dying process reaches the database. A second process on the same database then does what
a restart does and reconciles until nothing is left to do. The scenarios: a batch sent at
once, for every vendor; two parts held back at Crustdata's cap; the reconciler's lane sending
a held part; for every vendor, a batch sent and reconciled to its end by the same process
(its checks, fetches and notifications); a Reprompt batch reprocessed once done; an eCore
job paused mid-run and resumed; and an influencers.club batch that failed mid-run, resumed.
For a batch sent at once, the restart after each kill is killed in turn before each of its
own writes too. Against the simulator over real HTTP; the dying process's lock file goes as
a killed process's does.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from enrichwatch.actions import reprocess, resume
from enrichwatch.config import load_settings
from enrichwatch.errors import EnrichwatchError
from enrichwatch.models import JobState, VendorName
from enrichwatch.runtime import Services, open_services
from enrichwatch.sim import SimConfig, SimServer
from enrichwatch.sim.crustdata_files import result_count
from enrichwatch.store import JobRecord, Store
from enrichwatch.submission import SubmissionOutcome, submit_batch
from enrichwatch.vendors import ADAPTERS
from enrichwatch.vendors.base import SubmitRequest
from receiver import serving
from reconciler import Reconciler, reconcile_once
from reconciler.scheduler import take_over
from reconciler.submissions import send_queued_submissions
from tests.conftest import API_TOKEN, notified, result_positions
from tests.notify.conftest import SECRET
from tests.notify.servers import WebhookReceiver
from tests.settling import next_due, settle
from tests.test_reconciler import INPUTS


class Killed(BaseException):
    """The process dies here: no `except Exception` of ours catches it."""


class Mortal:
    """A store whose `dies_at`-th write, and every one after, raises Killed unwritten."""

    def __init__(self, store: Store, dies_at: int | None) -> None:
        self.writes = 0
        self.died = False
        run = store._writer.run

        async def run_or_die(op: Any) -> Any:
            self.writes += 1
            if dies_at is not None and self.writes >= dies_at:
                self.died = True
                raise Killed
            return await run(op)

        store._writer.run = run_or_die


Scenario = Callable[[Services, str, SimServer], Awaitable[object]]
"""What the dying process does, given its services, the URL its callbacks come back to and
the vendors."""


def submits(
    vendor: VendorName, rows: list[dict[str, str]] | None = None, **options: Any
) -> Scenario:
    """A batch sent at once, as the API and the CLI send it (by default a one-part one)."""
    default_rows, default_options = INPUTS[vendor]

    async def scenario(services: Services, url: str, sim: SimServer) -> object:
        request = SubmitRequest(
            rows=rows or default_rows, name="part", options=options or default_options
        )
        return await submit_batch(services, vendor, request, public_url=url)

    return scenario


def reconciles(vendor: VendorName) -> Scenario:
    """A one-part batch sent, then reconciled to its end by the same process."""
    send = submits(vendor)

    async def scenario(services: Services, url: str, sim: SimServer) -> object:
        sent = await send(services, url, sim)
        await settle(sim, services, Reconciler(services))
        return sent

    return scenario


async def reprocesses_once_done(services: Services, url: str, sim: SimServer) -> object:
    """A Reprompt batch sent and reconciled to its end, then reprocessed whole and
    reconciled to its end again: a second run whose results replace the first's."""
    sent = await reconciles(VendorName.REPROMPT)(services, url, sim)
    assert isinstance(sent, SubmissionOutcome)
    (job,) = sent.jobs
    await reprocess(services, job.id, {"failed_only": False})
    await settle(sim, services, Reconciler(services))
    return sent


async def the_part(services: Services) -> JobRecord | None:
    """The case's one job, if the kill left one (none: it came before the reservation)."""
    parts = [job for job in await services.store.list_jobs() if job.name != SLOT]
    assert len(parts) <= 1
    return parts[0] if parts else None


async def reconciles_until_paused_or_ended(services: Services, sim: SimServer) -> JobRecord:
    """Reconcile passes and jumps of the clock until the part is paused with its partial
    results stored, or has ended."""
    rc = Reconciler(services)
    for _ in range(400):
        await reconcile_once(rc)
        job = await the_part(services)
        assert job is not None
        paused = job.state is JobState.NEEDS_ACTION and job.results_state == "stored"
        if paused or job.state.is_terminal:
            return job
        await sim.advance_to(max(next_due(services.store.path) or 0.0, sim.clock.now()))
    raise AssertionError("the part was never paused nor ended")


async def paused_then_resumed(services: Services, url: str, sim: SimServer) -> object:
    """An eCore job paused by hand at the vendor mid-run, its partial results fetched, then
    resumed by the operator and reconciled to its end."""
    sent = await submits(VendorName.ECORE)(services, url, sim)
    await sim.advance(20)  # running there
    sent_job = await the_part(services)
    assert sent_job is not None
    await services.adapter(VendorName.ECORE).pause(sent_job.vendor_job_id or "")
    job = await reconciles_until_paused_or_ended(services, sim)
    await resume(services, job.id)
    await settle(sim, services, Reconciler(services))
    return sent


async def resumes_if_still_paused(survivor: Services, sim: SimServer) -> None:
    """The operator, whose resume the kill left unanswered, resumes the part again."""
    if await the_part(survivor) is None:
        return
    job = await reconciles_until_paused_or_ended(survivor, sim)
    if job.state is JobState.NEEDS_ACTION:
        await resume(survivor, job.id)


async def fails_then_resumed(services: Services, url: str, sim: SimServer) -> object:
    """An influencers.club batch that fails mid-run, resumed by the operator as a new run
    (its results only in that run) and reconciled to its end."""
    sent = await reconciles(VendorName.INFLUENCERS_CLUB)(services, url, sim)
    job = await the_part(services)
    assert job is not None
    await resume(services, job.id)
    await settle(sim, services, Reconciler(services))
    return sent


async def every_first_run_fails(survivor: Services, sim: SimServer, url: str) -> None:
    sim.config.influencers_club.profile.job_failure_rate = 1.0


async def resumes_if_still_failed(survivor: Services, sim: SimServer) -> None:
    """The operator, whose resume the kill left unanswered, resumes the part again."""
    job = await the_part(survivor)
    if job is None or job.vendor_job_id is None:
        return  # nothing was sent
    await settle(sim, survivor, Reconciler(survivor))
    if (await survivor.store.get_job(job.id)).state is JobState.FAILED:
        await resume(survivor, job.id)


async def sends_held_parts(services: Services, url: str, sim: SimServer) -> object:
    """The reconciler's lane sending the parts held back here."""
    return await send_queued_submissions(services, "lane:dying")


async def take_the_one_slot(survivor: Services, sim: SimServer, url: str) -> None:
    """Crustdata at its cap of one active job."""
    sim.config.crustdata.max_active_jobs = 1
    rows, options = INPUTS[VendorName.CRUSTDATA]
    request = SubmitRequest(rows=rows, name=SLOT, options=options)
    await submit_batch(survivor, VendorName.CRUSTDATA, request, public_url=url)


async def hold_a_part_until_the_slot_frees(survivor: Services, sim: SimServer, url: str) -> None:
    await take_the_one_slot(survivor, sim, url)
    await submits(VendorName.CRUSTDATA)(survivor, url, sim)
    await sim.advance(24 * 3600)  # the slot's job ends there; the held part is due


SLOT = "slot"
"""The name of a job the survivor sent to fill the vendor's cap: not the case's."""
PROFILES = [
    {"professional_network_profile_urls": f"https://www.linkedin.com/in/c{n}/"} for n in range(301)
]
"""Two parts: Crustdata's contact endpoint takes 300 profiles a job."""


@dataclass
class Case:
    scenario: Scenario
    vendor: VendorName
    parts: int = 1
    prepare: Callable[[Services, SimServer, str], Awaitable[None]] | None = None
    """What the survivor does first, before the dying process starts."""
    after_restart: Callable[[Services, SimServer], Awaitable[None]] | None = None
    """What the operator does again after the restart, before it reconciles to the end."""


CASES = {
    **{f"{vendor.value}-direct": Case(submits(vendor), vendor) for vendor in VendorName},
    # The first part held back at the cap, the second waiting behind it.
    "crustdata-two-parts-at-cap": Case(
        submits(VendorName.CRUSTDATA, PROFILES, endpoint="contact", fields=["business_email"]),
        VendorName.CRUSTDATA,
        parts=2,
        prepare=take_the_one_slot,
    ),
    "crustdata-held-part-sent-by-the-lane": Case(
        sends_held_parts, VendorName.CRUSTDATA, prepare=hold_a_part_until_the_slot_frees
    ),
    **{f"{vendor.value}-whole-life": Case(reconciles(vendor), vendor) for vendor in VendorName},
    "reprompt-reprocessed": Case(reprocesses_once_done, VendorName.REPROMPT),
    "influencers_club-failed-and-resumed": Case(
        fails_then_resumed,
        VendorName.INFLUENCERS_CLUB,
        prepare=every_first_run_fails,
        after_restart=resumes_if_still_failed,
    ),
    "ecore-paused-and-resumed": Case(
        paused_then_resumed, VendorName.ECORE, after_restart=resumes_if_still_paused
    ),
}


@dataclass
class Outcome:
    writes: list[int]
    """How many writes each dying process made, or tried (the one it died at included)."""
    died: list[bool]
    jobs: list[sqlite3.Row]
    held_there: list[str]
    """The vendor's jobs for the case still there (a deleted BrightLocal batch is gone)."""
    notified: dict[int, list[str]]
    undelivered: int
    """Notifications not yet sent (or given up on)."""
    processed: list[tuple[int, str]]
    """(job, outcome) of each notification the receiver processed: once per webhook-id."""
    rejected: int
    outcomes: dict[int, list[str]]
    """What each job's event log says it was told of, in order."""
    results: dict[int, tuple[list[int], list[int]]]
    """Each tracked job's stored result positions, and the ones the vendor's results have."""
    calls: tuple[float, int]
    """Vendor calls counted on the case's jobs, and the calls the vendor saw."""


async def run_case(folder: Path, case: Case, kills: tuple[int | None, ...]) -> Outcome:
    """The case's scenario run by a process that dies before write `kills[0]`, each later
    entry a restart that dies before that write of its own (None: it does not die), then a
    last restart that reconciles to the end."""
    folder.mkdir()
    db = folder / "crash.db"
    receiver = await WebhookReceiver(SECRET).start()
    try:
        return await run_case_told_to(receiver, db, case, kills)
    finally:
        await receiver.stop()


async def run_case_told_to(
    receiver: WebhookReceiver, db: Path, case: Case, kills: tuple[int | None, ...]
) -> Outcome:
    async with SimServer(SimConfig(seed=23, start_time=time.time())) as sim:
        settings = load_settings(
            db=db,
            api_token=API_TOKEN,
            notify={"webhook_url": receiver.url, "webhook_secret": SECRET},
            **sim.vendor_settings(),
        )
        async with (
            open_services(settings, clock=sim.clock.now) as survivor,
            serving(survivor, "127.0.0.1", 0) as url,
        ):
            if case.prepare is not None:
                await case.prepare(survivor, sim, url)
            mortals = []
            for number, dies_at in enumerate(kills):
                async with open_services(settings, clock=sim.clock.now) as dying:
                    mortals.append(Mortal(dying.store, dies_at))
                    with suppress(Killed, EnrichwatchError):
                        if number == 0:
                            await case.scenario(dying, url, sim)
                        else:
                            await restart(dying, sim, case)
                    # The kernel drops a killed process's locks: its holder is gone.
                    dying.sender.release()
            await restart(survivor, sim, case)
            return outcome_of(db, sim, case.vendor, mortals, receiver)


async def restart(services: Services, sim: SimServer, case: Case) -> None:
    """What a restart does, then what the operator does again, then reconcile to the end."""
    await take_over(services.store)
    if case.after_restart is not None:
        await case.after_restart(services, sim)
    await settle(sim, services, Reconciler(services))


def outcome_of(
    db: Path,
    sim: SimServer,
    vendor: VendorName,
    mortals: list[Mortal],
    receiver: WebhookReceiver,
) -> Outcome:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        jobs = conn.execute("SELECT * FROM jobs ORDER BY id").fetchall()
        (undelivered,) = conn.execute(
            "SELECT COUNT(*) FROM work WHERE kind = 'notify' AND state != 'done'"
        ).fetchone()
        # News, as the event log tells it: a pause or a failed run, a paused job's partial
        # set stored, and each run's whole set stored.
        outcomes: dict[int, list[str]] = {}
        for job_id, kind, reached, partial in conn.execute(
            """SELECT job_id, type, payload ->> '$.to', payload ->> '$.partial' FROM events
                WHERE (type = 'job.state_changed'
                       AND payload ->> '$.to' IN ('needs_action', 'failed', 'expired'))
                   OR type = 'results.stored'
                ORDER BY seq"""
        ):
            news = reached if kind == "job.state_changed" else "partial" if partial else "completed"
            outcomes.setdefault(job_id, []).append(news)
        positions = {
            job["id"]: [
                position
                for (position,) in conn.execute(
                    "SELECT position FROM results WHERE job_id = ? ORDER BY position", (job["id"],)
                )
            ]
            for job in jobs
        }
    finally:
        conn.close()
    slots = {job["vendor_job_id"] for job in jobs if job["name"] == SLOT}
    mine = [job for job in jobs if job["name"] != SLOT]
    views = {view.job_id: view for view in sim.jobs(vendor.value) if view.job_id not in slots}
    results = {}
    for job in mine:
        if (view := views.get(job["vendor_job_id"])) is not None:
            count = view.total
            if vendor is VendorName.CRUSTDATA:  # its results file may leave out what failed
                count = result_count(sim.crustdata.jobs[view.job_id], view.processed)
            expected = result_positions(sim, vendor, view.job_id, count)
            results[job["id"]] = (positions[job["id"]], sorted(expected))
    return Outcome(
        writes=[mortal.writes for mortal in mortals],
        died=[mortal.died for mortal in mortals],
        jobs=mine,
        held_there=list(views),
        notified={job["id"]: notified(db, job["id"]) for job in mine},
        undelivered=undelivered,
        processed=sorted(
            (told["data"]["job_id"], told["data"]["outcome"])
            for told in receiver.processed.values()
            if told["data"]["job_id"] in {job["id"] for job in mine}
        ),
        rejected=len(receiver.rejected),
        outcomes={job["id"]: outcomes.get(job["id"], []) for job in mine},
        results=results,
        # Crustdata's result files come from its storage host, each download a call.
        calls=(
            sum(job["vendor_calls"] for job in jobs),
            sim.stats.count(vendor.value) + sim.stats.count("storage"),
        ),
    )


def check(outcome: Outcome, parts: int) -> None:
    tracked = [job["vendor_job_id"] for job in outcome.jobs if job["vendor_job_id"] is not None]
    for job in outcome.jobs:
        state = JobState(job["state"])
        # Nothing waits for the dead process: each part is tracked to its end, or failed.
        assert job["send_owner"] is None
        assert job["send_started_at"] is None
        if job["vendor_job_id"] is None:
            assert state is JobState.FAILED, f"part {job['id']} was left {state.value}"
            assert outcome.notified[job["id"]] == ["failed"]
        else:
            assert state is JobState.COMPLETED
            # Each pause and each run's results are news: one notification each.
            assert outcome.notified[job["id"]] == outcome.outcomes[job["id"]]
            assert outcome.outcomes[job["id"]][-1] == "completed"
            assert job["results_state"] == "stored"
            stored, made = outcome.results[job["id"]]
            assert stored == made  # each result once: no gap, none twice
            assert job["results_count"] == len(stored)
    # Told once: a copy sent again after a kill carries the same webhook-id.
    assert outcome.undelivered == outcome.rejected == 0
    assert outcome.processed == sorted(
        (job_id, told) for job_id, outcomes in outcome.notified.items() for told in outcomes
    )
    counted, seen = outcome.calls
    assert counted <= seen
    # Every part the kill caught has its row; none of them was sent twice.
    assert len(outcome.jobs) <= parts
    assert len(set(tracked)) == len(tracked)
    assert len(outcome.held_there) <= len(outcome.jobs)
    untracked = set(outcome.held_there) - set(tracked)
    if untracked:
        # A job the vendor made, named only in the answer the kill cut off: its part failed
        # saying where to look.
        failed = [job for job in outcome.jobs if job["vendor_job_id"] is None]
        assert len(untracked) <= len(failed)
        assert all("may have taken it" in job["error"] for job in failed)


PAGE = 4
"""Records a page: several pages a job, so a kill can fall between two of a fetch's."""


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    for adapter in ADAPTERS.values():
        for setting in ("records_per_page", "results_page_size"):
            if hasattr(adapter, setting):
                monkeypatch.setattr(adapter, setting, PAGE)


@pytest.mark.usefixtures("small_pages")
@pytest.mark.parametrize("name", list(CASES))
async def test_a_kill_before_any_write_leaves_every_part_tracked_to_its_end_or_failed(
    tmp_path: Path, name: str
) -> None:
    case = CASES[name]
    whole = await run_case(tmp_path / "whole", case, (None,))
    assert whole.died == [False]
    check(whole, case.parts)
    assert len(whole.held_there) == case.parts  # the run with no kill sends every part
    for dies_at in range(1, whole.writes[0] + 1):
        outcome = await run_case(tmp_path / f"dies-at-{dies_at}", case, (dies_at,))
        assert outcome.died == [True]
        try:
            check(outcome, case.parts)
        except AssertionError as exc:
            raise AssertionError(f"killed before write {dies_at}: {exc}") from exc


@pytest.mark.usefixtures("small_pages")
@pytest.mark.parametrize("name", [name for name in CASES if name.endswith("-direct")])
async def test_a_kill_during_the_restart_after_a_kill_changes_none_of_that(
    tmp_path: Path, name: str
) -> None:
    """The restart's own work (settling the cut-off send, taking over the dead holder's
    leases, then the job's whole life) killed before each of its writes in turn, after a
    kill before each write of the submission."""
    case = CASES[name]
    whole = await run_case(tmp_path / "whole", case, (None,))
    for dies_at in range(1, whole.writes[0] + 1):
        restarted = await run_case(tmp_path / f"{dies_at}", case, (dies_at, None))
        for again_at in range(1, restarted.writes[1] + 1):
            folder = tmp_path / f"{dies_at}-then-{again_at}"
            outcome = await run_case(folder, case, (dies_at, again_at))
            assert outcome.died == [True, True]
            try:
                check(outcome, case.parts)
            except AssertionError as exc:
                raise AssertionError(
                    f"killed before write {dies_at}, then its restart before write "
                    f"{again_at}: {exc}"
                ) from exc
