"""The sample batches the demo submits: one CSV per vendor, shipped in the package, with the
options each vendor needs. They are also the shape to copy for a first real batch."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from enrichwatch.inputs import read_rows
from enrichwatch.models import VendorName
from enrichwatch.vendors.base import SubmitRequest

DEMO_NAME_PREFIX = "demo "
"""Every demo job's name starts so, which tells a demo database from a real one."""

_OPTIONS: dict[VendorName, dict[str, Any]] = {
    VendorName.CRUSTDATA: {},
    VendorName.INFLUENCERS_CLUB: {"enrichment_mode": "full", "platform": "instagram"},
    VendorName.REPROMPT: {},
    VendorName.BRIGHTLOCAL: {},
    VendorName.ECORE: {"category": "contact"},
}


@dataclass(frozen=True)
class SampleBatch:
    vendor: VendorName
    path: Path
    options: dict[str, Any]

    @property
    def name(self) -> str:
        return DEMO_NAME_PREFIX + self.vendor.value

    def request(self) -> SubmitRequest:
        """The batch as it is submitted, read (and checked) like any input file."""
        return SubmitRequest(
            rows=read_rows(self.path, self.vendor.value), name=self.name, options=self.options
        )


def sample_batches() -> list[SampleBatch]:
    """One batch per vendor, in the order of `VendorName`."""
    folder = resources.files("enrichwatch.demo") / "samples"
    return [
        SampleBatch(vendor, Path(str(folder / f"{vendor.value}.csv")), _OPTIONS[vendor])
        for vendor in VendorName
    ]
