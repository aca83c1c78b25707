"""Which lease holders are still running.

A lease names its holder (`lease_owner`): a reconciler, or `enrichwatch check` for its one
job. A reconciler frees the leases of holders that are gone, when it starts and every work
interval after, so what a killed reconciler was doing resumes at once (after a restart, or by
another one running beside it) rather than when its leases lapse; it never frees a running
holder's, so two reconcilers on one database never both handle a job. A submit call marked
as under way names the process making it the same way (`send_owner`).

Each holder keeps an exclusive `flock` on a file of its own in a directory beside the database.
The kernel drops a flock when its process ends, however it ends (kill -9 included), so a file
whose lock can be taken belongs to a holder that is gone. SQLite's WAL mode needs every process
that shares the file on one machine, so every one of them sees these locks.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import socket
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from enrichwatch.errors import StoreError

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_DRAFT = ".new-"
DRAFT_AGE_S = 60.0
"""A draft older than this is a killed holder's: `acquire` names its draft within moments."""


RECEIVER = "receiver"
"""The role of a receiver's holder (`receiver:<owner id>`), noting the URL it listens at."""


def owner_id() -> str:
    """Who holds a lease: readable in the database, and unique per process start (a restarted
    container's process has the same host name and pid as the one it replaces)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def holders_directory(db_path: Path) -> Path:
    return db_path.with_name(f"{db_path.name}-holders")


class LeaseHolder:
    """The lock that tells other processes `owner` is running, until `release`."""

    def __init__(self, path: Path, fd: int) -> None:
        self._path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, db_path: Path, owner: str, note: str = "") -> LeaseHolder:
        """`note` is what `running_notes` tells other processes about this one."""
        directory = holders_directory(db_path)
        try:
            directory.mkdir(exist_ok=True)
            # Locked before it takes its name, so no other process ever finds it unlocked.
            fd, draft = tempfile.mkstemp(dir=directory, prefix=_DRAFT)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, note.encode())
            path = _lock_path(db_path, owner)
            os.replace(draft, path)
        except OSError as exc:
            raise StoreError(f"cannot mark this process as running in {directory}: {exc}") from exc
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()
        os.close(self._fd)
        self._fd = None


def gone_holders(db_path: Path, owners: Iterable[str]) -> set[str]:
    """Of `owners`, those not running. A holder with no file is gone too: it ended cleanly
    after leaving a lease behind, or ran before holders kept files."""
    return {owner for owner in owners if _gone(_lock_path(db_path, owner))}


def running_notes(db_path: Path, role: str) -> list[str]:
    """The notes of the running holders whose owner is `role:…` (and who left one: a
    reconciler on a host named like the role leaves none)."""
    directory = holders_directory(db_path)
    if not directory.is_dir():
        return []
    notes = []
    for path in sorted(directory.glob(f"{_UNSAFE.sub('_', role)}_*.lock")):
        if not _gone(path):
            with contextlib.suppress(FileNotFoundError):  # it ended just now
                notes.append(path.read_text())
    return [note for note in notes if note]


def clear_gone_holders(db_path: Path) -> int:
    """Remove the files of holders that are gone, whether or not a lease names them (a holder
    killed while it held none, or killed before naming its draft, leaves a file nothing asks
    about again); how many. Never a running holder's file: it holds its lock."""
    directory = holders_directory(db_path)
    if not directory.is_dir():
        return 0
    cleared = 0
    for path in directory.iterdir():
        if path.name.startswith(_DRAFT):
            with contextlib.suppress(FileNotFoundError):
                # Unlocked for a moment after it is made: only an old one is surely a draft
                # whose maker is gone.
                if time.time() - path.stat().st_mtime > DRAFT_AGE_S:
                    path.unlink()
                    cleared += 1
        elif path.suffix == ".lock" and _gone(path):
            cleared += 1
    return cleared


def _gone(path: Path) -> bool:
    """Whether the holder of this file is gone: no file, or its lock can be taken (and then
    the file is removed)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # its process holds the lock: running
    else:
        with contextlib.suppress(FileNotFoundError):  # another starter got there first
            path.unlink()
        return True
    finally:
        os.close(fd)


def _lock_path(db_path: Path, owner: str) -> Path:
    return holders_directory(db_path) / f"{_UNSAFE.sub('_', owner)}.lock"
