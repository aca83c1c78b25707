"""The single writer: every write to the event log goes through here.

Writes that arrive together are grouped into one `BEGIN IMMEDIATE … COMMIT` (group commit). A
caller's future resolves only after the COMMIT returns, which is what lets the receiver
acknowledge only what is durable.

A group runs on the event loop thread itself: it is a few hundred microseconds of SQLite work,
and handing it to a thread costs more than that (every statement releases and re-takes the GIL,
and each hand-off can wait a whole switch interval behind the loop). Only when another process
holds the write lock, or a checkpoint has its turn, does the group move to a worker thread,
which waits there instead of stalling the loop. No commit checkpoints the WAL: a
`Checkpointer` thread does, on its own connection.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from enrichwatch.errors import StoreUnavailableError
from enrichwatch.store.checkpointer import WAL_CHECKPOINT_BYTES, Checkpointer
from enrichwatch.store.connection import BUSY_TIMEOUT_MS, as_store_error, connect, migrate

T = TypeVar("T")
WriteOp = Callable[[sqlite3.Connection], T]

MAX_GROUP = 256


class Writer:
    def __init__(
        self,
        path: Path,
        *,
        checkpoint_wal_bytes: int = WAL_CHECKPOINT_BYTES,
        upgrade: bool = True,
    ) -> None:
        self._path = path
        self._upgrade = upgrade
        self.checkpoints = Checkpointer(path, wal_bytes=checkpoint_wal_bytes)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="enrichwatch-writer")
        self._queue: asyncio.Queue[tuple[WriteOp[Any], asyncio.Future[Any]]] = asyncio.Queue()
        self._conn: sqlite3.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> list[int]:
        """Open the connection, apply migrations, and start taking writes."""
        loop = asyncio.get_running_loop()
        self._conn = await loop.run_in_executor(
            self._executor,
            functools.partial(connect, self._path, checkpoint_at=self.checkpoints.wal_bytes),
        )
        applied = await loop.run_in_executor(
            self._executor, functools.partial(migrate, self._conn, upgrade=self._upgrade)
        )
        self.checkpoints.start()
        self._task = asyncio.create_task(self._run(), name="store-writer")
        return applied

    async def run(self, op: WriteOp[T]) -> T:
        """Run `op` inside a committed transaction and return its result.

        `op` may run more than once (see `_apply`), so it must only touch the database.
        """
        if self._task is None or self._task.done():
            raise StoreUnavailableError("the event log is closed: the service is stopping")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((op, future))
        return await future

    async def close(self) -> None:
        """Finish every write already queued, then close the file."""
        if self._task is not None:
            await self._queue.join()
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await asyncio.get_running_loop().run_in_executor(self._executor, self.checkpoints.stop)
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            group = [await self._queue.get()]
            # Let every request that is already readable reach the queue before committing.
            await asyncio.sleep(0)
            while len(group) < MAX_GROUP and not self._queue.empty():
                group.append(self._queue.get_nowait())
            ops = [op for op, _ in group]
            try:
                outcomes = await self._commit(loop, ops)
            except Exception as exc:  # the whole group failed to commit
                outcomes = [_as_store_error(exc)] * len(group)
            self.checkpoints.after_commit()
            for (_, future), outcome in zip(group, outcomes, strict=True):
                if not future.done():
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
                self._queue.task_done()

    async def _commit(self, loop: asyncio.AbstractEventLoop, ops: list[WriteOp[Any]]) -> list[Any]:
        """On the loop when the lock is free at once; else on the worker thread, which waits
        for a checkpoint's turn or another process's transaction to end."""
        if self.checkpoints.try_writer_turn():
            try:
                return self._apply(ops, wait_ms=0)
            except _Busy:
                pass
            finally:
                self.checkpoints.end_writer_turn()
        return await loop.run_in_executor(self._executor, self._apply_waiting, ops)

    def _apply_waiting(self, ops: list[WriteOp[Any]]) -> list[Any]:
        self.checkpoints.writer_turn()
        try:
            return self._apply(ops, BUSY_TIMEOUT_MS)
        finally:
            self.checkpoints.end_writer_turn()

    def _apply(self, ops: list[WriteOp[Any]], wait_ms: int) -> list[Any]:
        """Commit the group in one transaction; if an op fails, run the group again with a
        savepoint around each op, so only the failing ones are undone (failures are rare,
        savepoints on every op are not free)."""
        conn = self._conn
        assert conn is not None
        conn.execute(f"PRAGMA busy_timeout = {wait_ms}")
        _begin(conn, wait_ms)
        try:
            return self._transaction(conn, ops, isolate=False)
        except _OpFailed:
            # The lock was let go in between: another process may hold it now.
            _begin(conn, wait_ms)
            return self._transaction(conn, ops, isolate=True)

    @staticmethod
    def _transaction(
        conn: sqlite3.Connection, ops: list[WriteOp[Any]], *, isolate: bool
    ) -> list[Any]:
        outcomes: list[Any] = []
        try:
            for op in ops:
                if not isolate:
                    try:
                        outcomes.append(op(conn))
                    except Exception as exc:
                        raise _OpFailed from exc
                    continue
                conn.execute("SAVEPOINT op")
                try:
                    outcomes.append(op(conn))
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    outcomes.append(_as_store_error(exc))
                conn.execute("RELEASE op")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return outcomes


def _begin(conn: sqlite3.Connection, wait_ms: int) -> None:
    """Take the write lock; without waiting (`wait_ms` 0), another holder is `_Busy`."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if wait_ms == 0 and exc.sqlite_errorcode == sqlite3.SQLITE_BUSY:
            raise _Busy from exc
        raise


class _Busy(Exception):
    """Another connection holds the write lock."""


class _OpFailed(Exception):
    """An op raised during an un-isolated group; the group is rolled back and run again."""


def _as_store_error(exc: BaseException) -> BaseException:
    return as_store_error(exc, "write to") if isinstance(exc, sqlite3.Error) else exc
