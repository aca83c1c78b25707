"""The words people read: a count of one in the singular, a sentence that ends once however
the vendor ended its error, and nothing said of a finished job that is true only of an open
one. The event lines, the dashboard's job page and charts, and the notices, each from records
made here."""

from __future__ import annotations

import re
from typing import Any

import pytest

from enrichwatch.describe import event_summary
from enrichwatch.models import EventSource, JobState, VendorName
from enrichwatch.notify.message import CheckTrouble, build_message
from enrichwatch.store import EventRecord, JobRecord
from enrichwatch.store.notifications import Outcome
from receiver.dashboard.charts import duration_chart, time_series
from receiver.dashboard.preview import Preview
from receiver.dashboard.render import environment

T0 = 1_700_000_000.0
BASE_URL = "https://enrichwatch.example"


def job_record(**fields: Any) -> JobRecord:
    """A job as the store reads it: an open eCore job of one row, unless `fields` say else."""
    return JobRecord.model_validate(
        {
            "id": 7,
            "vendor": VendorName.ECORE,
            "vendor_job_id": "v-7",
            "name": None,
            "state": JobState.RUNNING,
            "vendor_status": None,
            "error": None,
            "progress_done": None,
            "progress_failed": None,
            "progress_total": None,
            "callback_token": "token",
            "next_check_at": None,
            "vendor_calls": 1.0,
            "callbacks_received": 0,
            "expects_callback": False,
            "last_callback_at": None,
            "late_webhook_at": None,
            "check_failures": 0,
            "failing_since": None,
            "retry_after": None,
            "input_rows": 1,
            "results_state": None,
            "results_count": 0,
            "created_at": T0,
            "updated_at": T0,
            "last_checked_at": None,
            "finished_at": None,
            "run_started_at": None,
            "paused_at": None,
            "paused_seconds": 0.0,
            "send_started_at": None,
            "send_owner": None,
            "send_vendor_job_id": None,
        }
        | fields
    )


def event(type_: str, **payload: Any) -> EventRecord:
    return EventRecord(
        seq=1, job_id=7, type=type_, source=EventSource.SYSTEM, payload=payload, created_at=T0
    )


