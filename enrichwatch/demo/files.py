"""The demo's files: its database (kept after the run, so its results can be exported) and
its service log. A second run replaces the first one's files, but never a database that
holds anything other than demo jobs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from enrichwatch.demo.samples import DEMO_NAME_PREFIX
from enrichwatch.errors import EnrichwatchError


class DemoFileError(EnrichwatchError):
    """The demo's database path holds something the demo must not replace."""


def log_path(db: Path) -> Path:
    return db.with_name(db.name + ".log")


def clear_previous_demo(db: Path) -> None:
    """Remove an earlier demo's database and log at `db`; raises DemoFileError if the file
    there is not a demo database."""
    if db.exists() and not _holds_only_demo_jobs(db):
        raise DemoFileError(f"{db} exists and is not a demo database; pass --db with another path")
    try:
        for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), log_path(db)):
            path.unlink(missing_ok=True)
    except OSError as exc:
        raise DemoFileError(f"cannot replace the earlier demo at {db}: {exc.strerror}") from None


def _holds_only_demo_jobs(db: Path) -> bool:
    if not db.is_file():
        return False
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.Error:
        return False
    try:
        (others,) = conn.execute(
            "SELECT COUNT(*) FROM jobs WHERE name IS NULL OR name NOT LIKE ?",
            (DEMO_NAME_PREFIX + "%",),
        ).fetchone()
    except sqlite3.Error:  # not SQLite, or not an enrichwatch database
        return False
    finally:
        conn.close()
    return int(others) == 0
