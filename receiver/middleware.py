"""Cross-cutting request handling: one log line and metrics per request, JSON errors, and the
bearer token on /api/."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import os
import time

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from enrichwatch.errors import StoreUnavailableError, UnknownJobError
from enrichwatch.metrics import Metrics
from receiver.errors import HTTP_CODES, ApiError, error_response
from receiver.keys import SERVICES

log = structlog.get_logger("enrichwatch.receiver")
# Unique per process and cheap: a random prefix and a counter (uuid4 costs a urandom call).
_REQUEST_ID_PREFIX = os.urandom(4).hex()
_REQUEST_NUMBERS = itertools.count(1)
BEARER_CHALLENGE = 'Bearer realm="enrichwatch"'
"""`WWW-Authenticate` on the API's 401s."""


def _route(request: web.Request) -> str:
    """The route template, never the raw path: callback paths carry secret tokens."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def observe(metrics: Metrics) -> Middleware:
    """One log line and metrics per request, and every error as JSON.

    `metrics` is bound here rather than looked up per request: `request.config_dict` builds a
    new chain of the application's maps on every call. Likewise the logger is built once, with
    the logging configuration in force when the application is made: the module's lazy proxy
    builds a new one for every line, even a line its level filters out."""
    request_log = log.bind()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            request_id=f"{_REQUEST_ID_PREFIX}-{next(_REQUEST_NUMBERS)}"
        )
        started = time.perf_counter()
        status = 500
        try:
            response = await _answer_errors_as_json(request, handler)
            status = response.status
            return response
        except asyncio.CancelledError:
            # Cut off with no answer finished: by a stop's grace period running out (a slow
            # download), or by the client leaving. Not the service failing: 499, not 500.
            status = 499
            raise
        finally:
            elapsed = time.perf_counter() - started
            route = _route(request)
            metrics.request_served(request.method, route, status, elapsed)
            # One line per request; handlers add what they learnt to its context (job_id, …).
            request_log.info(
                "request_finished",
                method=request.method,
                route=route,
                status=status,
                ms=round(elapsed * 1000, 2),
            )

    return middleware


async def _answer_errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except UnknownJobError as exc:
        return error_response(404, "not_found", str(exc))
    except StoreUnavailableError as exc:
        log.error("store_unavailable", error=str(exc))
        response = error_response(503, "store_unavailable", f"{exc}; nothing was stored, retry")
        response.headers["Retry-After"] = "1"
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(
            exc.status, HTTP_CODES.get(exc.status, "http_error"), exc.reason, **_allow(exc)
        )
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception as exc:
        if isinstance(exc, ConnectionResetError) and _client_gone(request):
            # The client hung up before its request was in (its body cut short): nothing was
            # stored, and nobody is left to answer. 499 as proxies count it, not a 500.
            log.warning("client_disconnected")
            return error_response(
                499, "client_closed_request", "the client closed the connection mid-request"
            )
        log.exception("request_failed")
        return error_response(500, "internal_error", "internal error; see the service log")


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _allow(exc: web.HTTPException) -> dict[str, str]:
    allow = exc.headers.get("Allow")
    return {"allowed_methods": allow} if allow else {}


@web.middleware
async def require_api_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    # Header bytes that are not UTF-8 arrive as lone surrogates, which encode (with
    # "surrogatepass") to bytes no configured token, a proper string, ever encodes to.
    digest = hashlib.sha256(token.strip().encode("utf-8", "surrogatepass")).hexdigest()
    expected = request.config_dict[SERVICES].api_token_digest
    bearer = scheme.lower() == "bearer"
    if expected is None or not bearer or not hmac.compare_digest(digest, expected):
        # RFC 6750: the challenge names the scheme; `invalid_token` only when a bearer token
        # was sent (none, or another scheme, is a request without credentials).
        challenge = BEARER_CHALLENGE
        if bearer and token.strip():
            challenge += ', error="invalid_token"'
        raise ApiError(
            401,
            "unauthorized",
            "missing or wrong API token (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": challenge},
        )
    return await handler(request)
