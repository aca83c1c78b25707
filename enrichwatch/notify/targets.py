"""A job's own notification targets, as given to `submit`/`track` or in the API body, checked
against the settings before anything is stored."""

from __future__ import annotations

from urllib.parse import urlsplit

from enrichwatch.config import Settings, is_email_address
from enrichwatch.errors import EnrichwatchError
from enrichwatch.store.notifications import JobTargets


class NotifyTargetError(EnrichwatchError):
    """A per-job target is malformed or cannot be used with the settings in force."""


def job_targets(
    settings: Settings,
    *,
    slack: str | None = None,
    email: list[str] | None = None,
    webhook: str | None = None,
) -> JobTargets | None:
    """The targets to store with the job, or None when none was given."""
    for name, url in (("slack", slack), ("webhook", webhook)):
        if url is not None and not _requestable(url):
            raise NotifyTargetError(f"notify {name}: {url!r} is not an http(s) URL")
    for address in email or []:
        if not is_email_address(address):
            raise NotifyTargetError(f"notify email: {address!r} is not an email address")
    if email and not settings.smtp.host:
        raise NotifyTargetError(
            "notify email needs an SMTP server: set smtp.host (ENRICHWATCH_SMTP__HOST)"
        )
    if webhook is not None and settings.notify.webhook_secret is None:
        raise NotifyTargetError(
            "notify webhook needs a signing key: set notify.webhook_secret "
            "(ENRICHWATCH_NOTIFY__WEBHOOK_SECRET)"
        )
    targets = JobTargets(slack=slack, email=list(email) if email else None, webhook=webhook)
    return None if targets.is_empty() else targets


def _requestable(url: str) -> bool:
    """An http(s) URL with a host and, if any, a port that exists: one a POST can be sent to."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
