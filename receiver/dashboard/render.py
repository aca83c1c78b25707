"""Turning templates into responses: one Jinja environment per app, autoescaped, with the
few formats the pages share (times, durations, vendor calls, progress)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jinja2
from aiohttp import web
from markupsafe import Markup, escape

from enrichwatch.describe import event_summary
from enrichwatch.models import VendorName
from enrichwatch.store import EventRecord

TEMPLATES = web.AppKey("dashboard_templates", jinja2.Environment)
# Scripts and styles come only from our own static files, so an injected tag cannot run.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
VENDOR_NAMES = {
    VendorName.CRUSTDATA: "Crustdata",
    VendorName.INFLUENCERS_CLUB: "influencers.club",
    VendorName.REPROMPT: "Reprompt",
    VendorName.BRIGHTLOCAL: "BrightLocal",
    VendorName.ECORE: "eCore",
}


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("receiver.dashboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=when,
        iso=iso,
        duration=duration,
        calls=calls,
        summary=summary,
        code_spans=code_spans,
        vendor_name=VENDOR_NAMES.__getitem__,
    )
    return env


def html(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    text = request.config_dict[TEMPLATES].get_template(template).render(**context)
    return web.Response(text=text, status=status, content_type="text/html", headers=_HEADERS)


def iso(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def when(timestamp: float | None) -> str:
    if timestamp is None:
        return "—"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def calls(count: float) -> str:
    """Vendor calls; a list call shared by several jobs leaves fractions."""
    return f"{count:.2f}".rstrip("0").rstrip(".")


def summary(event: EventRecord, limit: int = 240) -> str:
    """What the event means on one line, cut short; the API has its payload whole."""
    text = event_summary(event)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def code_spans(text: str) -> Markup:
    """Text written for a notice, where a command is marked `so`, with each command shown as
    code; text whose marks do not pair up is shown as it is."""
    parts = text.split("`")
    if len(parts) % 2 == 0:
        return escape(text)
    return Markup("").join(
        Markup("<code>{}</code>").format(part) if index % 2 else escape(part)
        for index, part in enumerate(parts)
    )
