"""`POST /hooks/{vendor}/{token}`: store a vendor callback durably, then acknowledge it.

The callback is a hint (DESIGN.md principle 2): it is stored as received and makes its job due
for a check; the job's state changes only from what the vendor's API says. The 200 goes out
only after the transaction that stored it has committed (principle 4).
"""

from __future__ import annotations

import structlog
from aiohttp import web

from enrichwatch import jsontext
from enrichwatch.callbacks import inspect_callback
from enrichwatch.errors import SignatureError
from enrichwatch.metrics import Metrics
from enrichwatch.models import VendorName
from enrichwatch.store import InboundDelivery
from enrichwatch.vendors import adapter_class
from receiver.errors import ApiError
from receiver.keys import SERVICES

log = structlog.get_logger("enrichwatch.receiver")

# Request headers that could carry credentials are not kept in the inbox.
_UNSTORED_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", "x-api-key"})


async def receive_callback(request: web.Request) -> web.Response:
    services = request.app[SERVICES]  # callbacks are routed on the root application
    metrics = services.metrics
    try:
        vendor = VendorName(request.match_info["vendor"])
    except ValueError:
        metrics.callback_rejections.labels("unknown", "unknown_vendor").inc()
        raise ApiError(404, "not_found", "no such callback URL") from None
    structlog.contextvars.bind_contextvars(vendor=vendor.value)

    try:
        body = await _read_limited(request, services.settings.max_body_bytes)
    except web.RequestPayloadError:
        metrics.callback_rejections.labels(vendor.value, "bad_body").inc()
        log.warning("callback_rejected", reason="bad_body")
        raise ApiError(
            400,
            "bad_body",
            "the callback body could not be read: it does not decode as its "
            "Content-Encoding or Transfer-Encoding says",
        ) from None
    if body is None:
        metrics.callback_rejections.labels(vendor.value, "too_large").inc()
        raise ApiError(
            413,
            "payload_too_large",
            f"callback body exceeds {services.settings.max_body_bytes} bytes",
        )
    headers = {k.lower(): _as_text(v) for k, v in request.headers.items()}
    try:
        check = inspect_callback(vendor, services.settings, headers, body, services.store.clock())
    except SignatureError as exc:
        # Signed or not, a request to a URL no job has is someone guessing URLs (or a
        # vendor holding one from another database): counted and answered as such.
        if not await services.store.knows_callback_url(vendor, request.match_info["token"]):
            raise _unknown_token(metrics, vendor) from None
        metrics.callback_rejections.labels(vendor.value, exc.reason).inc()
        log.warning("callback_rejected", reason=exc.reason)
        raise ApiError(401, "bad_signature", str(exc), reason=exc.reason) from None

    content_type = request.headers.get("Content-Type")
    delivery = InboundDelivery(
        method=request.method,
        headers={k: v for k, v in headers.items() if k not in _UNSTORED_HEADERS},
        content_type=None if content_type is None else _as_text(content_type),
        body=body,
        verification=check.verification,
        dedupe_key=check.dedupe_key,
    )
    outcome = await services.store.record_callback(
        vendor,
        request.match_info["token"],
        delivery,
        vendor_sends_callbacks=adapter_class(vendor).supports_webhooks,
    )
    if outcome is None:
        raise _unknown_token(metrics, vendor)

    # The request's log line (receiver.middleware) carries these: one line per callback.
    structlog.contextvars.bind_contextvars(
        job_id=outcome.job_id, inbox_id=outcome.inbox_id, duplicate=outcome.duplicate
    )
    if not outcome.duplicate:
        services.due_now.set()
    metrics.callback_stored(vendor.value, outcome.duplicate)
    return web.json_response(
        {"accepted": True, "duplicate": outcome.duplicate, "inbox_id": outcome.inbox_id},
        dumps=jsontext.dumps,
    )


async def _read_limited(request: web.Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to exceed `limit` (without reading the rest).

    The application's `client_max_size` is the same limit, so aiohttp stops a chunked body
    that grows past it. A body that fails to decompress or unchunk raises
    web.RequestPayloadError.
    """
    if request.content_length is not None and request.content_length > limit:
        return None
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        return None


def _as_text(value: str) -> str:
    """A header value the store can keep: aiohttp hands over bytes that are not UTF-8 as lone
    surrogates, which no UTF-8 text (SQLite's, a digest's input) can hold; they are kept as
    `\\xNN` escapes instead, the same for every redelivery of the same bytes."""
    if value.isascii():  # nearly every header: nothing to escape
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _unknown_token(metrics: Metrics, vendor: VendorName) -> ApiError:
    metrics.callback_rejections.labels(vendor.value, "unknown_token").inc()
    return ApiError(404, "not_found", "no such callback URL")
