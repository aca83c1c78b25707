"""Logging in to the dashboard: the API token, asked once and kept in a cookie.

The cookie holds the token itself (HttpOnly, so page scripts never see it; SameSite=Strict,
so no other site can make the browser use it), and every request compares its digest with
the stored one in constant time, exactly as the API does with a bearer token.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable
from functools import wraps
from urllib.parse import quote

from aiohttp import web

from enrichwatch.store.rows import token_digest
from receiver.errors import error_response
from receiver.keys import PUBLIC_URL, SERVICES

COOKIE = "enrichwatch_token"
COOKIE_MAX_AGE = 30 * 24 * 3600
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# A path on this site: one "/", then printable ASCII other than "/" first, and no backslash,
# space or control character anywhere (browsers drop or reinterpret those, and
# "/\t/evil.example" becomes "//evil.example", another host).
_LOCAL_PATH = re.compile(r"/(?!/)[\x21-\x5b\x5d-\x7e]*")


class LoginRefused(Exception):
    """A token the dashboard does not accept; the message is shown on the login form."""


def check_token(request: web.Request, token: str) -> None:
    """Raise LoginRefused unless `token` is the API token."""
    expected = request.config_dict[SERVICES].api_token_digest
    if expected is None:
        raise LoginRefused(
            "No API token is configured, so the dashboard is closed. "
            "Set one (api_token) or start the service with serve, which generates one."
        )
    if not token:
        raise LoginRefused("Enter the API token.")
    if not hmac.compare_digest(_digest(token), expected):
        raise LoginRefused("That is not the API token. Check it and try again.")


def _digest(token: str) -> str:
    """The token's digest; a cookie holding bytes that are not UTF-8 (which aiohttp hands over
    as lone surrogates) cannot be the configured token, so it gets a digest nothing matches."""
    try:
        return token_digest(token)
    except UnicodeEncodeError:
        return ""


def is_logged_in(request: web.Request) -> bool:
    try:
        check_token(request, request.cookies.get(COOKIE, ""))
    except LoginRefused:
        return False
    return True


def remember(request: web.Request, response: web.StreamResponse, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=COOKIE_MAX_AGE,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.config_dict[PUBLIC_URL].startswith("https://"),
    )


def forget(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/")


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a plain path on this site only, never another host, and
    nothing a header cannot carry."""
    if target and _LOCAL_PATH.fullmatch(target):
        return target
    return "/"


def see_other(location: str) -> web.Response:
    """A redirect returned, not raised, so the request log records it as the 303 it is."""
    return web.Response(status=303, headers={"Location": location})


def page(handler: Handler) -> Handler:
    """A page for people: without a valid cookie, off to the login form and back after."""

    @wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        if not is_logged_in(request):
            # As sent, still percent-encoded: the decoded form may hold what safe_next refuses.
            return see_other(f"/login?next={quote(request.rel_url.raw_path_qs, safe='')}")
        return await handler(request)

    return guarded


def fragment(handler: Handler) -> Handler:
    """A piece fetched by the page's script: without a valid cookie, a 401 it can act on."""

    @wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        if not is_logged_in(request):
            return error_response(401, "unauthorized", "log in to the dashboard first")
        return await handler(request)

    return guarded
