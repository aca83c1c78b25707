"""One outcome of one job, as the words and links every channel sends: the same facts in
plain text, HTML, Slack Block Kit, a Standard Webhooks JSON event and a log line.

The results link people click is the dashboard's download, which asks them to log in when
they are not; the API's, which takes the API token, is for systems, in the webhook event."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from enrichwatch.describe import counted
from enrichwatch.polling.policy import EXPIRED_PAUSED
from enrichwatch.store import JobRecord
from enrichwatch.store.notifications import Outcome

TITLES = {
    Outcome.COMPLETED: "Results ready",
    Outcome.PARTIAL: "Partial results stored (job paused)",
    Outcome.FAILED: "Job failed",
    Outcome.NEEDS_ACTION: "Action needed: job paused",
    Outcome.FETCH_FAILED: "Results could not be fetched",
    Outcome.EXPIRED: "Job expired",
    Outcome.WEBHOOK_LATE: "Vendor callback is late",
    Outcome.CHECKS_REFUSED: "Action needed: the vendor refuses our checks",
    Outcome.CHECKS_FAILING: "The vendor is not answering our checks",
}
EVENT_TYPES = {
    Outcome.COMPLETED: "job.completed",
    Outcome.PARTIAL: "job.partial_results",
    Outcome.FAILED: "job.failed",
    Outcome.NEEDS_ACTION: "job.needs_action",
    Outcome.FETCH_FAILED: "job.results_fetch_failed",
    Outcome.EXPIRED: "job.expired",
    Outcome.WEBHOOK_LATE: "job.webhook_late",
    Outcome.CHECKS_REFUSED: "job.checks_refused",
    Outcome.CHECKS_FAILING: "job.checks_failing",
}


@dataclass(frozen=True)
class CheckTrouble:
    """What a notice of check trouble adds to the job: since when its checks fail, and how
    many other open jobs the vendor had then (people are told once for all of them)."""

    failing_since: float
    others: int


@dataclass(frozen=True)
class Message:
    outcome: Outcome
    job_id: int
    vendor: str
    vendor_job_id: str | None
    job_name: str | None
    state: str
    enriched: int | None
    failed: int | None
    total: int | None
    results_stored: int
    duration_s: float | None
    vendor_calls: float
    problem: str | None
    """The error, or what the reader has to do; None when all went well. Commands in it are
    quoted in backticks, as Slack shows code."""
    results_url: str
    """The results as CSV from the dashboard, for people (it asks them to log in)."""
    results_api_url: str
    """The results from the API, for systems (it takes the API token)."""
    dashboard_url: str
    occurred_at: float

    @property
    def title(self) -> str:
        return f"{TITLES[self.outcome]}: {self.vendor} job {self.job_id}" + (
            f" ({self.job_name})" if self.job_name else ""
        )

    @property
    def event_type(self) -> str:
        return EVENT_TYPES[self.outcome]

    @property
    def duration_text(self) -> str:
        return _duration(self.duration_s)

    @property
    def vendor_calls_text(self) -> str:
        return calls_text(self.vendor_calls)

    def facts(self) -> list[tuple[str, str]]:
        """Label and value of each fact, in the order every channel shows them."""
        return [
            ("Vendor", self.vendor),
            ("Job", f"{self.job_id} {self.job_name or ''}".rstrip()),
            ("Vendor job id", self.vendor_job_id or "-"),
            ("Outcome", self.outcome.value),
            (
                "Enriched / failed / total",
                f"{_count(self.enriched)} / {_count(self.failed)} / {_count(self.total)}",
            ),
            ("Results stored", str(self.results_stored)),
            ("Duration", self.duration_text),
            ("Vendor calls", self.vendor_calls_text),
        ]

    def text(self) -> str:
        lines = [self.title, ""]
        lines += [f"{label}: {value}" for label, value in self.facts()]
        if self.problem:
            lines += ["", self.problem]
        lines += ["", f"Results: {self.results_url}", f"Dashboard: {self.dashboard_url}"]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        rows = "".join(
            f"<tr><th align='left'>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
            for label, value in self.facts()
        )
        problem = f"<p><strong>{_html(self.problem)}</strong></p>" if self.problem else ""
        return (
            f"<html><body><h2>{html.escape(self.title)}</h2><table>{rows}</table>{problem}"
            f"<p><a href='{html.escape(self.results_url)}'>Results</a> · "
            f"<a href='{html.escape(self.dashboard_url)}'>Dashboard</a></p></body></html>"
        )

    def slack(self) -> dict[str, Any]:
        """A Block Kit message with a plain-text fallback (what notifications show)."""
        fields = [
            {"type": "mrkdwn", "text": f"*{_mrkdwn(label)}*\n{_mrkdwn(value)}"}
            for label, value in self.facts()
        ]
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": self.title[:150]}},
            {"type": "section", "fields": fields[:10]},
        ]
        if self.problem:
            blocks.append(
                {"type": "section", "text": {"type": "mrkdwn", "text": _mrkdwn(self.problem)}}
            )
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    _button("Results", self.results_url, "results"),
                    _button("Dashboard", self.dashboard_url, "dashboard"),
                ],
            }
        )
        # The fallback text is mrkdwn too, and it is what notifications show.
        return {"text": _mrkdwn(self.title), "blocks": blocks}

    def webhook_event(self) -> dict[str, Any]:
        """The Standard Webhooks envelope: type, ISO 8601 timestamp of the outcome, data."""
        return {
            "type": self.event_type,
            "timestamp": datetime.fromtimestamp(self.occurred_at, UTC).isoformat(),
            "data": {
                "job_id": self.job_id,
                "name": self.job_name,
                "vendor": self.vendor,
                "vendor_job_id": self.vendor_job_id,
                "state": self.state,
                "outcome": self.outcome.value,
                "counts": {"enriched": self.enriched, "failed": self.failed, "total": self.total},
                "results_stored": self.results_stored,
                "duration_seconds": self.duration_s,
                "vendor_calls": self.vendor_calls,
                "problem": self.problem,
                "links": {
                    # `results` was the API's link before people were given the dashboard's;
                    # systems reading it keep getting what they could fetch with the token.
                    "results": self.results_api_url,
                    "results_api": self.results_api_url,
                    "results_download": self.results_url,
                    "dashboard": self.dashboard_url,
                },
            },
        }


def build_message(
    job: JobRecord,
    outcome: Outcome,
    *,
    base_url: str,
    at: float,
    detail: str | None,
    trouble: CheckTrouble | None,
    max_job_age: float,
) -> Message:
    """What to say about `outcome` of `job`; `base_url` is the service's public URL, and
    `max_job_age` how long a paused job waits to be resumed before it expires."""
    enriched: int | None = None
    if job.progress_done is not None:
        enriched = job.progress_done - (job.progress_failed or 0)
    elif job.results_count:
        enriched = job.results_count
    end = job.finished_at or at
    return Message(
        outcome=outcome,
        job_id=job.id,
        vendor=job.vendor.value,
        vendor_job_id=job.vendor_job_id,
        job_name=job.name,
        state=job.state.value,
        enriched=enriched,
        failed=job.progress_failed,
        total=job.progress_total if job.progress_total is not None else job.input_rows,
        results_stored=job.results_count,
        duration_s=max(end - job.created_at, 0.0),
        vendor_calls=job.vendor_calls,
        problem=_problem(job, outcome, base_url, detail, trouble, at, max_job_age),
        results_url=f"{base_url}/jobs/{job.id}/results?format=csv",
        results_api_url=f"{base_url}/api/jobs/{job.id}/results",
        dashboard_url=f"{base_url}/jobs/{job.id}",
        occurred_at=at,
    )


def _problem(
    job: JobRecord,
    outcome: Outcome,
    base_url: str,
    detail: str | None,
    trouble: CheckTrouble | None,
    at: float,
    max_job_age: float,
) -> str | None:
    vendor = job.vendor.value
    resume = (
        f"top up the account's credits (or settle what the vendor asks) at {vendor}, then "
        f"resume it: `enrichwatch resume {job.id}` (or POST {base_url}/api/jobs/{job.id}/resume)."
    )
    if job.paused_at is not None:
        resume += f" Not resumed by {_utc(job.paused_at + max_job_age)}, it expires."
    reason = _reason(job)
    # What went wrong ends a sentence of ours; the vendor's own words may have ended it already.
    error = _sentence(detail or reason or "no reason given")
    check_all = (
        f"`enrichwatch check --vendor {vendor}` (or POST {base_url}/api/vendors/{vendor}/check)."
    )
    match outcome:
        case Outcome.COMPLETED:
            return None
        case Outcome.NEEDS_ACTION:
            paused = (
                f"{vendor} paused the job ({_bare(reason)})"
                if reason
                else f"{vendor} paused the job without giving a reason{_status(job)}"
            )
            return f"Action needed: {paused}. {resume[0].upper()}{resume[1:]}"
        case Outcome.PARTIAL:
            return "The job is paused; these are the results so far. To get the rest, " + resume
        case Outcome.FETCH_FAILED:
            return (
                f"Error: {error} Once the cause is mended (the vendor serves them "
                "again, or the settings allow them), fetch them again: "
                f"`enrichwatch fetch {job.id}` (or POST {base_url}/api/jobs/{job.id}/fetch)."
            )
        case Outcome.WEBHOOK_LATE:
            return (
                "The vendor's callback did not come when expected; enrichwatch is polling "
                "instead. Check the webhook settings at the vendor."
            )
        case Outcome.CHECKS_REFUSED:
            return (
                f"Action needed: {error} Mend it at {vendor} (the account's key "
                f"or credits) or in enrichwatch's settings for {vendor} (its API key, its base "
                "URL); until then the job is checked only now and then, and it expires at its "
                "maximum age. A restart with new settings checks every open job at once; "
                f"otherwise check them all now: {check_all}" + _others(job, trouble)
            )
        case Outcome.CHECKS_FAILING:
            since = f" for {_duration(at - trouble.failing_since)}" if trouble else ""
            return (
                f"{vendor} has not answered this job's status checks{since}, longer than any "
                f"open job should go unchecked; the last error: {error} enrichwatch "
                "keeps trying, and fetches the results once it answers. If it lasts, see the "
                f"vendor's status page, or the base URL in enrichwatch's settings for {vendor}. "
                f"To check every open job at {vendor} now: {check_all}" + _others(job, trouble)
            )
        case Outcome.EXPIRED:
            return f"Error: {error} {watch_again(job, base_url)}"
        case Outcome.FAILED:
            failed = (
                f"Error: {_sentence(reason)}"
                if reason
                else f"{vendor} reported the job failed without giving a reason{_status(job)}."
            )
            return failed + _results_so_far(job)
        case _:
            return f"Error: {error}"


def _reason(job: JobRecord) -> str | None:
    """Why the job is where it is, in the vendor's words (or ours); None when there are none.
    A vendor's bare status word ("failed", "paused"), which some give as their error too, only
    restates the state: it is no reason."""
    error = (job.error or "").strip()
    bare = {*_STATE_WORDS, (job.vendor_status or "").lower()}
    return error if error and error.rstrip(".").lower() not in bare else None


_STATE_WORDS = frozenset({"", "failed", "failure", "error", "paused", "none"})


def _status(job: JobRecord) -> str:
    """The vendor's status word, in parentheses, when it says more than the state does (a
    BrightLocal batch `Stopped`); else nothing."""
    status = (job.vendor_status or "").strip()
    if status.lower() in _STATE_WORDS or status.lower() == job.state.value:
        return ""
    return f" (its status: {status})"


def _results_so_far(job: JobRecord) -> str:
    """What became of the records a failed job finished before it failed."""
    stored = counted(job.results_count, "record", "records")
    if job.results_state == "fetch_failed":
        kept = f" beyond the {stored} stored" if job.results_count else ""
        return (
            f" Its results{kept} could not be fetched; a message of its own says how to "
            "fetch them again."
        )
    if job.results_count:
        return f" Its results so far are stored: {stored}."
    return ""


def watch_again(job: JobRecord, base_url: str) -> str:
    """How to bring back an expired job (enrichwatch gave up asking, not the vendor): the
    expiry notice and the job's dashboard page say the same."""
    again = f"`enrichwatch check {job.id}` (or POST {base_url}/api/jobs/{job.id}/check)"
    resumed = (job.error or "").startswith(EXPIRED_PAUSED)
    return (
        f"enrichwatch no longer asks {job.vendor.value} about it. If it may still finish "
        f"there, ask again: {again} watches it once more"
        + (f", and `enrichwatch resume {job.id}` resumes it." if resumed else ".")
    )


