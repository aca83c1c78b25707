"""Logs are structured, carry job context, and never contain a secret."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import structlog

from enrichwatch.config import load_settings
from enrichwatch.logging import configure_logging, get_logger
from enrichwatch.models import VendorName
from enrichwatch.runtime import Services, open_services
from enrichwatch.store import JobRecord
from receiver import serving
from tests.conftest import eventually

SECRETS = {
    "api_token": "api-token-abcdef123456",
    "crustdata_key": "crustdata-key-987654321",
    "ecore_key": "ecore-key-55555555",
    "webhook_secret": "crustdata-whsec-424242",
}


async def test_secrets_never_appear_in_logs_and_job_lines_carry_context(tmp_path, http):
    settings = load_settings(
        db=tmp_path / "log.db",
        api_token=SECRETS["api_token"],
        crustdata={"api_key": SECRETS["crustdata_key"]},
        ecore={"api_key": SECRETS["ecore_key"]},
        log_level="debug",
    )
    stream = io.StringIO()
    configure_logging(level="debug", log_format="json", secrets=settings.secrets(), stream=stream)
    auth = {"Authorization": f"Bearer {SECRETS['api_token']}"}
    try:
        async with open_services(settings) as services, serving(services, "127.0.0.1", 0) as url:
            async with http.post(
                f"{url}/api/jobs", json={"vendor": "ecore", "vendor_job_id": "j1"}, headers=auth
            ) as response:
                job = await response.json()
            callback_token = job["callback_url"].rsplit("/", 1)[1]
            async with http.post(job["callback_url"], data=b"{}", headers=auth) as response:
                assert response.status == 200
            async with http.post(f"{url}/hooks/ecore/{callback_token}x", data=b"{}") as response:
                assert response.status == 404
            async with http.get(f"{url}/api/jobs", headers={"Authorization": "Bearer wrong"}):
                pass
            # Secrets passed by mistake as fields or inside messages are scrubbed as well.
            get_logger().warning(
                "careless",
                api_key=SECRETS["crustdata_key"],
                note=f"key was {SECRETS['ecore_key']}",
                headers={"Authorization": SECRETS["api_token"]},
            )
    finally:
        structlog.reset_defaults()

    output = stream.getvalue()
    lines = [json.loads(line) for line in output.splitlines()]
    for name, secret in {**SECRETS, "callback_token": callback_token}.items():
        assert secret not in output, name
    # One line per callback: the request's, carrying what the callback was stored as.
    stored = [line for line in lines if "inbox_id" in line]
    assert len(stored) == 1
    assert stored[0]["event"] == "request_finished"
    assert stored[0]["route"] == "/hooks/{vendor}/{token}"
    assert stored[0]["job_id"] == job["id"]
    assert stored[0]["vendor"] == "ecore"
    assert stored[0]["duplicate"] is False
    assert {line["route"] for line in lines if line["event"] == "request_finished"} >= {
        "/hooks/{vendor}/{token}",
        "/api/jobs",
    }


def test_console_format_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    configure_logging(stream=stream)
    try:
        get_logger().info("hello", job_id=3, vendor="ecore")
    finally:
        structlog.reset_defaults()
    text = stream.getvalue()
    assert "hello" in text
    assert "job_id" in text
    assert not text.lstrip().startswith("{")


@asynccontextmanager
async def receiver_logging_to(
    stream: io.StringIO, tmp_path: Path
) -> AsyncIterator[tuple[Services, str, JobRecord]]:
    """A receiver on a real socket logging JSON lines to `stream`, one eCore job tracked."""
    settings = load_settings(db=tmp_path / "logged.db", api_token=SECRETS["api_token"])
    configure_logging(log_format="json", secrets=settings.secrets(), stream=stream)
    try:
        async with open_services(settings) as services, serving(services, "127.0.0.1", 0) as url:
            job, _ = await services.store.track_job(VendorName.ECORE, "e-1", "logged")
            yield services, url, job
    finally:
        structlog.reset_defaults()


async def raw_request(url: str, request: bytes) -> bytes:
    """Send bytes no HTTP client would and read the whole answer (the server closes)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def test_a_request_that_is_not_http_is_answered_and_logged_without_its_bytes(tmp_path):
    """aiohttp answers what it cannot parse itself, in plain text quoting the parser, and logs
    the offending bytes as an error; a request line holds the callback token. Ours is a JSON
    error and a warning, each naming the fault with none of the bytes, and nothing is
    stored."""
    stream = io.StringIO()
    async with receiver_logging_to(stream, tmp_path) as (services, url, job):
        path = f"/hooks/ecore/{job.callback_token}".encode()
        answers = [
            await raw_request(url, request)
            for request in (
                b"POST " + path + b"\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
                b"POST " + path + b" HTTP/1.1 and more\r\nHost: x\r\n\r\n",
                b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nX-Note: " + path + b"\x7f\r\n\r\n",
            )
        ]
        stored = await services.store.get_job(job.id)

    heads, bodies = zip(*(answer.split(b"\r\n\r\n", 1) for answer in answers), strict=True)
    assert [head.split(b"\r\n", 1)[0] for head in heads] == [b"HTTP/1.0 400 Bad Request"] * 3
    assert all(b"Content-Type: application/json" in head for head in heads)
    assert [json.loads(body)["error"] for body in bodies] == [
        {"code": "bad_request", "message": "the request is not valid HTTP/1.1", "fault": fault}
        for fault in ("InvalidURLError", "BadStatusLine", "BadHttpMessage")
    ]
    assert stored.callbacks_received == 0
    output = stream.getvalue()
    assert job.callback_token not in output
    faults = [json.loads(line) for line in output.splitlines() if "bad_http_request" in line]
    assert [(f["level"], f["client"], f["status"]) for f in faults] == [
        ("warning", "127.0.0.1", 400)
    ] * 3
    assert {f["fault"] for f in faults} == {"InvalidURLError", "BadStatusLine", "BadHttpMessage"}


