"""Outbound webhooks for other systems, signed per Standard Webhooks v1: the body is the JSON
event, `webhook-id` is the notification's idempotency key (fixed when the row was made, the
same on every retry), `webhook-timestamp` the time of this attempt, and `webhook-signature`
`v1,` + base64 HMAC-SHA256 of `id.timestamp.body` under the `whsec_` key.

2xx is success. 410 Gone means the endpoint is retired: dead-letter at once. Anything else,
redirects included (they are not followed), is retried with backoff, honouring Retry-After."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json

import aiohttp

from enrichwatch.config import decode_webhook_secret
from enrichwatch.notify.errors import NotifyPermanentError, NotifyTransientError
from enrichwatch.notify.message import Message

CHANNEL = "webhook"


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one attempt."""
    key = decode_webhook_secret(secret)
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


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
            text = (await response.text(errors="replace"))[:200]
            retry_after = _seconds(response.headers.get("Retry-After"))
    except TimeoutError:
        raise NotifyTransientError(CHANNEL, f"no answer within {timeout_s:g}s") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise NotifyTransientError(CHANNEL, f"cannot reach {url}: {exc}") from None
    if 200 <= status < 300:
        return
    reason = f"HTTP {status} {text.strip()}".rstrip()
    if status == 410:
        raise NotifyPermanentError(CHANNEL, f"endpoint gone: {reason}")
    raise NotifyTransientError(CHANNEL, reason, retry_after=retry_after)


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None
