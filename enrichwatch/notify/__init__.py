"""Notifications: what to say about a job's outcome (message), one sender per channel
(Slack, email, signed webhooks, console), and the errors that tell a retry from a dead letter.

Delivery guarantee, per channel, given one row per (job, outcome, channel) in the outbox:

- every channel: at least once. A row is marked sent only after its channel accepted the
  message, in a transaction of its own; a process killed between the two sends it again on
  restart. Apart from that window (a crash mid-send) a row is delivered exactly once: it is
  created once, claimed under a lease, and never made pending again once sent.
- webhook: at least once with a stable idempotency key: `webhook-id` is fixed when the row is
  made, so a receiver that dedupes on it sees each outcome once.
- email: at least once; a resend carries the same Message-ID.
- Slack: at least once; an incoming webhook has no idempotency key, so a crash after Slack
  accepted and before the row was marked sent posts the message twice.
- console: at least once (a log line).
"""

from __future__ import annotations

from enrichwatch.notify.errors import NotifyError, NotifyPermanentError, NotifyTransientError
from enrichwatch.notify.message import Message, build_message

__all__ = [
    "Message",
    "NotifyError",
    "NotifyPermanentError",
    "NotifyTransientError",
    "build_message",
]
