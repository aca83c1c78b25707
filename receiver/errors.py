"""Every error the receiver answers is JSON: `{"error": {"code", "message", ...}}`."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, **extra}}, status=status)


class ApiError(Exception):
    """Raised by a handler to answer with a JSON error."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.message, **self.extra)


def invalid(exc: ValidationError, status: int = 422) -> ApiError:
    """A pydantic failure as an error naming each bad field."""
    fields = [
        {"field": ".".join(str(part) for part in error["loc"]) or "body", "message": error["msg"]}
        for error in exc.errors()
    ]
    names = ", ".join(field["field"] for field in fields)
    return ApiError(status, "invalid_request", f"invalid fields: {names}", fields=fields)


HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}
