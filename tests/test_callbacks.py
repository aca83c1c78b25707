"""The callback endpoint, over a real socket: stored before acknowledged, duplicates flagged,
bad input refused without a trace in the database."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import time

import aiohttp
import pytest

from enrichwatch.callbacks import sign_crustdata
from enrichwatch.config import load_settings
from enrichwatch.models import JobState, VendorName
from enrichwatch.runtime import open_services
from enrichwatch.sim import SimConfig, SimServer
from receiver import serving
from reconciler import Reconciler, reconcile_once
from tests.conftest import API_TOKEN, snapshot, track
from tests.test_results_and_actions import World, _cli_env, step_until


async def post(http, url, body: bytes, headers=None):
    async with http.post(url, data=io.BytesIO(body), headers=headers or {}) as response:
        return response.status, await response.json()


async def test_callback_is_stored_and_makes_the_job_due(services, server, http):
    job = await track(http, server)
    body = json.dumps({"batch_id": "b-1", "status": "completed"}).encode()

    status, answer = await post(
        http, job["callback_url"], body, {"Content-Type": "application/json"}
    )

    assert status == 200
    assert answer["accepted"] is True
    assert answer["duplicate"] is False
    inbox = await services.store.list_inbox(job["id"])
    assert [(row.body, row.duplicate_of, row.verification) for row in inbox] == [
        (body, None, "unsigned")
    ]
    assert inbox[0].headers["content-type"] == "application/json"
    events = await services.store.list_events(job["id"])
    assert [event.type for event in events] == ["job.tracked", "webhook.received"]
    assert events[1].payload["inbox_id"] == answer["inbox_id"]
    stored = await services.store.get_job(job["id"])
    assert stored.callbacks_received == 1
    assert stored.next_check_at == pytest.approx(time.time(), abs=5)
    # A callback is a hint: the job's state is untouched by what the body claims.
    assert stored.state.value == "submitted"


async def test_duplicate_is_stored_flagged_and_does_not_wake_the_job_again(services, server, http):
    job = await track(http, server)
    body = b'{"status": "completed"}'
    _, first = await post(http, job["callback_url"], body)
    before = await services.store.get_job(job["id"])

    status, second = await post(http, job["callback_url"], body)

    assert status == 200
    assert second["duplicate"] is True
    inbox = await services.store.list_inbox(job["id"])
    assert [row.duplicate_of for row in inbox] == [None, first["inbox_id"]]
    after = await services.store.get_job(job["id"])
    assert after.callbacks_received == before.callbacks_received == 1
    assert after.next_check_at == before.next_check_at
    types = [event.type for event in await services.store.list_events(job["id"])]
    assert types == ["job.tracked", "webhook.received", "webhook.duplicate"]


async def test_callback_url_with_a_trailing_slash_reaches_the_same_job(services, server, http):
    job = await track(http, server)
    body = b'{"status": "completed"}'

    status, answer = await post(http, job["callback_url"] + "/", body)
    _, again = await post(http, job["callback_url"], body)

    assert status == 200
    assert answer["duplicate"] is False
    assert again["duplicate"] is True
    assert [row.id for row in await services.store.list_inbox(job["id"])] == [
        answer["inbox_id"],
        again["inbox_id"],
    ]


async def test_vendor_event_id_dedupes_redeliveries_with_different_bodies(services, server, http):
    job = await track(http, server)
    url = job["callback_url"]
    await post(http, url, b'{"attempt": 1}', {"x-crustdata-event-id": "evt-1"})
    _, redelivery = await post(http, url, b'{"attempt": 2}', {"x-crustdata-event-id": "evt-1"})
    _, other = await post(http, url, b'{"attempt": 2}', {"x-crustdata-event-id": "evt-2"})
    assert redelivery["duplicate"] is True
    assert other["duplicate"] is False


async def test_form_encoded_and_arbitrary_bodies_are_kept_byte_for_byte(services, server, http):
    job = await track(http, server, vendor="brightlocal", vendor_job_id="17")
    form = b"batch-id=17&status=Finished&results%5Bx%5D=1"
    await post(
        http, job["callback_url"], form, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    await post(http, job["callback_url"], b"\x00\xffnot json at all")
    inbox = await services.store.list_inbox(job["id"])
    assert [row.body for row in inbox] == [form, b"\x00\xffnot json at all"]


async def test_credentials_in_callback_headers_are_not_stored(services, server, http):
    job = await track(http, server)
    await post(http, job["callback_url"], b"{}", {"Authorization": "Bearer leaked", "X-Trace": "1"})
    (row,) = await services.store.list_inbox(job["id"])
    assert "authorization" not in row.headers
    assert row.headers["x-trace"] == "1"


async def test_callback_for_a_finished_job_is_stored_but_does_not_make_it_due(
    services, server, http
):
    job = await track(http, server)
    await services.store._writer.run(
        lambda conn: conn.execute(
            "UPDATE jobs SET state = 'completed', next_check_at = NULL WHERE id = ?", (job["id"],)
        )
    )
    status, answer = await post(http, job["callback_url"], b'{"late": true}')
    assert status == 200
    assert answer["duplicate"] is False
    assert (await services.store.get_job(job["id"])).next_check_at is None


@pytest.mark.parametrize(
    ("path", "reason"),
    [("/hooks/nosuchvendor/{token}", "unknown vendor"), ("/hooks/crustdata/wrong-token", "token")],
)
async def test_unknown_vendor_or_token_is_404_and_stores_nothing(
    settings, server, http, path, reason
):
    job = await track(http, server)
    token = job["callback_url"].rsplit("/", 1)[1]
    before = snapshot(settings.db)

    status, answer = await post(http, server + path.format(token=token), b'{"x": 1}')

    assert status == 404, reason
    assert answer["error"]["code"] == "not_found"
    assert snapshot(settings.db) == before


async def test_token_of_another_vendors_job_is_404(settings, server, http):
    job = await track(http, server, vendor="crustdata")
    token = job["callback_url"].rsplit("/", 1)[1]
    before = snapshot(settings.db)
    status, _ = await post(http, f"{server}/hooks/brightlocal/{token}", b"{}")
    assert status == 404
    assert snapshot(settings.db) == before


async def test_oversized_body_is_413_and_stores_nothing(settings, services, server, http):
    job = await track(http, server)
    before = snapshot(settings.db)
    too_big = b"x" * (settings.max_body_bytes + 1)

    status, answer = await post(http, job["callback_url"], too_big)

    assert status == 413
    assert answer["error"]["code"] == "payload_too_large"
    assert snapshot(settings.db) == before
    rejected = services.metrics.callback_rejections.labels("crustdata", "too_large")
    assert rejected._value.get() == 1


async def test_oversized_chunked_body_without_length_is_413(settings, server, http):
    job = await track(http, server)
    before = snapshot(settings.db)

    async def chunks():
        for _ in range(settings.max_body_bytes // 65536 + 2):
            yield b"y" * 65536

    async with http.post(job["callback_url"], data=chunks()) as response:
        assert response.status == 413
    assert snapshot(settings.db) == before


async def test_body_at_exactly_the_limit_is_accepted(settings, server, http):
    job = await track(http, server)
    status, _ = await post(http, job["callback_url"], b"z" * settings.max_body_bytes)
    assert status == 200


class TestCrustdataSignature:
    @pytest.fixture
    def settings(self, tmp_path):
        return load_settings(
            db=tmp_path / "signed.db",
            api_token="t" * 20,
            crustdata={"webhook_secret": "whsec-crustdata-test"},
        )

    @pytest.fixture
    async def signed_server(self, settings):
        async with open_services(settings) as services, serving(services, "127.0.0.1", 0) as url:
            yield services, url

    async def _job(self, http, url):
        async with http.post(
            f"{url}/api/jobs",
            json={"vendor": "crustdata", "vendor_job_id": "b-9"},
            headers={"Authorization": "Bearer " + "t" * 20},
        ) as response:
            return await response.json()

    async def test_valid_signature_is_accepted_and_recorded_as_verified(self, signed_server, http):
        services, url = signed_server
        job = await self._job(http, url)
        body = b'{"batch_id": "b-9"}'
        signature = sign_crustdata(body, "whsec-crustdata-test", int(time.time()))
        status, _ = await post(
            http, job["callback_url"], body, {"x-crustdata-signature": signature}
        )
        assert status == 200
        (row,) = await services.store.list_inbox(job["id"])
        assert row.verification == "verified"

    @pytest.mark.parametrize(
        ("make_header", "reason"),
        [
            (lambda body, now: None, "missing_signature"),
            (lambda body, now: "garbage", "malformed_signature"),
            (lambda body, now: sign_crustdata(body, "other-secret", now), "bad_signature"),
            (
                lambda body, now: sign_crustdata(body + b" ", "whsec-crustdata-test", now),
                "bad_signature",
            ),
            (
                lambda body, now: sign_crustdata(body, "whsec-crustdata-test", now - 301),
                "stale_timestamp",
            ),
            (
                lambda body, now: sign_crustdata(body, "whsec-crustdata-test", now + 301),
                "stale_timestamp",
            ),
        ],
    )
    async def test_bad_signature_is_401_and_stores_nothing(
        self, settings, signed_server, http, make_header, reason
    ):
        services, url = signed_server
        job = await self._job(http, url)
        before = snapshot(settings.db)
        body = b'{"batch_id": "b-9"}'
        header = make_header(body, int(time.time()))
        headers = {"x-crustdata-signature": header} if header else {}

        status, answer = await post(http, job["callback_url"], body, headers)

        assert status == 401
        assert answer["error"]["reason"] == reason
        assert snapshot(settings.db) == before
        assert services.metrics.callback_rejections.labels("crustdata", reason)._value.get() == 1

    @pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "wrongly signed"])
    async def test_a_guessed_url_is_a_404_unknown_token_whatever_its_signature(
        self, settings, signed_server, http, signed
    ):
        """Someone guessing URLs sends no valid signature: counted as the guess it is
        (`unknown_token`, which the README says to watch), not as a signature fault."""
        services, url = signed_server
        job = await self._job(http, url)
        before = snapshot(settings.db)
        body = b'{"batch_id": "b-9"}'
        headers = {"x-crustdata-signature": "t=1,v1=00"} if signed else {}
        guessed = job["callback_url"].rsplit("/", 1)[0] + "/" + "A" * 32

        status, answer = await post(http, guessed, body, headers)

        assert status == 404
        assert answer["error"]["code"] == "not_found"
        assert snapshot(settings.db) == before
        rejections = services.metrics.callback_rejections
        assert rejections.labels("crustdata", "unknown_token")._value.get() == 1
        for reason in ("missing_signature", "malformed_signature", "bad_signature"):
            assert rejections.labels("crustdata", reason)._value.get() == 0


async def test_thousand_concurrent_callbacks_across_hundred_jobs_each_stored_once(
    services, server, http
):
    jobs = [await track(http, server, vendor_job_id=f"job-{n}") for n in range(100)]
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector) as many:

        async def send(n: int):
            job = jobs[n % 100]
            async with many.post(job["callback_url"], data=f'{{"delivery": {n}}}'.encode()) as r:
                return r.status, (await r.json())["duplicate"]

        answers = await asyncio.gather(*(send(n) for n in range(1000)))

    assert answers == [(200, False)] * 1000
    for job in jobs:
        inbox = await services.store.list_inbox(job["id"])
        assert sorted(json.loads(row.body)["delivery"] for row in inbox) == list(
            range(jobs.index(job), 1000, 100)
        )
        assert (await services.store.get_job(job["id"])).callbacks_received == 10


async def test_a_callback_while_another_process_holds_the_write_lock_is_503_then_stored(
    settings, services, server, http, auth
):
    """Someone holds the database's write lock longer than the writer waits (a long
    transaction in a shell, a stalled disk): the callback is refused with 503 and Retry-After,
    which a vendor retries, not answered as an internal error; nothing is stored, and the same
    callback sent again once the lock is free is stored as the first."""
    job = await track(http, server)
    before = snapshot(settings.db)
    holder = sqlite3.connect(settings.db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        async with http.post(job["callback_url"], data=b'{"n": 1}') as response:
            refused = (response.status, response.headers.get("Retry-After"), await response.json())
        async with http.post(
            f"{server}/api/jobs", json={"vendor": "ecore", "vendor_job_id": "e-9"}, headers=auth
        ) as response:
            api_refused = (response.status, (await response.json())["error"]["code"])
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    assert refused[:2] == (503, "1")
    assert refused[2]["error"]["code"] == "store_unavailable"
    assert "database is locked" in refused[2]["error"]["message"]
    assert api_refused == (503, "store_unavailable")
    assert snapshot(settings.db) == before
    status, answer = await post(http, job["callback_url"], b'{"n": 1}')
    assert (status, answer["duplicate"]) == (200, False)


async def test_a_stray_request_to_a_polled_jobs_url_makes_it_due_and_leaves_its_polling_be(
    tmp_path,
):
    """eCore sends no callbacks, yet its jobs have URLs (and the API once showed them): a
    request to one wakes the job for a check, as any callback does, but does not make the
    job wait for callbacks that will never come. Before, it did, and the job's end was
    noticed by the hourly safety net."""
    async with SimServer(SimConfig(seed=17, start_time=time.time())) as sim:
        sim.config.ecore.profile.base_seconds = 3600.0
        db = tmp_path / "stray.db"
        settings = load_settings(db=db, api_token=API_TOKEN, **sim.vendor_settings())
        async with (
            open_services(settings, clock=sim.clock.now) as services,
            serving(services, "127.0.0.1", 0) as url,
        ):
            world = World(sim, services, url, Reconciler(services), _cli_env(sim, db))
            job = await world.submit(VendorName.ECORE)
            await reconcile_once(world.rc)
            hook = job.callback_url(url)
            async with services.http.post(hook, data=b"hello") as answer:
                assert answer.status == 200
            woken = await world.job(job.id)
            assert woken.next_check_at == sim.clock.now()
            assert not woken.expects_callback

            async def completed() -> bool:
                return (await world.job(job.id)).state is JobState.COMPLETED

            await step_until(world, completed)
            done = await world.job(job.id)
    ended = sim.ecore.jobs[job.vendor_job_id or ""].job.terminal_at()
    assert ended is not None
    assert done.finished_at is not None
    policy = world.rc.policies[VendorName.ECORE]
    assert done.finished_at - ended <= 2 * policy.detection_target(ended - done.created_at)
