"""Opening the SQLite file the same way everywhere, and bringing its schema up to date."""

from __future__ import annotations

import sqlite3
import time
from importlib import resources
from pathlib import Path

from enrichwatch.errors import MigrationError, StoreError, StoreUnavailableError
from enrichwatch.store.rows import sha256_int64

BUSY_TIMEOUT_MS = 5000

_UNAVAILABLE = {
    sqlite3.SQLITE_BUSY,
    sqlite3.SQLITE_LOCKED,
    sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_READONLY,
}
"""Result codes that say the file cannot be used now, whatever was asked."""


def as_store_error(exc: sqlite3.Error, doing: str) -> StoreError:
    """SQLite's error as ours: `StoreUnavailableError` when the file cannot be used now (a
    caller may try again), `StoreError` otherwise. `doing` is "read" or "write to"."""
    # Errors the sqlite3 module raises itself carry no result code; extended codes keep their
    # primary code in the low byte.
    if getattr(exc, "sqlite_errorcode", 0) & 0xFF in _UNAVAILABLE:
        return StoreUnavailableError(f"could not {doing} the event log: {exc}")
    return StoreError(f"could not {doing} the event log: {exc}")


def connect(path: Path, *, checkpoint_at: int | None = None) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, foreign keys on.

    synchronous=NORMAL in WAL mode survives a crash of the process (kill -9) without losing a
    committed transaction; only a power cut can lose the last few.

    With `checkpoint_at` (bytes) a commit never checkpoints: a `store.checkpointer` thread
    does once the log file is that large. A log that starts over is cut back to half that,
    so the file's size keeps telling how much the log holds.

    A path SQLite cannot open, or a file that is not SQLite, is a StoreError naming the path.
    """
    if path.is_dir():
        raise StoreError(f"cannot open the database {path}: it is a directory")
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the database {path}: {exc}") from exc
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _enable_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA cache_size = -65536")  # 64 MiB: indexes stay in memory
        if checkpoint_at is not None:
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            conn.execute(f"PRAGMA journal_size_limit = {checkpoint_at // 2}")
    except sqlite3.Error as exc:  # "file is not a database": the first read of the file
        conn.close()
        raise StoreError(f"cannot open the database {path}: {exc}") from exc
    return conn


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switching a new file to WAL needs an exclusive lock, and SQLite answers "busy" at once,
    without its busy handler, while another process is opening the same new file."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def migrations() -> list[tuple[int, str]]:
    """The numbered schema migrations shipped in the package, in order."""
    found = []
    for entry in resources.files("enrichwatch.store.migrations").iterdir():
        if entry.name.endswith(".sql"):
            number = int(entry.name.split("_", 1)[0])
            found.append((number, entry.read_text(encoding="utf-8")))
    found.sort()
    if [number for number, _ in found] != list(range(1, len(found) + 1)):
        raise MigrationError("migrations must be numbered 1, 2, 3… without gaps")
    return found


def latest_version() -> int:
    return len(migrations())


def migrate(conn: sqlite3.Connection, *, upgrade: bool = True) -> list[int]:
    """Apply every migration the file has not seen; returns the numbers applied.

    Each runs in its own IMMEDIATE transaction that re-reads `user_version`, so two processes
    starting on the same file at once apply each migration exactly once. Without `upgrade`,
    a new file is still made, but one an older version wrote is refused rather than changed
    under the service of that version that may be serving it.
    """
    known = migrations()
    # Functions that migrations may call to compute values SQL cannot; the file never needs them.
    conn.create_function("sha256_int64", 1, sha256_int64, deterministic=True)
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > len(known):
        raise MigrationError(
            f"database schema version {current} is newer than this enrichwatch "
            f"(knows {len(known)}); upgrade enrichwatch"
        )
    if not upgrade and 0 < current < len(known):
        raise MigrationError(
            f"database schema version {current} is older than this enrichwatch's "
            f"({len(known)}): restart the service with this version to upgrade it, then run "
            "this command again"
        )
    applied = []
    for number, sql in known:
        if number <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] >= number:
                conn.execute("ROLLBACK")
                continue
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise MigrationError(f"migration {number} failed: {exc}") from exc
        applied.append(number)
    return applied


def _statements(sql: str) -> list[str]:
    """Split a migration into statements; executescript would commit behind our back."""
    statements, pending = [], ""
    for line in sql.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip() and not pending.strip().startswith("--"):
        raise MigrationError(f"incomplete SQL statement at end of migration: {pending!r}")
    return statements
