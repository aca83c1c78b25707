"""The event log file: migrations, and the single writer's transactional guarantees."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time

import pytest

from enrichwatch.errors import MigrationError, StoreError
from enrichwatch.models import VendorName
from enrichwatch.store import InboundDelivery, Store, work
from enrichwatch.store.connection import connect, latest_version, migrations
from enrichwatch.store.rows import sha256_int64, token_digest
from enrichwatch.store.store import DueWork
from enrichwatch.vendors.base import ResultRecord
from tests.conftest import run_cli


def tables(path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


def database_at(path, version: int) -> sqlite3.Connection:
    """A file as an earlier enrichwatch left it: migrated up to `version`, no further."""
    conn = connect(path)
    conn.create_function("sha256_int64", 1, sha256_int64, deterministic=True)
    for number, sql in migrations()[:version]:
        conn.executescript(sql)
        conn.execute(f"PRAGMA user_version = {number}")
    return conn


async def test_migrations_build_the_schema_from_an_empty_file(tmp_path):
    path = tmp_path / "new.db"
    async with Store.open(path) as store:
        assert await store.schema_version() == latest_version()
        assert await store.is_migrated()
    assert {"jobs", "events", "inbox", "work", "results", "meta"} <= tables(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


@pytest.mark.parametrize(
    "args", [["jobs"], ["show", "1"], ["track", "ecore", "e-1"], ["stats"]], ids=" ".join
)
async def test_a_command_refuses_a_database_an_older_version_wrote_and_leaves_it_be(tmp_path, args):
    """During an upgrade the old version's service may still serve the file: a command of
    the new one must not change its schema under it. The services upgrade it."""
    path = tmp_path / "old.db"
    database_at(path, latest_version() - 1).close()
    env = {**os.environ, "ENRICHWATCH_DB": str(path)}

    refused = await run_cli(env, *args)

    assert refused.code == 1
    assert refused.error_lines == [
        f"Error: database schema version {latest_version() - 1} is older than this "
        f"enrichwatch's ({latest_version()}): restart the service with this version to "
        "upgrade it, then run this command again"
    ]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == latest_version() - 1
    finally:
        conn.close()
    async with Store.open(path) as store:  # as the services open it
        assert await store.schema_version() == latest_version()


async def test_a_database_in_a_directory_that_does_not_exist_is_refused(tmp_path):
    """A mistyped path: the service would otherwise make the directories, a new empty
    database and a new API token, and serve that."""
    db = tmp_path / "no" / "such" / "x.db"
    env = {**os.environ, "ENRICHWATCH_DB": str(db)}

    refused = await run_cli(env, "serve", "--port", "0")

    assert refused.code == 1
    assert refused.error_lines == [
        f"Error: cannot create the database {db}: {db.parent} does not exist"
    ]
    assert list(tmp_path.iterdir()) == []


async def test_rerunning_migrations_is_a_noop(tmp_path):
    path = tmp_path / "again.db"
    store = Store(path)
    assert await store.start() == list(range(1, latest_version() + 1))
    await store.track_job(VendorName.ECORE, "kept", None)
    await store.close()

    store = Store(path)
    assert await store.start() == []
    assert [job.vendor_job_id for job in await store.list_jobs()] == ["kept"]
    await store.close()


async def test_inbox_rows_from_before_the_compact_dedupe_index_still_catch_redeliveries(tmp_path):
    path = tmp_path / "v3.db"
    conn = database_at(path, 3)
    conn.execute(
        """INSERT INTO jobs (vendor, vendor_job_id, callback_token, callback_key, created_at,
                             updated_at) VALUES ('ecore', 'old', 'tok', ?, 0, 0)""",
        (token_digest("tok"),),
    )
    conn.execute(
        """INSERT INTO inbox (vendor, job_id, received_at, method, headers, content_type, body,
                              verification, dedupe_key)
           VALUES ('ecore', 1, 0, 'POST', '{}', NULL, X'7B7D', 'unsigned', 'sha256:old')"""
    )
    conn.close()

    async with Store.open(path) as store:
        stored = await store._writer.run(
            lambda conn: conn.execute("SELECT dedupe_hash FROM inbox").fetchone()[0]
        )
        assert stored == sha256_int64("sha256:old")
        again = InboundDelivery("POST", {}, None, b"{}", "unsigned", "sha256:old")
        other = InboundDelivery("POST", {}, None, b"[]", "unsigned", "sha256:new")
        first = await store.record_callback(
            VendorName.ECORE, "tok", again, vendor_sends_callbacks=False
        )
        second = await store.record_callback(
            VendorName.ECORE, "tok", other, vendor_sends_callbacks=False
        )
    assert first is not None
    assert first.duplicate
    assert second is not None
    assert not second.duplicate


async def test_times_put_off_to_infinity_by_an_earlier_version_are_due_again(tmp_path):
    path = tmp_path / "v6.db"
    conn = database_at(path, 6)
    conn.execute(
        """INSERT INTO jobs (vendor, vendor_job_id, callback_token, callback_key, created_at,
                             updated_at, next_check_at, retry_after)
           VALUES ('ecore', 'parked', 'tok', 'key', 0, 0, 9e999, 9e999)"""
    )
    conn.execute(
        """INSERT INTO work (kind, job_id, payload, next_attempt_at, state, attempts,
                             unique_key, created_at, updated_at)
           VALUES ('notify', 1, '{}', 9e999, 'pending', 1, 'parked', 0, 0)"""
    )
    conn.close()

    before = time.time()
    async with Store.open(path) as store:
        job = (await store.list_jobs())[0]
        due = await store._writer.run(
            lambda conn: conn.execute("SELECT next_attempt_at FROM work").fetchone()[0]
        )
    assert job.next_check_at is not None
    assert before - 1 <= job.next_check_at <= time.time() + 1
    assert job.retry_after is None
    assert before - 1 <= due <= time.time() + 1


async def test_jobs_failing_their_checks_before_the_upgrade_fail_since_their_last_check(
    tmp_path,
):
    path = tmp_path / "v12.db"
    conn = database_at(path, 12)
    conn.executemany(
        """INSERT INTO jobs (vendor, vendor_job_id, callback_token, callback_key, created_at,
                             updated_at, check_failures, last_checked_at)
           VALUES ('ecore', ?, ?, ?, 10, 50, ?, 50)""",
        [("failing", "t1", "k1", 3), ("healthy", "t2", "k2", 0)],
    )
    conn.close()

    async with Store.open(path) as store:
        jobs = {job.vendor_job_id: job for job in await store.list_jobs()}
    assert jobs["failing"].failing_since == 50
    assert jobs["healthy"].failing_since is None


async def test_jobs_paused_before_the_upgrade_paused_when_last_found_so(tmp_path):
    path = tmp_path / "v13.db"
    conn = database_at(path, 13)
    conn.executemany(
        """INSERT INTO jobs (vendor, vendor_job_id, callback_token, callback_key, created_at,
                             updated_at, state)
           VALUES ('ecore', ?, ?, ?, 10, 90, ?)""",
        [
            ("paused", "t1", "k1", "needs_action"),
            ("unlogged", "t2", "k2", "needs_action"),
            ("running", "t3", "k3", "running"),
        ],
    )
    conn.executemany(
        """INSERT INTO events (job_id, type, source, payload, created_at)
           VALUES (1, 'job.state_changed', 'poll', ?, ?)""",
        [('{"to": "needs_action"}', 20), ('{"to": "running"}', 30), ('{"to": "needs_action"}', 40)],
    )
    conn.close()

    async with Store.open(path) as store:
        jobs = {job.vendor_job_id: job for job in await store.list_jobs()}
    assert jobs["paused"].paused_at == 40
    assert jobs["unlogged"].paused_at == 90
    assert jobs["running"].paused_at is None
    assert {job.paused_seconds for job in jobs.values()} == {0}


async def test_a_schema_newer_than_the_code_refuses_to_start(tmp_path):
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {latest_version() + 1}")
    conn.close()
    with pytest.raises(MigrationError, match="newer"):
        await Store(path).start()


async def test_foreign_keys_are_enforced(tmp_path):
    async with Store.open(tmp_path / "fk.db") as store:
        with pytest.raises(StoreError, match="FOREIGN KEY"):
            await store._writer.run(
                lambda conn: conn.execute(
                    "INSERT INTO events (job_id, type, source, created_at) "
                    "VALUES (999, 'x', 'system', 0)"
                )
            )


async def test_a_failing_write_rolls_back_alone_in_a_group_commit(tmp_path):
    async with Store.open(tmp_path / "group.db") as store:

        def fails(conn):
            conn.execute("INSERT INTO meta (key, value) VALUES ('half-written', 'should vanish')")
            raise ValueError("boom")

        results = await asyncio.gather(
            store.track_job(VendorName.ECORE, "a", None),
            store._writer.run(fails),
            store.track_job(VendorName.ECORE, "b", None),
            return_exceptions=True,
        )
        assert isinstance(results[1], ValueError)
        assert sorted(job.vendor_job_id for job in await store.list_jobs()) == ["a", "b"]
        rows = await store._fetchall("SELECT key FROM meta WHERE key = 'half-written'", ())
        assert rows == []


async def test_a_group_run_again_waits_for_a_lock_another_process_took_in_between(tmp_path):
    """After a failing op, the group runs again in a new transaction; if another process took
    the write lock in between, the group waits for it instead of failing every op."""
    path = tmp_path / "retry.db"
    async with Store.open(path) as store:
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        begins = 0

        def on_statement(sql: str) -> None:
            nonlocal begins
            if sql.strip() == "BEGIN IMMEDIATE":
                begins += 1
                if begins == 2:  # the group's second run: another process wins the lock
                    other.execute("BEGIN IMMEDIATE")
                elif begins == 3:  # the run that waits for it: the other process is done
                    other.execute("ROLLBACK")

        def fails(conn):
            raise ValueError("boom")

        store._writer._conn.set_trace_callback(on_statement)
        try:
            results = await asyncio.gather(
                store.track_job(VendorName.ECORE, "innocent", None),
                store._writer.run(fails),
                return_exceptions=True,
            )
        finally:
            store._writer._conn.set_trace_callback(None)
            other.close()
        assert isinstance(results[1], ValueError)
        assert [job.vendor_job_id for job in await store.list_jobs()] == ["innocent"]
        assert begins >= 3


async def test_event_dedupe_key_makes_appends_idempotent(tmp_path):
    from enrichwatch.models import EventSource
    from enrichwatch.store import append_event

    async with Store.open(tmp_path / "dedupe.db") as store:
        job, _ = await store.track_job(VendorName.ECORE, "a", None)

        def append(conn):
            return append_event(
                conn, job.id, "job.state_changed", EventSource.POLL, {}, now=1.0, dedupe_key="k"
            )

        first = await store._writer.run(append)
        second = await store._writer.run(append)
        assert first is not None
        assert second is None
        assert [e.type for e in await store.list_events(job.id)] == [
            "job.tracked",
            "job.state_changed",
        ]


async def test_two_stores_on_one_file_migrate_once_and_both_write(tmp_path):
    path = tmp_path / "shared.db"
    a, b = Store(path), Store(path)
    try:
        applied = await asyncio.gather(a.start(), b.start())
        # Each migration exactly once, by whichever store got to it first.
        assert sorted(applied[0] + applied[1]) == list(range(1, latest_version() + 1))
        await asyncio.gather(
            *(
                s.track_job(VendorName.REPROMPT, f"{n}-{i}", None)
                for i, s in enumerate((a, b))
                for n in range(20)
            )
        )
        assert len(await a.list_jobs(limit=100)) == 40
    finally:
        await a.close()
        await b.close()


async def test_a_write_waits_out_another_process_lock_without_stalling_the_loop(tmp_path):
    path = tmp_path / "locked.db"
    async with Store.open(path) as store:
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        write = asyncio.create_task(store.track_job(VendorName.ECORE, "waits", None))
        for _ in range(10):  # the writer tries, finds the lock taken, and hands off
            await asyncio.sleep(0)
        assert not write.done()
        other.execute("COMMIT")
        other.close()
        job, created = await write
        assert created
        assert job.vendor_job_id == "waits"


async def test_a_wake_up_while_a_job_is_leased_outlives_its_holders_plan(tmp_path):
    """A leased job is due again when its lease ends; a callback meanwhile moves that time,
    and the holder's plan, made without knowing of it, leaves the job due."""
    now = [1000.0]
    async with Store.open(tmp_path / "lease.db", clock=lambda: now[0]) as store:
        woken, _ = await store.track_job(VendorName.ECORE, "woken", None)
        quiet, _ = await store.track_job(VendorName.ECORE, "quiet", None)
        claimed = await store.claim_due_jobs(owner="rc", lease_s=60, limit=10)
        assert [job.next_check_at for job in claimed] == [1060.0, 1060.0]

        now[0] = 1030.0
        assert await store.make_stale_jobs_due({VendorName.ECORE: 10.0}) == 0  # under a check
        delivery = InboundDelivery("POST", {}, None, b"{}", "unsigned", "body:1")
        assert await store.record_callback(
            VendorName.ECORE, woken.callback_token, delivery, vendor_sends_callbacks=False
        )
        for job in claimed:
            await store.plan_first_check(job, 5000.0)

        assert (await store.get_job(woken.id)).next_check_at == 1030.0
        assert (await store.get_job(quiet.id)).next_check_at == 5000.0
        again = await store.claim_due_jobs(owner="rc", lease_s=60, limit=10)
        assert [job.id for job in again] == [woken.id]


