from __future__ import annotations

from aiohttp import web

from enrichwatch.runtime import Services

SERVICES = web.AppKey("services", Services)
PUBLIC_URL = web.AppKey("public_url", str)
