"""The error mapping and bookkeeping every adapter shares, exercised against each vendor."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from enrichwatch.config import ECoreSettings
from enrichwatch.errors import (
    UnknownVendorError,
    VendorAmbiguousError,
    VendorAuthError,
    VendorNotFoundError,
    VendorProtocolError,
    VendorTransientError,
)
from enrichwatch.models import JobState, VendorName
from enrichwatch.vendors import ADAPTERS, adapter_class
from enrichwatch.vendors.answers import map_status
from enrichwatch.vendors.base import SubmitRequest, VendorAdapter
from enrichwatch.vendors.http import retry_delay

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
# An id each vendor's API accepts in shape; BrightLocal's are integers.
IDS = {vendor: UNKNOWN_ID for vendor in VendorName} | {VendorName.BRIGHTLOCAL: "999999"}
STATUS_LABEL = {
    VendorName.CRUSTDATA: "GET /batch/{id}",
    VendorName.INFLUENCERS_CLUB: "GET /public/v1/enrichment/batch/{id}/status/",
    VendorName.REPROMPT: "GET /v1/{org}/place_enrichment/batches/{id}",
    VendorName.BRIGHTLOCAL: "GET /v4/batch",
    VendorName.ECORE: "GET /api/v1/enrichment/status/{id}/",
}
ALL = list(VendorName)


def test_registry_has_every_vendor():
    assert set(ADAPTERS) == set(VendorName)
    assert all(adapter_class(v.value).name is v for v in VendorName)
    with pytest.raises(UnknownVendorError):
        adapter_class("clearbit")


@pytest.mark.parametrize("vendor", ALL)
async def test_wrong_credentials_are_an_auth_error_and_still_counted(make, calls, vendor):
    adapter = make(vendor, api_key="not-the-key")

    with pytest.raises(VendorAuthError) as caught:
        await adapter.status(IDS[vendor])

    assert caught.value.status == 401
    assert calls[(vendor.value, STATUS_LABEL[vendor])] == 1


@pytest.mark.parametrize("vendor", ALL)
async def test_unknown_job_is_not_found(make, vendor):
    with pytest.raises(VendorNotFoundError) as caught:
        await make(vendor).status(IDS[vendor])
    assert caught.value.status == 404


@pytest.mark.parametrize("vendor", ALL)
async def test_429_is_transient_with_the_delay_the_vendor_gave(make, sim, vendor):
    adapter = make(vendor)
    sim.set_fault(vendor.value, rate_limit=1, retry_after=42)

    with pytest.raises(VendorTransientError) as caught:
        await adapter.status(IDS[vendor])

    assert (caught.value.status, caught.value.retry_after) == (429, 42)
    assert not isinstance(caught.value, VendorAmbiguousError)


async def test_crustdata_429_records_the_exhausted_budget(make, sim):
    crust = make(VendorName.CRUSTDATA)
    sim.set_fault("crustdata", rate_limit=1, retry_after=9)

    with pytest.raises(VendorTransientError):
        await crust.status(UNKNOWN_ID)

    assert crust.rate_limit is not None
    assert (crust.rate_limit.remaining, crust.rate_limit.reset) == (0, 9)


@pytest.mark.parametrize("vendor", ALL)
async def test_5xx_on_a_read_is_transient_but_not_ambiguous(make, sim, vendor):
    sim.set_fault(vendor.value, server_errors=1, server_error_status=503)

    with pytest.raises(VendorTransientError) as caught:
        await make(vendor).status(IDS[vendor])

    assert caught.value.status == 503
    assert not isinstance(caught.value, VendorAmbiguousError)


async def test_a_timeout_after_sending_a_submit_is_ambiguous(make, sim):
    club = make(VendorName.INFLUENCERS_CLUB)
    club.upload_timeout = aiohttp.ClientTimeout(total=0.05)
    sim.set_fault("influencers_club", slow_count=1, slow_seconds=0.3)

    with pytest.raises(VendorAmbiguousError):
        await club.submit(
            SubmitRequest(rows=[{"email": "a@b.co"}], options={"enrichment_mode": "basic"})
        )


async def test_a_timeout_on_a_read_is_plainly_transient(make, sim):
    ecore = make(VendorName.ECORE)
    ecore.request_timeout = aiohttp.ClientTimeout(total=0.05)
    sim.set_fault("ecore", slow_count=1, slow_seconds=0.3)

    with pytest.raises(VendorTransientError) as caught:
        await ecore.status(UNKNOWN_ID)

    assert caught.value.status is None
    assert not isinstance(caught.value, VendorAmbiguousError)


async def test_a_refused_connection_never_reached_the_vendor(session, calls):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = ECoreSettings(base_url=f"http://127.0.0.1:{port}", api_key="k")
    ecore: VendorAdapter = adapter_class(VendorName.ECORE)(settings, session)

    with pytest.raises(VendorTransientError) as caught:
        await ecore.submit(SubmitRequest(rows=[{"first_name": "Jane"}]))
    assert not isinstance(caught.value, VendorAmbiguousError)


def test_an_undocumented_status_is_not_guessed():
    with pytest.raises(VendorProtocolError, match="unknown status 'archived'"):
        map_status("crustdata", {"completed": JobState.COMPLETED}, "archived")


def test_retry_delay_reads_seconds_dates_and_crustdata_reset():
    def headers(**values: str) -> CIMultiDictProxy[str]:
        return CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in values.items()}))

    assert retry_delay(headers(Retry_After="12")) == 12
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    assert 80 <= (retry_delay(headers(Retry_After=later)) or 0) <= 90
    assert retry_delay(headers(x_ratelimit_reset="7")) == 7
    assert retry_delay(headers()) is None