async def test_due_work_names_what_a_pass_could_take_now_and_nothing_leased(tmp_path):
    """What the reconciler's once-a-second look finds: a due job's vendor, not a job another
    reconciler has leased; a due work item's kind."""
    async with Store.open(tmp_path / "due.db") as store:
        assert await store.due_work() == DueWork(frozenset(), frozenset())
        crust, _ = await store.track_job(VendorName.CRUSTDATA, "c-1", None)
        ecore, _ = await store.track_job(VendorName.ECORE, "e-1", None)
        due = await store.due_work()
        assert due.vendors == {VendorName.CRUSTDATA, VendorName.ECORE}

        assert await store.claim_job(ecore.id, owner="other", lease_s=60) is not None
        assert (await store.due_work()).vendors == {VendorName.CRUSTDATA}

        await store._writer.run(
            lambda conn: work.enqueue(
                conn, kind="fetch", job_id=crust.id, payload={}, unique_key="f", due_at=0, now=0
            )
        )
        assert (await store.due_work()).kinds == {"fetch"}


async def test_a_brightlocal_fetch_left_unfinished_at_ranks_starts_over_at_job_ids(tmp_path):
    """Before version 10, BrightLocal results were kept at their rank; a fetch cut off then
    would resume among job-id positions and store records twice. It starts over; finished
    sets, and other vendors' fetches, stay as they are."""
    path = tmp_path / "v9.db"
    conn = database_at(path, 9)
    for job_id, vendor, results_state in (
        (1, "brightlocal", "fetching"),
        (2, "brightlocal", "stored"),
        (3, "ecore", "fetching"),
    ):
        conn.execute(
            """INSERT INTO jobs (id, vendor, vendor_job_id, callback_token, callback_key,
                                 created_at, updated_at, results_state, results_count)
               VALUES (?, ?, ?, ?, ?, 0, 0, ?, 2)""",
            (job_id, vendor, f"v{job_id}", f"tok{job_id}", f"key{job_id}", results_state),
        )
        for position in (0, 1):
            conn.execute(
                "INSERT INTO results (job_id, position, data) VALUES (?, ?, '{}')",
                (job_id, position),
            )
    conn.close()

    async with Store.open(path) as store:
        counts = {job.id: job.results_count for job in await store.list_jobs()}
        kept = {
            job_id: len(await store.results(job_id, after=-1, limit=10)) for job_id in (1, 2, 3)
        }
    assert counts == {1: 0, 2: 2, 3: 2}
    assert kept == {1: 0, 2: 2, 3: 2}


