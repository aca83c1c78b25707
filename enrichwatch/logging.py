"""Structured logging: JSON lines off a terminal, readable console output on one.

Secrets are scrubbed twice: by key (anything that looks like a credential) and by value (every
configured secret, wherever it appears in a rendered line), because a token can hide inside a URL
or an exception message as easily as in a field called `token`.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import orjson
import structlog
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import RequestPayloadError

REDACTED = "[redacted]"
_SENSITIVE_KEYS = ("authorization", "api_key", "api-key", "apikey", "token", "secret", "password")


@functools.cache
def _is_sensitive(key: str) -> bool:
    """Cached: every request's log line asks again about the same dozen field names."""
    lowered = key.lower()
    return any(marker in lowered for marker in _SENSITIVE_KEYS)


def _json_line(value: Any, **options: Any) -> str:
    """orjson first: `json.dumps` was most of the cost of the line each request logs. What
    orjson refuses (a lone surrogate, a key that is not a string) goes to `json.dumps`;
    `options["default"]` is structlog's fallback for values neither knows."""
    try:
        return orjson.dumps(value, default=options["default"]).decode()
    except TypeError:
        return json.dumps(value, **options)


def _redact_keys(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if _is_sensitive(key):
            event_dict[key] = REDACTED
    return event_dict


class _ScrubValues:
    """Replaces known secret values in the final rendered line."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def __call__(self, _: Any, __: str, line: Any) -> str:
        text = line.decode() if isinstance(line, bytes) else str(line)
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text


class _UnparseableRequests(logging.Filter):
    """aiohttp answers a request it cannot parse by itself and logs it as an error quoting the
    offending bytes, and a request line carries its path, callback token included. Such a
    request is the client's fault: a warning naming the client and the kind of fault, none of
    the bytes."""

    def filter(self, record: logging.LogRecord) -> bool:
        fault = record.exc_info[1] if record.exc_info else None
        if isinstance(fault, RequestPayloadError):
            # A body that did not decode, seen again when aiohttp drains what a handler that
            # already answered 400 left unread.
            fault = fault.__cause__
        if isinstance(fault, HttpProcessingError) and 400 <= fault.code < 500:
            # aiohttp's message is "Error handling request from %s" with the client's address.
            args = record.args if isinstance(record.args, tuple) else ()
            record.client = args[0] if args else None
            record.status, record.fault = fault.code, type(fault).__name__
            record.msg, record.args, record.exc_info = "bad_http_request", (), None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_UNPARSEABLE_REQUESTS = _UnparseableRequests()


def configure_logging(
    *,
    level: str = "info",
    log_format: str = "auto",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Configure structlog (and route stdlib logging through it) for the whole process."""
    stream = stream or sys.stderr
    as_json = log_format == "json" or (log_format == "auto" and not stream.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_json_line)
        if as_json
        # Plain tracebacks: with rich installed structlog would print every frame's locals,
        # where tokens and payloads live.
        else structlog.dev.ConsoleRenderer(
            colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    printer = structlog.PrintLogger(stream)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_keys,
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            renderer,
            _ScrubValues(secrets),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # One printer for every logger: the lazy proxies build a logger on each call, and a
        # new PrintLogger per line costs more than the filtered-out lines themselves.
        logger_factory=lambda *_: printer,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(("client", "status", "fault"))],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
                _ScrubValues(secrets),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    # aiohttp's access log prints raw paths, and callback paths carry secret tokens.
    logging.getLogger("aiohttp.access").disabled = True
    logging.getLogger("aiohttp.server").addFilter(_UNPARSEABLE_REQUESTS)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
