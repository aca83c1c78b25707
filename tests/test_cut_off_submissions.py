"""Submissions cut off by a stop after the vendor's job id was known: BrightLocal's batch is
created, filled and committed in separate calls, and its id is on record from the create on;
Reprompt's batch id is ours, on record before the call goes out. The stopped process's own
steps are made here (its submit task cancelled mid-call, as a kill leaves it, with no
clean-up); then a pass of the submit lane does what a restart would. A job the vendor holds
whole is tracked; one never made or never committed (then deleted) leaves nothing there, and
the part is sent again if its rows are held, else failed. Where the job's id would have come
only in the answer the stop cut off (Crustdata), the part fails naming the untracked jobs the
vendor lists. Against the simulator over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import functools

from enrichwatch.models import EventSource, JobState, VendorName
from enrichwatch.store import JobRecord
from enrichwatch.store.submissions import SUBMIT_WORK
from enrichwatch.vendors.base import SubmitRequest
from reconciler.submissions import send_queued_submissions, settle_interrupted_sends
from tests.conftest import notified
from tests.settling import settle
from tests.test_reconciler_fixes import until
from tests.test_results_and_actions import INPUTS, stored, world  # noqa: F401 (a fixture)

CREATE = "POST /v4/batch"
ADD_JOB = "POST /v4/ld/fetch-reviews"
COMMIT = "PUT /v4/batch"
DELETE = "DELETE /v4/batch"


REPROMPT_SUBMIT = "POST /v1/{org}/place_enrichment/batches"


async def reserved_part(
    world,  # noqa: F811
    *,
    held: bool,
    vendor: VendorName = VendorName.BRIGHTLOCAL,
) -> tuple[JobRecord, SubmitRequest]:
    """A part with its job row, as `submit_batch` makes it; `held`: kept back (a submit work
    item holds its rows, as after the vendor's cap), else sent directly as the API does."""
    store = world.services.store
    rows, options = INPUTS[vendor]
    job = await store.reserve_job(
        vendor, "part", rows=len(rows), source=EventSource.API, owner=world.services.sender.owner()
    )
    adapter = world.services.adapter(vendor)
    (part,) = adapter.split(SubmitRequest(rows=rows, name="part", options=options))
    if adapter.supports_webhooks:
        part = part.model_copy(update={"callback_url": job.callback_url(world.url)})
    if held:
        await store.queue_submission(
            job.id, part.model_dump(), retry_at=store.clock(), reason="cap", vendor_calls=1
        )
    return job, part


async def cut_off_while_sending(
    world,  # noqa: F811
    job: JobRecord,
    part: SubmitRequest,
    endpoint: str,
    *,
    after_answer: bool,
    owner: str = "dead:1",
) -> None:
    """The dying process's send: marked as `owner`'s (by default a holder that is gone), its
    job's id recorded once known, and stopped while the call to `endpoint` is held at the
    vendor (`after_answer`: once the vendor acted on it)."""
    store, vendor = world.services.store, job.vendor.value
    world.sim.set_fault(
        vendor,
        slow_count=1,
        slow_seconds=30,
        slow_after_answer=after_answer,
        endpoint=endpoint,
    )
    await store.begin_send(job.id, owner=owner)
    adapter = world.services.adapter(
        job.vendor, on_created=functools.partial(store.record_send_created, job.id)
    )
    sending = asyncio.create_task(adapter.submit(part))
    await until(lambda: world.sim.stats.injected[(vendor, "slow")] == 1)
    sending.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sending
    world.sim.clear_faults(vendor)


def batches(world) -> list[str]:  # noqa: F811
    """The batches BrightLocal still holds (a deleted one is gone)."""
    return [view.job_id for view in world.sim.jobs("brightlocal")]


async def test_a_held_part_cut_off_before_its_commit_is_deleted_there_and_sent_again(world):  # noqa: F811
    """The lane that claims the part finds its send cut off and settles it itself (the mark
    names a sender still running here, so the pass before the claim leaves it alone)."""
    store = world.services.store
    job, part = await reserved_part(world, held=True)
    assert len(await store.claim_work(SUBMIT_WORK, owner="dead:1", lease_s=300, limit=1)) == 1
    sender = world.services.sender.owner()
    await cut_off_while_sending(world, job, part, ADD_JOB, after_answer=True, owner=sender)
    (abandoned,) = batches(world)
    assert (await world.job(job.id)).send_vendor_job_id == abandoned

    # The restart: the dead holder's lease is freed, and the lane sends the part again.
    assert await store.release_leases({"dead:1"}) == (0, 1)
    assert await send_queued_submissions(world.services, "rc:2") == 1

    assert world.sim.stats.count("brightlocal", DELETE) == 1
    (batch,) = batches(world)
    assert batch != abandoned
    sent = await world.job(job.id)
    assert (sent.vendor_job_id, sent.send_vendor_job_id, sent.send_started_at) == (
        batch,
        None,
        None,
    )
    assert sent.expects_callback
    events = await world.events(job.id)
    assert events.count("submit.created") == 2
    assert events[-3:] == ["submit.sending", "submit.created", "job.submitted"]

    await settle(world.sim, world.services, world.rc)
    done = await world.job(job.id)
    assert (done.state, done.results_state) == (JobState.COMPLETED, "stored")
    assert len(stored(world.db, job.id)) == len(part.rows)
    assert notified(world.db, job.id) == ["completed"]


async def test_a_part_cut_off_after_the_vendor_committed_it_is_tracked_not_sent_again(world):  # noqa: F811
    """The commit reached the vendor, whose answer never came back: the batch holds every row
    and runs, so it is the part's job; sending again would run and bill it twice. The pass
    before the lane's claim settles it, its sender being gone."""
    store = world.services.store
    job, part = await reserved_part(world, held=True)
    assert len(await store.claim_work(SUBMIT_WORK, owner="dead:1", lease_s=300, limit=1)) == 1
    await cut_off_while_sending(world, job, part, COMMIT, after_answer=True)

    assert await store.release_leases({"dead:1"}) == (0, 1)
    assert await send_queued_submissions(world.services, "rc:2") == 0  # nothing to send

    (batch,) = batches(world)
    assert world.sim.stats.count("brightlocal", CREATE) == 1
    assert world.sim.stats.count("brightlocal", DELETE) == 0
    tracked = await world.job(job.id)
    assert tracked.vendor_job_id == batch
    assert tracked.state is not JobState.FAILED
    assert await store.claim_work(SUBMIT_WORK, owner="rc:2", lease_s=300, limit=1) == []

    await settle(world.sim, world.services, world.rc)
    done = await world.job(job.id)
    assert (done.state, done.results_state) == (JobState.COMPLETED, "stored")
    assert len(stored(world.db, job.id)) == len(part.rows)


async def test_a_direct_send_cut_off_before_its_commit_is_deleted_there_and_failed(world):  # noqa: F811
    """Sent directly, its rows were never kept here, so it cannot be sent again: it fails,
    notified, and saying that nothing of it is left at the vendor."""
    job, part = await reserved_part(world, held=False)
    await cut_off_while_sending(world, job, part, ADD_JOB, after_answer=False)
    (abandoned,) = batches(world)

    assert await settle_interrupted_sends(world.services) == 1

    assert batches(world) == []
    failed = await world.job(job.id)
    assert failed.state is JobState.FAILED
    assert f"(job {abandoned} is not there or is deleted): send these rows again" in (
        failed.error or ""
    )
    assert (failed.send_started_at, failed.send_vendor_job_id) == (None, None)
    assert notified(world.db, job.id) == ["failed"]
    assert await settle_interrupted_sends(world.services) == 0


async def test_a_batch_already_gone_when_settling_counts_as_nothing_left(world):  # noqa: F811
    """The submission's own clean-up may have deleted it before the stop."""
    job, part = await reserved_part(world, held=False)
    await cut_off_while_sending(world, job, part, ADD_JOB, after_answer=False)
    (batch,) = batches(world)
    await world.services.adapter(VendorName.BRIGHTLOCAL).delete(batch)

    assert await settle_interrupted_sends(world.services) == 1
    assert world.sim.stats.count("brightlocal", DELETE) == 1
    failed = await world.job(job.id)
    assert failed.state is JobState.FAILED
    assert f"(job {batch} is not there or is deleted)" in (failed.error or "")


async def test_a_vendor_error_while_settling_leaves_the_part_to_a_later_pass(world):  # noqa: F811
    job, part = await reserved_part(world, held=False)
    await cut_off_while_sending(world, job, part, ADD_JOB, after_answer=False)
    world.sim.set_fault("brightlocal", server_errors=5, endpoint="GET /v4/batch")

    assert await settle_interrupted_sends(world.services) == 0
    marked = await world.job(job.id)
    assert (marked.state, marked.send_vendor_job_id) == (JobState.SUBMITTED, batches(world)[0])

    world.sim.clear_faults("brightlocal")
    assert await settle_interrupted_sends(world.services) == 1
    assert batches(world) == []


async def test_a_reprompt_batch_the_vendor_made_before_the_stop_is_tracked_not_sent_again(world):  # noqa: F811
    """Our batch id is on record before the call goes out, so the batch is found by it; a
    second send under the same id would add every place to it again."""
    store = world.services.store
    job, part = await reserved_part(world, held=True, vendor=VendorName.REPROMPT)
    assert len(await store.claim_work(SUBMIT_WORK, owner="dead:1", lease_s=300, limit=1)) == 1
    await cut_off_while_sending(world, job, part, REPROMPT_SUBMIT, after_answer=True)
    assert (await world.job(job.id)).send_vendor_job_id == part.options["batch_id"]

    assert await store.release_leases({"dead:1"}) == (0, 1)
    assert await send_queued_submissions(world.services, "rc:2") == 0  # nothing to send
    assert world.sim.stats.count("reprompt", REPROMPT_SUBMIT) == 1
    tracked = await world.job(job.id)
    (batch,) = world.sim.jobs("reprompt")
    assert tracked.vendor_job_id == batch.job_id

    await settle(world.sim, world.services, world.rc)
    done = await world.job(job.id)
    assert (done.state, done.results_state) == (JobState.COMPLETED, "stored")
    assert len(stored(world.db, job.id)) == len(part.rows)


async def test_a_reprompt_batch_the_vendor_never_made_is_sent_again_if_held(world):  # noqa: F811
    store = world.services.store
    job, part = await reserved_part(world, held=True, vendor=VendorName.REPROMPT)
    assert len(await store.claim_work(SUBMIT_WORK, owner="dead:1", lease_s=300, limit=1)) == 1
    await cut_off_while_sending(world, job, part, REPROMPT_SUBMIT, after_answer=False)
    assert world.sim.jobs("reprompt") == []

    assert await store.release_leases({"dead:1"}) == (0, 1)
    assert await send_queued_submissions(world.services, "rc:2") == 1
    (batch,) = world.sim.jobs("reprompt")
    assert (await world.job(job.id)).vendor_job_id == batch.job_id
    assert batch.total == len(part.rows)


CRUSTDATA_SUBMIT = "POST /batch/person/enrich"


async def test_a_send_cut_off_before_its_answer_names_the_untracked_jobs_the_vendor_lists(world):  # noqa: F811
    """Crustdata names its job only in the answer the stop cut off: the part fails, and the
    failure names the jobs the vendor's list shows made since, of the part's size, that no
    job here tracks, with how to track the right one. None is adopted: nothing here can tell
    which is this part's."""
    tracked = await world.submit(VendorName.CRUSTDATA)  # the same size, made just before
    job, part = await reserved_part(world, held=False, vendor=VendorName.CRUSTDATA)
    await cut_off_while_sending(world, job, part, CRUSTDATA_SUBMIT, after_answer=True)
    (made,) = [batch for batch in world.sim.crustdata.jobs if batch != tracked.vendor_job_id]

    assert await settle_interrupted_sends(world.services) == 1

    failed = await world.job(job.id)
    assert failed.state is JobState.FAILED
    assert failed.error is not None
    assert "which may have taken it" in failed.error
    assert (
        f"its job list shows 1 made since then that no job here tracks ({made}): if one is "
        "this part, track it (enrichwatch track crustdata ID)"
    ) in failed.error
    assert failed.vendor_calls == 1  # the list call
    assert failed.vendor_job_id is None
    assert notified(world.db, job.id) == ["failed"]


async def test_a_send_cut_off_before_the_vendor_took_it_says_its_list_shows_none(world):  # noqa: F811
    await world.submit(VendorName.CRUSTDATA)  # tracked: not this part's
    job, part = await reserved_part(world, held=False, vendor=VendorName.CRUSTDATA)
    await cut_off_while_sending(world, job, part, CRUSTDATA_SUBMIT, after_answer=False)

    assert await settle_interrupted_sends(world.services) == 1

    failed = await world.job(job.id)
    assert failed.state is JobState.FAILED
    assert failed.error is not None
    assert failed.error.endswith(
        "; its job list shows none made since then that is not tracked here"
    )
