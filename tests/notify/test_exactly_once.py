"""One message per (job, outcome, channel), whatever happens after the outcome: a duplicate
callback, more callbacks, a forced re-check and more reconcile passes create no second row
and send nothing more."""

from __future__ import annotations

from tests.notify.conftest import SECRET
from tests.notify.test_outcomes import submit


async def test_duplicate_callbacks_and_a_forced_recheck_after_completion_send_nothing_more(
    open_world, slack, receiver
):
    async with open_world(
        notify={
            "slack_webhook_url": slack.url,
            "webhook_url": receiver.url,
            "webhook_secret": SECRET,
            "console": True,
        }
    ) as world:
        job = await submit(world, "brightlocal")
        await world.passes()
        row = world.job(job["id"])
        assert row["state"] == "completed"
        assert row["callbacks_received"] >= 1
        before = [(r["id"], r["channel"], r["outcome"], r["state"]) for r in world.notifications()]
        assert sorted((c, o, s) for _, c, o, s in before) == [
            ("console", "completed", "done"),
            ("slack", "completed", "done"),
            ("webhook", "completed", "done"),
        ]

        # The vendor's callback again, twice (a duplicate and a repeat), and a forced check
        # (answered as the job is: a finished job is not checked again).
        delivery = (await inbox(world, job["id"]))[0]
        for _ in range(2):
            async with world.http.post(
                f"{world.url}/hooks/brightlocal/{row['callback_token']}",
                data=delivery["body"],
                headers={"Content-Type": delivery["content_type"]},
            ) as response:
                assert response.status == 200
        await world.api("POST", f"/api/jobs/{job['id']}/check", status=200)
        await world.passes()
        await world.passes()

        after = [(r["id"], r["channel"], r["outcome"], r["state"]) for r in world.notifications()]
        assert after == before
        assert len(slack.requests) == 1
        assert len(receiver.requests) == 1
        assert len(receiver.processed) == 1
        types = [e["type"] for e in world.events(job["id"], prefix="")]
        assert "webhook.duplicate" in types
        assert types.count("notification.sent") == 3


async def inbox(world, job_id: int) -> list[dict]:
    records = await world.services.store.list_inbox(job_id)
    return [
        {"body": record.body.decode(), "content_type": record.content_type} for record in records
    ]


async def test_the_outbox_refuses_a_second_row_for_the_same_job_outcome_and_channel(
    open_world, slack
):
    """Below the reconciler: creating an outcome's rows again (as a replayed transaction
    would) adds none, and never makes a sent row pending again."""
    from enrichwatch.store.notifications import Outcome, enqueue

    async with open_world(notify={"slack_webhook_url": slack.url}) as world:
        job = await world.track("crustdata", "no-such-batch")
        await world.passes()
        (row,) = world.notifications(job["id"])
        assert (row["outcome"], row["state"]) == ("expired", "done")
        routes = world.services.store.notify_routes
        for _ in range(2):
            created = await world.services.store._writer.run(
                lambda conn: enqueue(conn, job["id"], Outcome.EXPIRED, routes, now=1.0)
            )
            assert created == 0
        await world.passes()
        assert [tuple(r) for r in world.notifications(job["id"])] == [tuple(row)]
        assert len(slack.requests) == 1
