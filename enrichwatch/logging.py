"""Structured logging: JSON lines off a terminal, readable console output on one.

Secrets are scrubbed twice: by key (anything that looks like a credential) and by value (every
configured secret, wherever it appears in a rendered line), because a token can hide inside a URL
or an exception message as easily as in a field called `token`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "[redacted]"
_SENSITIVE_KEYS = ("authorization", "api_key", "api-key", "apikey", "token", "secret", "password")


def _is_sensitive(key: str) -> bool:
    lowered = key.lower()
    return any(marker in lowered for marker in _SENSITIVE_KEYS)


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
        structlog.processors.JSONRenderer()
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
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
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


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
