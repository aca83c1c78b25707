"""The shapes of Crustdata jobs and their result files, generated line by line on demand.

Kept apart from the HTTP handlers so the storage host can stream a file of any size from
(job key, position) alone: a part is a range of result lines, located in O(log n) by the
job's failure pattern, and never held in memory whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from enrichwatch.sim import records
from enrichwatch.sim.jobs import SimJob

_CHUNK = 500


@dataclass(frozen=True)
class Endpoint:
    kind: str
    entity: str
    action: str
    identifier_types: tuple[str, ...]
    field_families: tuple[str, ...]


ENDPOINTS: dict[str, Endpoint] = {
    "/batch/person/enrich": Endpoint(
        "person",
        "person",
        "enrich",
        ("professional_network_profile_urls", "business_emails"),
        ("basic_profile", "social_handles", "experience", "education", "skills"),
    ),
    "/batch/person/contact/enrich": Endpoint(
        "contact",
        "person",
        "contact_enrich",
        ("professional_network_profile_urls",),
        ("business_email", "personal_contact_info"),
    ),
    "/batch/company/enrich": Endpoint(
        "company",
        "company",
        "enrich",
        ("names", "domains", "professional_network_profile_urls", "crustdata_company_ids"),
        ("basic_info", "headcount", "funding", "revenue", "web_traffic", "news"),
    ),
}


@dataclass
class CrustJob:
    batch_id: str
    endpoint: Endpoint
    job: SimJob
    identifiers: list[str] | None
    fields: list[str]
    webhook_url: str | None
    part_size: int

    def identifier(self, pos: int) -> str:
        if self.identifiers is not None:
            return self.identifiers[pos]
        return f"https://www.linkedin.com/in/sim-{self.endpoint.kind}-{pos}"


def result_count(crust: CrustJob, processed: int) -> int:
    """Lines in the results file once `processed` records are done: unresolved identifiers
    are dropped for enrich jobs but listed with empty values for contact jobs."""
    if crust.endpoint.kind == "contact":
        return processed
    return crust.job.succeeded_before(processed)


def result_lines(crust: CrustJob, start: int, stop: int) -> Iterator[bytes]:
    """Result lines [start, stop) as JSONL bytes, a few hundred lines per chunk."""
    job, kind = crust.job, crust.endpoint.kind
    pos = start if kind == "contact" else job.success_position(start)
    batch: list[str] = []
    emitted = start
    while emitted < stop:
        if kind == "contact" or not job.is_failed(pos):
            batch.append(_record(crust, pos))
            emitted += 1
            if len(batch) >= _CHUNK:
                yield ("\n".join(batch) + "\n").encode()
                batch = []
        pos += 1
    if batch:
        yield ("\n".join(batch) + "\n").encode()


def _record(crust: CrustJob, pos: int) -> str:
    key, ident, kind = crust.job.key, crust.identifier(pos), crust.endpoint.kind
    if kind == "contact":
        data = records.contact(key, pos, not crust.job.is_failed(pos))
    elif kind == "company":
        data = records.company(key, pos, ident)
    else:
        data = records.person(key, pos, ident)
    for family in {f.split(".", 1)[0] for f in crust.fields} - data.keys():
        data[family] = {}
    record = {
        "original_identifier": ident,
        "internal_id": records.internal_id(key, pos),
        "data": data,
    }
    return json.dumps(record, separators=(",", ":"))


def endpoint_path(endpoint: Endpoint) -> str:
    return next(path for path, e in ENDPOINTS.items() if e is endpoint)
