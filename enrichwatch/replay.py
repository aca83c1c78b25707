"""Replaying a stored callback: the inbox row goes through the receiver's own write again,
so a replay is recorded, deduplicated and wakes its job exactly as a redelivery would.

The signature is not checked again (a replayed Crustdata signature is stale by then); the
replay keeps the verification outcome recorded when the callback first arrived.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from enrichwatch.errors import StoreError
from enrichwatch.runtime import Services
from enrichwatch.store import CallbackOutcome, InboundDelivery, InboxRecord, JobRecord
from enrichwatch.vendors import adapter_class


@dataclass(frozen=True)
class ReplayOutcome:
    original: InboxRecord
    outcome: CallbackOutcome
    job: JobRecord
    """The job after the replay was recorded."""


async def replay_callback(
    services: Services, inbox_id: int, *, bypass_dedupe: bool = False
) -> ReplayOutcome:
    """Record inbox row `inbox_id` again as a callback for its job.

    Without `bypass_dedupe` the replay carries the original's dedupe key, so it is stored as
    a duplicate and wakes nothing, as a vendor's redelivery would be; with it, the replay gets
    a key of its own and counts as a new callback that makes the job due.
    """
    store = services.store
    original = await store.get_inbox(inbox_id)
    job = await store.get_job(original.job_id)
    dedupe_key = original.dedupe_key
    if bypass_dedupe:
        dedupe_key = f"replay:{inbox_id}:{secrets.token_hex(8)}"
    delivery = InboundDelivery(
        method=original.method,
        headers=original.headers,
        content_type=original.content_type,
        body=original.body,
        verification=original.verification,
        dedupe_key=dedupe_key,
        replay_of=inbox_id,
    )
    outcome = await store.record_callback(
        original.vendor,
        job.callback_token,
        delivery,
        vendor_sends_callbacks=adapter_class(original.vendor).supports_webhooks,
    )
    if outcome is None:
        raise StoreError(f"job {job.id} no longer accepts callbacks for {original.vendor}")
    if not outcome.duplicate:
        services.due_now.set()
    return ReplayOutcome(original, outcome, await store.get_job(job.id))
