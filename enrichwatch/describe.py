"""Words for what happened to a job: one line per event, and vendor calls as counted, the
same in the CLI, the demo and the dashboard."""

from __future__ import annotations

import json
from typing import Any

from enrichwatch.store import EventRecord


def calls_text(calls: float) -> str:
    """Vendor calls; a list call shared by several jobs leaves fractions."""
    return f"{calls:g}" if calls == int(calls) else f"{calls:.1f}"


def counted(count: object, one: str, many: str) -> str:
    """`count` and the noun that goes with it: `one` for exactly 1, `many` otherwise (an
    unknown count too, shown as it is)."""
    return f"{count} {one if count == 1 else many}"


def event_summary(event: EventRecord) -> str:
    """One line saying what the event means; unknown types show their payload."""
    p = event.payload
    match event.type:
        case "submit.requested":
            return f"submit requested: {counted(p.get('rows'), 'row', 'rows')}"
        case "job.submitted":
            return f"accepted by the vendor as {p.get('vendor_job_id')}"
        case "job.tracked":
            return f"tracking {p.get('vendor_job_id')}"
        case "vendor.polled":
            cost = p.get("cost", 0)
            calls = f"{calls_text(cost)} {'call' if cost == 1 else 'calls'}"
            return f"status call: {p.get('vendor_status')} ({calls})"
        case "vendor.poll_failed":
            return f"status call failed: {p.get('error')}"
        case "job.state_changed":
            reason = p.get("reason") or p.get("vendor_status")
            return f"{p.get('from')} → {p.get('to')}" + (f" ({reason})" if reason else "")
        case "job.progressed":
            failed = f", {p['failed']} failed" if p.get("failed") else ""
            return f"progress {p.get('done')}/{p.get('total')}{failed}"
        case "webhook.received":
            replay = f", replay of inbox {p['replay_of']}" if "replay_of" in p else ""
            return f"callback received (inbox {p.get('inbox_id')}{replay}): job due for a check"
        case "webhook.duplicate":
            replay = f", replay of inbox {p['replay_of']}" if "replay_of" in p else ""
            return (
                f"duplicate callback (inbox {p.get('inbox_id')}, "
                f"first was {p.get('duplicate_of')}{replay}): ignored"
            )
        case "webhook.late":
            return "callback late: checking by polling instead"
        case "results.stored":
            partial = " (partial)" if p.get("partial") else ""
            return f"results stored: {counted(p.get('count'), 'record', 'records')}{partial}"
        case "notification.sent" | "notification.failed":
            what = "dead-lettered" if p.get("dead") else event.type.split(".", 1)[1]
            error = f": {p['error']}" if p.get("error") else ""
            return f"notification {what} ({p.get('channel')}, {p.get('outcome')}){error}"
        case "job.check_requested":
            scope = " (for every open job at the vendor)" if p.get("scope") == "vendor" else ""
            return f"check requested{scope}: due now"
        case "notification.covered":
            return (
                f"notification not sent ({p.get('channel')}, {p.get('outcome')}): "
                f"job {p.get('by_job')} told the same people of it"
            )
        case _:
            return " ".join(f"{key}={_compact(value)}" for key, value in p.items())


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
