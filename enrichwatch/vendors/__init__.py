"""Vendor adapters behind one interface (`base.VendorAdapter`), found by vendor name."""

from __future__ import annotations

from enrichwatch.errors import UnknownVendorError
from enrichwatch.models import VendorName
from enrichwatch.vendors.base import VendorAdapter
from enrichwatch.vendors.brightlocal import BrightLocalAdapter
from enrichwatch.vendors.crustdata import CrustdataAdapter
from enrichwatch.vendors.ecore import ECoreAdapter
from enrichwatch.vendors.influencers_club import InfluencersClubAdapter
from enrichwatch.vendors.reprompt import RepromptAdapter

ADAPTERS: dict[VendorName, type[VendorAdapter]] = {
    adapter.name: adapter
    for adapter in (
        CrustdataAdapter,
        InfluencersClubAdapter,
        RepromptAdapter,
        BrightLocalAdapter,
        ECoreAdapter,
    )
}


def adapter_class(name: str | VendorName) -> type[VendorAdapter]:
    try:
        return ADAPTERS[VendorName(name)]
    except (KeyError, ValueError):
        raise UnknownVendorError(str(name)) from None


__all__ = ["ADAPTERS", "VendorAdapter", "adapter_class"]