def test_a_library_logging_an_exception_gets_its_traceback_as_text():
    stream = io.StringIO()
    configure_logging(log_format="json", secrets=["hidden-value-1"], stream=stream)
    try:
        try:
            raise ValueError("broke near hidden-value-1")
        except ValueError:
            logging.getLogger("some.library").exception("it failed")
    finally:
        structlog.reset_defaults()
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["event"] == "it failed"
    assert line["level"] == "error"
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert "ValueError: broke near [redacted]" in line["exception"]


async def test_a_client_gone_mid_body_or_with_a_body_that_does_not_decode_is_no_error(tmp_path):
    """A client that hangs up before its body is in (a vendor's timeout, a dropped network) is
    counted as 499 with a warning, not a 500 with a traceback; a body that fails to decompress
    is answered 400, and aiohttp's own look at it afterwards is a warning too. Nothing is
    stored either way."""
    stream = io.StringIO()
    async with receiver_logging_to(stream, tmp_path) as (services, url, job):
        head = f"POST /hooks/ecore/{job.callback_token} HTTP/1.1\r\nHost: x\r\n".encode()
        host, port = url.removeprefix("http://").split(":")
        cut_short = (
            b"Content-Length: 100\r\n\r\nabc",
            b"Transfer-Encoding: chunked\r\n\r\n5\r\nab",
        )
        for body in cut_short:
            _, writer = await asyncio.open_connection(host, int(port))
            writer.write(head + body)
            await writer.drain()
            writer.close()
        await eventually(
            lambda: stream.getvalue().count('"client_disconnected"') == 2, 10, "both seen"
        )
        not_gzip = b"Connection: close\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n\r\nnot g"
        answer = await raw_request(url, head + not_gzip)
        stored = await services.store.get_job(job.id)

    assert answer.split(b"\r\n", 1)[0] == b"HTTP/1.1 400 Bad Request"
    assert b'"code":"bad_body"' in answer.replace(b" ", b"")
    assert stored.callbacks_received == 0
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line for line in lines if line["level"] == "error"] == []
    finished = [line["status"] for line in lines if line["event"] == "request_finished"]
    assert finished == [499, 499, 400]
    assert [line["fault"] for line in lines if line["event"] == "bad_http_request"] == [
        "ContentEncodingError"
    ]


def test_a_line_with_values_json_cannot_carry_as_they_are_is_still_one_json_line():
    """Header bytes that are not UTF-8 reach us as lone surrogates, and a field may hold a
    mapping with integer keys or an object JSON does not know: the line is still JSON."""
    stream = io.StringIO()
    configure_logging(log_format="json", stream=stream)
    try:
        get_logger().info("odd", header="a\udcffb", counts={1: "one"}, where=Path("/tmp/x"))
    finally:
        structlog.reset_defaults()
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert (line["header"], line["counts"], line["where"]) == (
        "a\udcffb",
        {"1": "one"},
        repr(Path("/tmp/x")),
    )
