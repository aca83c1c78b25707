"""The baseline for bench/ingest.py: an aiohttp handler that answers like the receiver but
does no I/O."""

from __future__ import annotations

import asyncio
import socket
import sys

from aiohttp import web


async def accept(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"accepted": True, "duplicate": False})


async def main() -> None:
    app = web.Application()
    app.router.add_post("/hooks/{vendor}/{token}", accept)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
