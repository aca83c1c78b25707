"""Every error the receiver answers is JSON: `{"error": {"code", "message", ...}}`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from pydantic import ValidationError
from pydantic_core import ErrorDetails


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, **extra}}, status=status)


class ApiError(Exception):
    """Raised by a handler to answer with a JSON error; `headers` go on the answer, `extra`
    into its "error" object."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.extra = extra

    def response(self) -> web.Response:
        response = error_response(self.status, self.code, self.message, **self.extra)
        response.headers.update(self.headers)
        return response


def invalid(exc: ValidationError, status: int = 422) -> ApiError:
    """A pydantic failure as an error naming each bad field."""
    fields = [
        {"field": ".".join(str(part) for part in error["loc"]) or "body", "message": _said(error)}
        for error in exc.errors()
    ]
    names = ", ".join(field["field"] for field in fields)
    return ApiError(status, "invalid_request", f"invalid fields: {names}", fields=fields)


_NOT_AN_OBJECT = frozenset({"model_type", "dict_type"})
"""pydantic's kinds of failure for a value that should have been a JSON object."""


def _said(error: ErrorDetails) -> str:
    """A field's problem in plain words, not pydantic's: a validator's own sentence without
    the "Value error, " it prefixes, and a value that is not an object said to be one in
    JSON's terms, not as "a valid dictionary or instance of" a Python class."""
    if error["type"] == "value_error" and "error" in error.get("ctx", {}):
        return str(error["ctx"]["error"])
    if error["type"] in _NOT_AN_OBJECT:
        return "must be a JSON object" if error["loc"] else "the body must be a JSON object"
    return error["msg"]


HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


class _JsonErrorConnection(RequestHandler):
    """aiohttp answers a request it cannot parse as HTTP before any handler or middleware
    sees it, in plain text quoting the parser's complaint (which may quote the request line,
    callback token and all). This answers it like every other error: JSON naming the kind of
    fault, none of the bytes."""

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # aiohttp's own answer is dropped, but its call logs the fault and refuses to answer
        # twice once a response has begun.
        super().handle_error(request, status, exc, message)
        if status >= 500:
            response = error_response(
                status, "internal_error", "internal error; see the service log"
            )
        else:
            response = error_response(
                status,
                HTTP_CODES.get(status, "bad_request"),
                "the request is not valid HTTP/1.1",
                fault=type(exc).__name__ if exc else None,
            )
        response.force_close()
        return response


def answering_errors_in_json(connection: RequestHandler) -> RequestHandler:
    """The connection aiohttp made, answering the errors it handles itself in JSON."""
    # Same slots, one method overridden: Python refuses the swap if the layouts ever differ.
    connection.__class__ = _JsonErrorConnection
    return connection