def _others(job: JobRecord, trouble: CheckTrouble | None) -> str:
    if trouble is None or not trouble.others:
        return ""
    jobs, wait = ("job", "waits") if trouble.others == 1 else ("jobs", "wait")
    return f" {trouble.others} other open {jobs} at {job.vendor.value} {wait} on the same."


def _sentence(text: str) -> str:
    """`text` (an error, a vendor's reason) ending a sentence: a full stop added unless it
    ends with its own, so "Invalid token." is not followed by a second one."""
    text = text.rstrip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _bare(text: str) -> str:
    """`text` inside a sentence, in parentheses: without a full stop of its own."""
    text = text.rstrip()
    return text[:-1] if text.endswith(".") and not text.endswith("..") else text


def calls_text(calls: float) -> str:
    """Vendor calls as people read them. A list call that reports on several jobs is shared
    among them, so a job's count can hold fractions of calls; those are not news to the
    reader beyond the first decimal, nor worth "4.333333"."""
    whole = round(calls)
    if abs(calls - whole) < 1e-6:
        return str(whole)
    return f"about {round(calls, 1):g} (some shared with other jobs)"


def _html(text: str) -> str:
    """`text` in HTML: escaped, its backtick-quoted commands as code."""
    return CODE.sub(r"<code>\1</code>", html.escape(text))


CODE = re.compile(r"`([^`\n]+)`")


def _utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def _mrkdwn(text: str) -> str:
    """Slack's three control characters escaped, so a job name cannot ping or link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _button(text: str, url: str, action_id: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "url": url,
        "action_id": action_id,
    }
