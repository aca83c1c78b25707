"""WAL checkpoints on a thread of their own, so no commit copies the log into the database on
the event loop.

SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold, on whichever
thread committed; for the writer that is the event loop, and copying a few megabytes of pages
held it for up to a quarter of a second during a large results fetch. The writer turns the
automatic checkpoint off and, after each commit, tells the checkpointer how large the log has
grown. Past `wal_bytes`, a thread with its own connection checkpoints in two steps: PASSIVE
copies the bulk while writes carry on, then TRUNCATE copies what arrived meanwhile and empties
the file. PASSIVE alone is not enough: under constant writes the log is never found fully
copied when a write begins, so it never starts over and grows without bound.

TRUNCATE needs the write lock, and SQLite's busy handler alone would rarely win it from a
writer that commits back to back. So the two take turns in this process: the writer takes its
turn without waiting (`try_writer_turn`) on the loop, and while a TRUNCATE is waiting or under
way its groups go to its worker thread and wait there (`writer_turn`), never on the loop.
TRUNCATE then waits at most `lock_wait_ms` for readers of the old log (or another process's
writer) before giving up until the next try.

Writes can outrun the copying (a checkpoint's fsync can take a while on a busy disk). Once the
log is `BEHIND_FACTOR` times its limit, each write group first waits, on the worker thread, for
the checkpoint attempt under way to end, so the log stays within that bound plus one group
whatever the disk's speed; a reader pinning the old log slows writes to one group per attempt
rather than letting the file grow.

A checkpoint only copies committed pages from the log into the database file; a kill at any
point of it leaves both files recoverable, and the next open finishes the job.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from enrichwatch.store.connection import connect

WAL_CHECKPOINT_BYTES = 4 * 1024 * 1024
"""Checkpoint once the log is this large: SQLite's own default (1000 pages of 4 KiB)."""
LOCK_WAIT_MS = 200
"""How long TRUNCATE waits for the write lock and for readers of the old log before giving up
for now; writes queue behind it for at most about this long."""
RETRY_S = 0.05
"""After a checkpoint that could not empty the log, the pause before trying again."""
BEHIND_FACTOR = 4
"""Past this many times `wal_bytes`, writes wait for a checkpoint attempt before going on."""
BEHIND_WAIT_S = 5.0
"""The longest a write waits for a checkpoint attempt (should the thread be gone)."""


@dataclass(frozen=True)
class CheckpointRun:
    """One checkpoint, as the checkpointer saw it (times from `time.perf_counter`)."""

    started: float
    ended: float
    wal_bytes_before: int
    wal_bytes_after: int
    caught_up: bool
    """TRUNCATE finished: every page is in the database file and the log file is empty."""
    thread_id: int


class Checkpointer:
    """Watches the log's size and checkpoints it from a worker thread."""

    def __init__(
        self,
        path: Path,
        *,
        wal_bytes: int = WAL_CHECKPOINT_BYTES,
        lock_wait_ms: int = LOCK_WAIT_MS,
        history: int = 256,
    ) -> None:
        self._path = path
        self._wal = path.with_name(path.name + "-wal")
        self.wal_bytes = wal_bytes
        self._lock_wait_ms = lock_wait_ms
        self._wanted = threading.Event()
        self._turn = threading.Lock()
        self._no_truncate = threading.Event()
        self._no_truncate.set()
        self._attempted = threading.Condition()
        self._attempts = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs: deque[CheckpointRun] = deque(maxlen=history)
        """The latest checkpoints, oldest first."""
        self.on_run: Callable[[CheckpointRun], None] | None = None
        """Called on the checkpoint thread after each checkpoint."""

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="enrichwatch-checkpoint", daemon=True
        )
        self._thread.start()

    def after_commit(self) -> None:
        """Called by the writer after each commit: one `stat`, and a wake-up past the limit."""
        if self._wal_size() >= self.wal_bytes:
            self._wanted.set()

    def try_writer_turn(self) -> bool:
        """The writer's turn at once, unless a TRUNCATE waits for it or runs; True if taken
        (end it with `end_writer_turn`)."""
        return (
            self._no_truncate.is_set() and not self._behind() and self._turn.acquire(blocking=False)
        )

    def writer_turn(self) -> None:
        """The writer's turn, after any TRUNCATE waiting or under way, and after a checkpoint
        attempt if the log is too far behind (blocks: a worker thread's call)."""
        if self._behind():
            with self._attempted:
                seen = self._attempts
                self._wanted.set()
                self._attempted.wait_for(
                    lambda: self._attempts > seen or self._stopping.is_set(), BEHIND_WAIT_S
                )
        self._no_truncate.wait()
        self._turn.acquire()

    def end_writer_turn(self) -> None:
        self._turn.release()

    def stop(self) -> None:
        """Finish the checkpoint under way, if any, and end the thread."""
        self._stopping.set()
        self._wanted.set()
        with self._attempted:
            self._attempted.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _behind(self) -> bool:
        return self._wal_size() >= self.wal_bytes * BEHIND_FACTOR

    def _wal_size(self) -> int:
        try:
            return os.stat(self._wal).st_size
        except FileNotFoundError:
            return 0

    def _run(self) -> None:
        conn = connect(self._path, checkpoint_at=self.wal_bytes)
        try:
            conn.execute(f"PRAGMA busy_timeout = {self._lock_wait_ms}")
            while True:
                self._wanted.wait()
                if self._stopping.is_set():
                    return
                self._wanted.clear()
                # Asked again while the last one ran, the log may be short already.
                run = self._checkpoint(conn) if self._wal_size() >= self.wal_bytes else None
                with self._attempted:
                    self._attempts += 1
                    self._attempted.notify_all()
                if run is None:
                    continue
                self.runs.append(run)
                if self.on_run is not None:
                    self.on_run(run)
                if not run.caught_up:
                    self._stopping.wait(RETRY_S)
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> CheckpointRun:
        started, before = time.perf_counter(), self._wal_size()
        caught_up = False
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self._no_truncate.clear()
            try:
                with self._turn:
                    busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            finally:
                self._no_truncate.set()
            caught_up = busy == 0
        except sqlite3.OperationalError:
            # Busy or locked past the wait: the log is only copied later, nothing is lost.
            pass
        return CheckpointRun(
            started=started,
            ended=time.perf_counter(),
            wal_bytes_before=before,
            wal_bytes_after=self._wal_size(),
            caught_up=caught_up,
            thread_id=threading.get_ident(),
        )
