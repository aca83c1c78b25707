"""Outbound webhooks for other systems, signed per Standard Webhooks v1: the body is the JSON
event, `webhook-id` is the notification's idempotency key (fixed when the row was made, the
same on every retry), `webhook-timestamp` the time of this attempt, and `webhook-signature`
`v1,` + base64 HMAC-SHA256 of `id.timestamp.body` under the `whsec_` key.

2xx is success, decided on the status alone: the body of an accepted delivery is not read, so
a slow or endless one cannot turn it into a failure and a resend. 410 Gone means the endpoint is
retired, and a URL that cannot even be requested never heals: dead-letter at once. Anything
else, redirects included (they are not followed), is retried with backoff, honouring
Retry-After.

A URL's user and password (basic auth) are a secret: errors and records name the URL without
them (`shown_url`)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from enrichwatch.config import decode_webhook_secrets
from enrichwatch.notify.errors import NotifyPermanentError, NotifyTransientError
from enrichwatch.notify.message import Message
from enrichwatch.retry_after import parse_retry_after

CHANNEL = "webhook"
REASON_BYTES = 200


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one attempt: one `v1,` signature per key of
    `secret` (several while a key is rotated), separated by spaces."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        for key in decode_webhook_secrets(secret)
    )


def encode_event(message: Message) -> bytes:
    return json.dumps(message.webhook_event(), separators=(",", ":")).encode()


async def send_webhook(
    url: str,
    secret: str,
    message: Message,
    *,
    webhook_id: str,
    timestamp: int,
    session: aiohttp.ClientSession,
    timeout_s: float,
) -> None:
    body = encode_event(message)
    headers = {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, webhook_id, timestamp, body),
    }
    try:
        async with (
            asyncio.timeout(timeout_s),
            session.post(url, data=body, headers=headers, allow_redirects=False) as response,
        ):
            status = response.status
            if 200 <= status < 300:
                return
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            text = (await response.content.read(REASON_BYTES)).decode(errors="replace")
    except TimeoutError:
        raise NotifyTransientError(CHANNEL, f"no answer within {timeout_s:g}s") from None
    except aiohttp.InvalidURL:
        raise NotifyPermanentError(CHANNEL, f"{shown_url(url)} is not a valid URL") from None
    except (aiohttp.ClientError, OSError) as exc:
        shown = str(exc).replace(url, shown_url(url))
        raise NotifyTransientError(CHANNEL, f"cannot reach {shown_url(url)}: {shown}") from None
    reason = f"HTTP {status} {text.strip()}".rstrip()
    if status == 410:
        raise NotifyPermanentError(CHANNEL, f"endpoint gone: {reason}")
    raise NotifyTransientError(CHANNEL, reason, retry_after=retry_after)


def shown_url(url: str) -> str:
    """`url` without its user and password, fit to record and show."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))
