"""Deterministic fake enrichment data, derived from (job key, position) on demand.

Hashing instead of a seeded `random.Random` per record keeps generation cheap enough to
stream a million records, and means no result set ever has to be held in memory.
"""

from __future__ import annotations

import hashlib
from typing import Any

FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim")
LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson")
TITLES = ("VP of Engineering", "Head of Growth", "CTO", "Data Scientist", "Account Executive")
COMPANIES = ("Acme Corp", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne")
INDUSTRIES = ("Software", "Retail", "Manufacturing", "Healthcare", "Finance", "Logistics")
CITIES = ("New York, NY", "Austin, TX", "London, UK", "Berlin, DE", "Toronto, CA")
CATEGORIES = ("Plumber", "Cafe", "Dentist", "Hardware store", "Bakery", "Gym")
PLATFORMS = ("instagram", "youtube", "tiktok", "twitter", "twitch")


class Draw:
    """A few pseudo-random numbers from one hash of (key, position)."""

    __slots__ = ("_bits",)

    def __init__(self, key: str, pos: int) -> None:
        digest = hashlib.blake2b(f"{key}:{pos}".encode(), digest_size=16).digest()
        self._bits = int.from_bytes(digest, "big")

    def num(self, slot: int, modulo: int) -> int:
        return ((self._bits >> (slot * 12)) & 0xFFFFFF) % modulo

    def pick(self, slot: int, options: tuple[str, ...]) -> str:
        return options[self.num(slot, len(options))]


def _slug(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def person(key: str, pos: int, identifier: str) -> dict[str, Any]:
    d = Draw(key, pos)
    first, last = d.pick(0, FIRST), d.pick(1, LAST)
    person_id = 10_000 + d.num(2, 9_000_000)
    return {
        "basic_profile": {
            "name": f"{first} {last}",
            "headline": f"{d.pick(3, TITLES)} at {d.pick(4, COMPANIES)}",
            "current_title": d.pick(3, TITLES),
            "location": d.pick(5, CITIES),
        },
        "social_handles": {
            "professional_network_identifier": {"profile_url": identifier},
            "twitter_identifier": {"slug": f"{_slug(first)}{_slug(last)}{pos}"},
        },
        "crustdata_person_id": person_id,
    }


def contact(key: str, pos: int, found: bool) -> dict[str, Any]:
    d = Draw(key, pos)
    first, last = _slug(d.pick(0, FIRST)), _slug(d.pick(1, LAST))
    company = _slug(d.pick(4, COMPANIES))
    if not found:
        return {
            "business_email": [],
            "personal_contact_info": {"personal_emails": [], "phone_numbers": []},
        }
    return {
        "business_email": [f"{first}.{last}@{company}.com"],
        "personal_contact_info": {
            "personal_emails": [f"{first}{pos}@example.com"],
            "phone_numbers": [f"+1 415 555 {d.num(6, 10_000):04d}"],
        },
    }


def company(key: str, pos: int, identifier: str) -> dict[str, Any]:
    d = Draw(key, pos)
    name = d.pick(0, COMPANIES)
    company_id = 1_000 + d.num(1, 900_000)
    return {
        "basic_info": {
            "name": name,
            "primary_domain": f"{_slug(name)}{pos}.com",
            "professional_network_url": f"https://www.linkedin.com/company/{_slug(name)}{pos}",
            "crustdata_company_id": company_id,
            "industries": [d.pick(2, INDUSTRIES)],
        },
        "headcount": {"total": 10 + d.num(3, 50_000)},
        "matched_on": identifier,
    }


def internal_id(key: str, pos: int) -> int:
    return 10_000 + Draw(key, pos).num(7, 90_000_000)


def creator(key: str, pos: int, input_value: str, platform: str | None) -> dict[str, Any]:
    d = Draw(key, pos)
    handle = input_value.lstrip("@").split("@")[0]
    return {
        "username": handle,
        "full_name": f"{d.pick(0, FIRST)} {d.pick(1, LAST)}",
        "platform": platform or d.pick(2, PLATFORMS),
        "followers": 100 + d.num(3, 5_000_000),
        "engagement_percent": round(d.num(4, 1000) / 100, 2),
        "email": input_value if "@" in input_value else f"{_slug(handle)}@example.com",
        "biography": f"{d.pick(5, TITLES)} sharing {d.pick(6, INDUSTRIES).lower()} tips",
    }


def place_outputs(key: str, pos: int, name: str, attributes: list[str]) -> dict[str, Any]:
    d = Draw(key, pos)
    values: dict[str, Any] = {
        "websites": [f"https://www.{_slug(name) or 'place'}{pos}.com"],
        "phoneNumbers": [f"+1 212 555 {d.num(0, 10_000):04d}"],
        "socialHandles": {"instagram": f"@{_slug(name)}{pos}"},
        "openingHours": {"monday": "09:00-17:00", "saturday": "10:00-14:00"},
        "categories": [d.pick(1, CATEGORIES)],
        "closed_permanently": d.num(2, 20) == 0,
    }
    return {attr: values.get(attr, f"{attr}-{d.num(3, 1000)}") for attr in attributes}


def reviews(key: str, pos: int, limit: int) -> list[dict[str, Any]]:
    d = Draw(key, pos)
    count = min(limit, 1 + d.num(0, 5))
    return [
        {
            "author": f"{Draw(key, pos * 100 + i).pick(0, FIRST)} {d.pick(1, LAST)[0]}.",
            "rating": 1 + Draw(key, pos * 100 + i).num(1, 5),
            "text": f"{d.pick(2, CATEGORIES)} visit number {i + 1}. Would come back.",
            "timestamp": f"2025-{1 + (i % 12):02d}-{1 + d.num(3, 28):02d} 12:00:00",
        }
        for i in range(count)
    ]


def ecore_row(
    key: str, pos: int, category: str, row: dict[str, Any], found: bool
) -> dict[str, Any]:
    d = Draw(key, pos)
    out: dict[str, Any] = {f"imported_{k}": v for k, v in sorted(row.items())}
    if category == "account":
        name = str(row.get("company_name") or d.pick(0, COMPANIES))
        enriched: dict[str, Any] = {
            "company_name": name,
            "company_domain": f"{_slug(name)}.com",
            "industry": d.pick(1, INDUSTRIES),
            "revenue": f"{1 + d.num(2, 500)}M",
            "employees": 10 + d.num(3, 20_000),
            "naics_code": str(100_000 + d.num(4, 800_000)),
            "sic_code": str(1000 + d.num(5, 8000)),
        }
    else:
        first = str(row.get("first_name") or d.pick(0, FIRST))
        last = str(row.get("last_name") or d.pick(1, LAST))
        company_name = str(row.get("company_name") or d.pick(2, COMPANIES))
        enriched = {
            "first_name": first,
            "last_name": last,
            "contact_email": f"{_slug(first)}.{_slug(last)}@{_slug(company_name)}.com",
            "contact_mobile_phone": f"+1 415 555 {d.num(3, 10_000):04d}",
            "job_title": d.pick(4, TITLES),
            "linkedin_url": f"https://www.linkedin.com/in/{_slug(first)}-{_slug(last)}-{pos}",
            "name_match_status": "matched",
            "still_in_company_status": "current",
        }
    if not found:
        enriched = {k: "" for k in enriched}
    out.update(enriched)
    out["enrichment_source"] = d.pick(6, ("datacore", "bigquery", "netnut")) if found else ""
    out["enrichment_status"] = "enriched" if found else "not_enriched"
    return out