def words(html: str) -> str:
    """What a reader sees of `html`: its text, tags dropped and spaces collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


# -- event lines -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "summary"),
    [
        (event("submit.requested", rows=1), "submit requested: 1 row"),
        (event("submit.requested", rows=35), "submit requested: 35 rows"),
        (event("results.stored", count=1), "results stored: 1 record"),
        (event("results.stored", count=1, partial=True), "results stored: 1 record (partial)"),
        (event("results.stored", count=0), "results stored: 0 records"),
        (event("results.stored", count=12), "results stored: 12 records"),
        (event("vendor.polled", vendor_status="done", cost=1), "status call: done (1 call)"),
        (event("vendor.polled", vendor_status="done", cost=2), "status call: done (2 calls)"),
        (event("vendor.polled", vendor_status="done", cost=0.5), "status call: done (0.5 calls)"),
        (event("vendor.polled", vendor_status="done", cost=0), "status call: done (0 calls)"),
    ],
)
def test_an_event_line_counts_one_in_the_singular(record: EventRecord, summary: str):
    assert event_summary(record) == summary


# -- the dashboard ---------------------------------------------------------------------------


def job_page(job: JobRecord, preview_rows: int = 0) -> str:
    """The live part of the job page, as the dashboard renders it."""
    rows = [[str(n), f"lead{n}@example.com"] for n in range(1, preview_rows + 1)]
    return words(
        environment()
        .get_template("_job_live.html")
        .render(
            job=job,
            now=T0 + 60,
            events=[],
            event_count=0,
            preview=Preview(columns=["#", "email"], rows=rows),
        )
    )


def test_a_job_of_one_result_offers_that_one_result():
    done = {"state": JobState.COMPLETED, "finished_at": T0 + 30, "results_state": "stored"}
    one = job_page(job_record(**done, results_count=1), preview_rows=1)
    assert "Download the 1 result: CSV JSON lines" in one
    assert "First result" in one
    assert "1 results" not in one
    assert "Download all" not in one

    many = job_page(job_record(**done, results_count=12, input_rows=12), preview_rows=10)
    assert "Download all 12: CSV JSON lines" in many
    assert "First 10 results" in many


@pytest.mark.parametrize("state", [JobState.EXPIRED, JobState.FAILED])
def test_a_job_that_ended_without_results_is_not_said_to_await_them(state: JobState):
    ended = job_record(state=state, finished_at=T0 + 30, error="outlived its maximum age")
    page = job_page(ended)
    assert "Results None: the job ended without results." in page
    assert "yet" not in page.split("Results", 1)[1].split("Timeline", 1)[0]
    # It never progressed: its progress is neither done nor a bar.
    assert "Progress — Vendor calls" in page
    progress = environment().get_template("_progress.html").render(job=ended)
    assert "<progress" not in progress
    assert "done" not in progress


def test_an_open_job_awaits_results_and_a_completed_one_without_counts_is_done():
    page = job_page(job_record())
    assert "Results None yet." in page
    assert "Progress no counts yet" in page

    completed = job_record(
        state=JobState.COMPLETED, finished_at=T0 + 30, results_state="stored", results_count=1
    )
    progress = environment().get_template("_progress.html").render(job=completed)
    assert '<progress aria-label="Progress of job 7" value="1" max="1">' in progress
    assert words(progress) == "done"


def test_a_chart_of_one_job_says_one_job_and_one_call():
    chart = time_series(
        [(T0, 1.0, "job 7")], title="Vendor calls per job", unit="calls", y_label="calls"
    )
    assert [point.label for point in chart.points] == ["job 7: 1 call"]
    assert chart.summary == "1 job, finished 2023-11-14 22:13: 1 call."
    assert duration_chart([(T0, 1.0, "job 7")], "Job duration").summary.endswith(": 1 s.")

    two = time_series(
        [(T0, 1.0, "job 7"), (T0 + 60, 2.5, "job 8")],
        title="Vendor calls per job",
        unit="calls",
        y_label="calls",
    )
    assert two.summary == (
        "2 jobs from 2023-11-14 22:13 to 2023-11-14 22:14; lowest 1 call, highest 2.5 calls."
    )
    assert [point.label for point in two.points] == ["job 7: 1 call", "job 8: 2.5 calls"]


# -- notices ---------------------------------------------------------------------------------


def problem(job: JobRecord, outcome: Outcome, detail: str | None = None) -> str:
    trouble = CheckTrouble(failing_since=T0, others=0)
    message = build_message(
        job,
        outcome,
        base_url=BASE_URL,
        at=T0 + 3600,
        detail=detail,
        trouble=trouble if outcome in (Outcome.CHECKS_REFUSED, Outcome.CHECKS_FAILING) else None,
        max_job_age=86400,
    )
    assert message.problem is not None
    assert message.problem in message.text()
    return message.problem


@pytest.mark.parametrize("ending", [".", "", "!"])
def test_a_vendors_error_ends_its_sentence_once(ending: str):
    detail = f"HTTP 401: Invalid token{ending}"
    said = f"HTTP 401: Invalid token{ending or '.'}"

    refused = problem(job_record(), Outcome.CHECKS_REFUSED, detail)
    assert refused.startswith(f"Action needed: {said} Mend it at ecore ")

    failing = problem(job_record(), Outcome.CHECKS_FAILING, detail)
    assert f"the last error: {said} enrichwatch keeps trying" in failing

    error = f"Invalid token{ending}"
    fetch = problem(job_record(error=error), Outcome.FETCH_FAILED)
    assert fetch.startswith(f"Error: {said.removeprefix('HTTP 401: ')} Once the cause is mended")

    paused = problem(job_record(state=JobState.NEEDS_ACTION, error=error), Outcome.NEEDS_ACTION)
    assert f"paused the job (Invalid token{'!' if ending == '!' else ''}). Top up" in paused

    for text in (refused, failing, fetch, paused):
        assert not re.search(r"[.!?]\.(\s|$)", text), text