async def test_a_fetch_that_keeps_storing_pages_keeps_its_lease(tmp_path):
    """A long download outlasts the fetch's first lease; every page it stores renews it, so
    another reconciler never takes up a fetch that is still coming in (and downloads it
    again)."""
    now = [1000.0]
    async with Store.open(tmp_path / "lease.db", clock=lambda: now[0]) as store:
        job, _ = await store.track_job(VendorName.REPROMPT, "r-1", None)
        await store._writer.run(
            lambda conn: work.enqueue(
                conn, kind="fetch", job_id=job.id, payload={}, unique_key="f", due_at=0, now=0
            )
        )
        [item] = await store.claim_work("fetch", owner="first", lease_s=900, limit=1)
        assert await store.start_fetch(job.id, item_id=item.id) == 0
        for position in range(3):
            now[0] += 600
            page = [ResultRecord.of(position, None, "ok", {"n": position})]
            assert await store.store_results(job.id, page, item_id=item.id, lease_s=900) == 1
        # 1,800 s after the claim, 600 s after the last page.
        assert await store.claim_work("fetch", owner="second", lease_s=900, limit=1) == []

        now[0] += 901  # the pages stopped coming: the lease lapses, and the fetch is free
        [again] = await store.claim_work("fetch", owner="second", lease_s=900, limit=1)
        assert again.id == item.id
