"""The long-running commands refuse what they cannot do with one line, not a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from reconciler.scheduler import WATCH_INTERVAL_S


def enrichwatch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "enrichwatch", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_sim_on_a_port_in_use_is_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = enrichwatch("sim", "--port", str(port))
    assert result.returncode != 0
    assert f"cannot serve the simulator on port {port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Unclosed" not in result.stderr


@pytest.mark.parametrize("command", ["serve", "receiver", "reconciler"])
def test_a_bad_setting_stops_each_service_command_naming_it(command, tmp_path):
    db = tmp_path / "never.db"
    result = enrichwatch(
        command, env={"ENRICHWATCH_WORK_INTERVAL": "-1", "ENRICHWATCH_DB": str(db)}
    )
    assert result.returncode != 0
    assert "ENRICHWATCH_WORK_INTERVAL" in result.stderr
    assert "Traceback" not in result.stderr
    assert not db.exists()


@pytest.mark.parametrize("command", ["receiver", "reconciler"])
def test_the_split_commands_say_how_soon_a_job_made_due_elsewhere_is_looked_at(command):
    """A separate reconciler finds what another process made due by a look once a second
    (tests/test_split_processes.py shows it with a five-minute work interval), not at its
    work interval, as the help of both commands said."""
    assert WATCH_INTERVAL_S == 1
    result = enrichwatch(command, "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "looks at least once a second for the jobs a callback" in text
    assert "interval" not in text
