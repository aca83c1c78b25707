"""The one small interface every vendor adapter implements.

An adapter knows one vendor's HTTP API and nothing else: no database, no scheduling. It turns
the vendor's vocabulary into the normalized models below and its failures into the typed
errors of `enrichwatch.errors`, so the reconciler never sees a vendor-specific shape.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

import aiohttp
from pydantic import BaseModel, ConfigDict

from enrichwatch import jsontext
from enrichwatch.config import VendorSettings
from enrichwatch.errors import ActionNotSupportedError, InputError
from enrichwatch.models import JobState, VendorName
from enrichwatch.vendors.budget import RequestBudget, RequestBudgets

CallCounter = Callable[[VendorName, str], None]
"""Called once per HTTP request an adapter makes, with an endpoint label like "GET /batch/{id}"."""
FailureCounter = Callable[[VendorName, str, str], None]
"""Called once per HTTP request that failed, with its endpoint label and what came back: the
HTTP status, "network" when no answer came, "unreadable" when the answer made no sense."""
CreatedHook = Callable[[str], Awaitable[None]]
"""Awaited with the vendor's id for a job a submission is making, as soon as it is known."""


class StatusSnapshot(BaseModel):
    """What the vendor says about one job right now.

    `done` counts records that reached a final per-record outcome, success or failure;
    `failed` is how many of those failed. Either is None where the vendor gives no count.
    """

    model_config = ConfigDict(frozen=True)

    vendor_job_id: str
    state: JobState
    vendor_status: str
    done: int | None = None
    failed: int | None = None
    total: int | None = None
    error: str | None = None
    credits_used: Decimal | None = None
    """Credits the vendor says the job has spent so far, where it says (influencers.club)."""
    results_available: bool = False
    """True when results can be fetched now: completed, or partial (eCore paused, BrightLocal
    progressive)."""
    raw: dict[str, Any] = {}


@dataclass(frozen=True, slots=True)
class ResultRecord:
    """One result record; `position` is stable, so a restarted fetch can resume and dedupe.

    The record travels as JSON text (`data_json`), the form it is stored in, so an adapter
    that parses a whole page lets the parsed objects go as soon as the page is read rather
    than holding them until they are stored, and the store writes the text as it comes. A
    plain dataclass: records are made by the thousand per request, where a model's
    validation doubled what making one costs."""

    position: int
    input_id: str | None
    status: str | None
    data_json: str

    @classmethod
    def of(cls, position: int, input_id: str | None, status: str | None, data: Any) -> ResultRecord:
        """A record whose value the adapter holds parsed."""
        return cls(position, input_id, status, jsontext.dumps(data))

    @property
    def data(self) -> Any:
        """The record's value."""
        return json.loads(self.data_json)


class SubmitRequest(BaseModel):
    """A batch to submit: rows of input (column → value) plus vendor options."""

    rows: list[dict[str, str]]
    name: str | None = None
    options: dict[str, Any] = {}
    callback_url: str | None = None


class SubmittedJob(BaseModel):
    model_config = ConfigDict(frozen=True)

    vendor_job_id: str
    raw: dict[str, Any] = {}


@dataclass(frozen=True)
class RateLimitInfo:
    """The latest `x-ratelimit-*` values a vendor sent; `reset` is seconds from when seen."""

    limit: int | None
    remaining: int | None
    reset: float | None


@dataclass(frozen=True)
class VendorLimits:
    max_batch_size: int | None
    requests_per_minute: float | None
    recommended_poll_interval: float
    extra: Mapping[str, Any] = field(default_factory=dict)


