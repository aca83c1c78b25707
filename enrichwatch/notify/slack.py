"""Slack incoming webhooks, through slack_sdk's aiohttp-native AsyncWebhookClient (which
also retries a dropped connection once).

A 429 is not waited out in process: its Retry-After becomes the row's next attempt time, so
a long wait survives a restart and holds up no other notification.

The URL embeds Slack's token, so no error this module raises ever contains it."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.webhook.async_client import AsyncWebhookClient
from slack_sdk.webhook.webhook_response import WebhookResponse

from enrichwatch.notify.errors import NotifyPermanentError, NotifyTransientError
from enrichwatch.notify.message import Message
from enrichwatch.retry_after import parse_retry_after

CHANNEL = "slack"


async def send_slack(
    url: str, message: Message, *, session: aiohttp.ClientSession, timeout_s: float
) -> None:
    client = AsyncWebhookClient(url, timeout=max(int(timeout_s), 1), session=session)
    try:
        async with asyncio.timeout(timeout_s):
            response = await client.send_dict(message.slack())
    except TimeoutError:
        raise NotifyTransientError(CHANNEL, f"no answer within {timeout_s:g}s") from None
    except aiohttp.InvalidURL:
        raise NotifyPermanentError(CHANNEL, "the Slack webhook URL is not a valid URL") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise NotifyTransientError(CHANNEL, f"cannot reach Slack: {_without(url, exc)}") from None
    _raise_for(response)


def _raise_for(response: WebhookResponse) -> None:
    """Slack answers 200 "ok"; its errors name themselves in the body (404 no_service,
    410 channel_is_archived, 403 invalid_token, 400 invalid_payload): those never heal by
    retrying. 429, 408 and 5xx do."""
    status = response.status_code
    if status == 200:
        return
    reason = f"HTTP {status} {(response.body or '').strip()[:200]}".rstrip()
    if status == 429 or status == 408 or status >= 500:
        raise NotifyTransientError(CHANNEL, reason, retry_after=_retry_after(response))
    raise NotifyPermanentError(CHANNEL, reason)


def _retry_after(response: WebhookResponse) -> float | None:
    for name, value in (response.headers or {}).items():
        if name.lower() == "retry-after":
            return parse_retry_after(value)
    return None


def _without(url: str, exc: BaseException) -> str:
    """The error's words with the secret parts of `url` (all but its host) blanked out."""
    text = str(exc)
    parts = urlsplit(url)
    for secret in (url, parts.path, parts.query):
        if len(secret) > 1:
            text = text.replace(secret, "[redacted]")
    return text
