"""Logs are structured, carry job context, and never contain a secret."""

from __future__ import annotations

import io
import json

import structlog

from enrichwatch.config import load_settings
from enrichwatch.logging import configure_logging, get_logger
from enrichwatch.runtime import open_services
from receiver import serving

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