class VendorAdapter(ABC):
    name: ClassVar[VendorName]
    supports_webhooks: ClassVar[bool] = False
    has_list_endpoint: ClassVar[bool] = False
    resumes_failed_runs: ClassVar[bool] = False
    """`resume` also takes up a job that failed mid-run, which then runs again."""
    offers_reprocess: ClassVar[bool] = False
    """`reprocess` runs a finished job again (Reprompt)."""
    limits: ClassVar[VendorLimits]

    @classmethod
    def job_id_problem(cls, vendor_job_id: str) -> str | None:
        """What is wrong with an id this vendor could never have issued, where its docs say
        what its ids look like: tracked, such a typo would only fail every check until the
        job's maximum age."""
        return None

    def __init__(
        self,
        settings: VendorSettings,
        session: aiohttp.ClientSession,
        *,
        on_call: CallCounter | None = None,
        on_failure: FailureCounter | None = None,
        on_created: CreatedHook | None = None,
        budgets: RequestBudgets | None = None,
    ) -> None:
        self.settings = settings
        self.session = session
        self._on_call = on_call
        self._on_failure = on_failure
        self._on_created = on_created
        key = settings.api_key.get_secret_value() if settings.api_key is not None else ""
        self.budget: RequestBudget | None = (
            None
            if budgets is None
            else budgets.account(
                self.name, str(settings.base_url), key, _whole(self.limits.requests_per_minute)
            )
        )
        """The account's request budget, shared with every adapter built from the same
        `budgets`; None (an adapter built on its own, in a test or a benchmark) is ungated."""

    def count_call(self, endpoint: str) -> None:
        if self._on_call is not None:
            self._on_call(self.name, endpoint)

    def count_failure(self, endpoint: str, answer: str) -> None:
        """A call to `endpoint` failed; `answer` is what came back (see `FailureCounter`)."""
        if self._on_failure is not None:
            self._on_failure(self.name, endpoint, answer)

    async def created(self, vendor_job_id: str) -> None:
        """The id of the job this submission makes is known before the submission is done
        (BrightLocal names its batch before it is filled and committed; Reprompt's batch id
        is ours to choose): `on_created` puts it on record first, so a stop in between
        leaves something to settle (`settle_cut_off_submit`) instead of a job nobody tracks."""
        if self._on_created is not None:
            await self._on_created(vendor_job_id)

    @property
    def rate_limit(self) -> RateLimitInfo | None:
        """What the vendor last said about our rate budget; None until it says anything."""
        return None

    def validate(self, request: SubmitRequest) -> None:
        """Check a whole input against the vendor's rules without sending anything; raises
        InputError naming the row or the limit. Called before the first part is sent."""
        if not request.rows:
            raise InputError(self.name, "the input has no rows")

    def split(self, request: SubmitRequest) -> list[SubmitRequest]:
        """The input as the vendor jobs it will become, each within the vendor's caps, so each
        part can be tracked (and given its own callback URL) before it is sent."""
        return [request]

    @abstractmethod
    async def submit(self, request: SubmitRequest) -> list[SubmittedJob]:
        """Submit a batch; inputs larger than the vendor's cap become several jobs."""

    async def settle_cut_off_submit(self, vendor_job_id: str) -> SubmittedJob | None:
        """A submission a stop cut off after `created` named its job: that job if the vendor
        took the submission whole (so it is tracked), None once nothing of it can run (never
        made, or deleted here)."""
        raise ActionNotSupportedError(self.name, "submissions name no job before they are done")

    async def listed_since(self, since: float, rows: int) -> list[str]:
        """Ids of the jobs the vendor's list shows made from about `since` on (and with `rows`
        rows where the list says), newest first: where a submit cut off before its answer
        named its job may have left it. One page of the list is read."""
        raise ActionNotSupportedError(self.name, "no list endpoint")

    @abstractmethod
    async def status(self, vendor_job_id: str) -> StatusSnapshot:
        """One job's status."""

    async def list_status(
        self, vendor_job_ids: Collection[str], also: Collection[str] = ()
    ) -> dict[str, StatusSnapshot]:
        """Many jobs' statuses in as few calls as the vendor allows; ids it did not report are
        absent from the result. Pages are read until each of `vendor_job_ids` was seen (none:
        the first page only); `also` are reported if those pages show them, never paged for."""
        raise ActionNotSupportedError(self.name, "no list endpoint")

    @abstractmethod
    def results(
        self, snapshot: StatusSnapshot, start: int = 0
    ) -> AsyncIterator[list[ResultRecord]]:
        """Stream result records page by page, from `position >= start`."""

    async def resume(self, vendor_job_id: str) -> None:
        raise ActionNotSupportedError(self.name, "resume is not offered")

    async def pause(self, vendor_job_id: str) -> None:
        raise ActionNotSupportedError(self.name, "pause is not offered")

    async def reprocess(self, vendor_job_id: str, options: Mapping[str, Any]) -> None:
        raise ActionNotSupportedError(self.name, "reprocess is not offered")


def _whole(limit: float | None) -> int | None:
    return None if limit is None else max(1, int(limit))
