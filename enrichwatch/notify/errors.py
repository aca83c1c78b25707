"""Why a send failed, told apart the way the outbox needs: try again later, or never."""

from __future__ import annotations

from enrichwatch.errors import EnrichwatchError


class NotifyError(EnrichwatchError):
    """A notification could not be delivered over `channel`."""

    def __init__(self, channel: str, message: str) -> None:
        super().__init__(f"{channel}: {message}")
        self.channel = channel
        self.message = message


class NotifyTransientError(NotifyError):
    """The receiving end is down, slow or throttling: retry, not before `retry_after` seconds
    when it said so (Slack's 429 Retry-After)."""

    def __init__(self, channel: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(channel, message)
        self.retry_after = retry_after


class NotifyPermanentError(NotifyError):
    """Retrying cannot help (a Slack webhook that no longer exists, a mailbox the server
    refuses, a channel left unconfigured): dead-letter at once with this reason."""
