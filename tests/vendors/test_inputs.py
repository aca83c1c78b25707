"""`validate` and `split` for every vendor, as the service uses them: the whole input is
checked once (a bad row or option is refused, naming the row or the limit, before a single
request), split to the vendor's caps, and each part is then submitted on its own — so each
part must become exactly one vendor job."""

from __future__ import annotations

from typing import Any

import pytest

from enrichwatch.errors import InputError
from enrichwatch.models import VendorName
from enrichwatch.vendors.base import SubmitRequest
from enrichwatch.vendors.influencers_club import MAX_UPLOAD_BYTES
from enrichwatch.vendors.reprompt import MAX_PLACES
from tests.vendors.test_brightlocal import profiles as review_rows
from tests.vendors.test_crustdata import PROFILE
from tests.vendors.test_crustdata import profiles as crust_rows
from tests.vendors.test_ecore import contacts
from tests.vendors.test_influencers_club import BASIC, emails
from tests.vendors.test_reprompt import ORG, places

CRUST = VendorName.CRUSTDATA
CLUB = VendorName.INFLUENCERS_CLUB
REPROMPT = VendorName.REPROMPT
BRIGHT = VendorName.BRIGHTLOCAL
ECORE = VendorName.ECORE
CONTACT = {"endpoint": "contact", "fields": ["business_email"]}
LINE = 64 * 1024
"""Bytes per uploaded line in the size tests; a CSV field must stay under 128 KiB for
Python's csv module, which the simulator reads uploads with."""


@pytest.fixture
def adapter(make, sim):
    """Any vendor's adapter, Reprompt's pointed at the org the simulator serves."""
    sim.config.reprompt.org = ORG

    def build(vendor: VendorName) -> Any:
        return make(vendor, org=ORG) if vendor is REPROMPT else make(vendor)

    return build


def blank(rows: list[dict[str, str]], number: int, column: str) -> list[dict[str, str]]:
    """The rows with `column` emptied in the 1-based data row `number`."""
    rows[number - 1] = {**rows[number - 1], column: "  "}
    return rows


def upload_rows(total: int) -> list[dict[str, str]]:
    """One-column rows whose CSV upload, header line included, is exactly `total` bytes."""
    body = total - len("email\n")
    sizes = [LINE] * (body // LINE) + ([body % LINE] if body % LINE else [])
    return [{"email": f"{i:06d}" + "x" * (size - 7)} for i, size in enumerate(sizes)]


NO_FIELDS: list[dict[str, Any]] = [{}, {"fields": []}, {"fields": " , "}, {"fields": None}]
REFUSED: list[tuple[VendorName, list[dict[str, str]], dict[str, Any], int | None, str]] = [
    # Every vendor: an input must have rows.
    *[(vendor, [], {}, None, "the input has no rows") for vendor in VendorName],
    # Crustdata
    (CRUST, crust_rows(2), {"endpoint": "people"}, None, "endpoint must be one of person, "),
    (
        CRUST,
        [{PROFILE: "https://www.linkedin.com/in/a", "business_emails": "a@b.co"}],
        {},
        None,
        "person enrichment takes exactly one identifier column, one of "
        "professional_network_profile_urls, business_emails; the input has "
        "professional_network_profile_urls, business_emails",
    ),
    (
        CRUST,
        [{"website": "acme.com"}],
        {"endpoint": "company"},
        None,
        "one of names, domains, professional_network_profile_urls, crustdata_company_ids; "
        "the input has website",
    ),
    (CRUST, blank(crust_rows(5), 3, PROFILE), {}, 3, f"{PROFILE} is empty"),
    (CRUST, [{"domains": "a.co"}, {}], {"endpoint": "company"}, 2, "domains is empty"),
    *[
        (CRUST, crust_rows(2), {"chunk_size": size}, None, f"from 10 to 1000; got {size!r}")
        for size in (9, 1001, "100", 50.0, True, None)
    ],
    *[
        (CRUST, crust_rows(2), {"endpoint": "contact", **fields}, None, "non-empty fields")
        for fields in NO_FIELDS
    ],
    # influencers.club
    (CLUB, emails(2), {}, None, "options must name an enrichment_mode: one of raw, full, "),
    (CLUB, emails(2), {"enrichment_mode": "deluxe"}, None, "got 'deluxe'"),
    (CLUB, emails(2), {**BASIC, "platform": "myspace"}, None, "platform must be one of "),
    (
        CLUB,
        [{"email": "a@b.co"}, {"handle": "ada"}],
        BASIC,
        None,
        "the upload takes exactly one column (handle or email); the input has email, handle",
    ),
    (CLUB, blank(emails(4), 2, "email"), BASIC, 2, "email is empty"),
    (
        CLUB,
        [*emails(2), {"email": "x" * MAX_UPLOAD_BYTES}],
        BASIC,
        3,
        "the value alone exceeds the 10 MB upload limit",
    ),
    # Reprompt
    (
        REPROMPT,
        [{"place_id": "p", "name": "n", "full_address": "a"}],
        {},
        None,
        "the input lacks the columns latitude, longitude; "
        "Reprompt takes place_id,name,full_address,latitude,longitude",
    ),
    (REPROMPT, blank(places(3), 2, "place_id"), {}, 2, "place_id is empty"),
    (
        REPROMPT,
        [*places(4), places(2)[1]],
        {},
        5,
        "place_id 'store_000001' repeats row 2",
    ),
    (
        REPROMPT,
        [*places(16), {**places(17)[16], "latitude": "abc"}],
        {},
        17,
        "latitude 'abc' is not a number",
    ),
    (REPROMPT, [{**places(1)[0], "latitude": "nan"}], {}, 1, "latitude 'nan' is not a number"),
    (REPROMPT, [{**places(1)[0], "latitude": "90.5"}], {}, 1, "outside -90..90"),
    (REPROMPT, [{**places(1)[0], "longitude": "-180.01"}], {}, 1, "outside -180..180"),
    (REPROMPT, [{**places(1)[0], "longitude": "inf"}], {}, 1, "outside -180..180"),
    (
        REPROMPT,
        places(2),
        {"attribute_set": "core", "attributes": ["websites"]},
        None,
        "give attribute_set or attributes, not both",
    ),
    # BrightLocal: what the add-job path in use requires, from the row or the options.
    (BRIGHT, blank(review_rows(3), 2, "profile-url"), {}, 2, "profile-url is empty"),
    (BRIGHT, [{"profile-url": "https://maps.example.com/1"}], {}, 1, "country is empty"),
    (
        BRIGHT,
        [{"website-url": "acme.com"}, {"website-url": ""}],
        {"job_path": "/v4/seo/offsite"},
        2,
        "website-url is empty",
    ),
    (
        BRIGHT,
        [{"business-names": "Acme", "city": "New York", "postcode": "10019", "country": "USA"}],
        {"job_path": "/v4/ld/fetch-reviews-by-business-data"},
        1,
        "local-directory is empty",
    ),
    (BRIGHT, review_rows(1), {"job_path": "/v3/ld/fetch-reviews"}, None, "a /v4/ add-job path"),
    # eCore
    (ECORE, contacts(2), {"category": "people"}, None, "one of contact, account; got 'people'"),
    (ECORE, [*contacts(1), {"first_name": " ", "last_name": ""}], {}, 2, "every value is empty"),
]


@pytest.mark.parametrize(
    ("vendor", "rows", "options", "row", "message"),
    REFUSED,
    ids=[f"{case[0].value}-{case[4][:40]}" for case in REFUSED],
)
async def test_bad_input_is_refused_before_any_request(
    adapter, sim, vendor, rows, options, row, message
):
    request = SubmitRequest(rows=rows, options=options)
    subject = adapter(vendor)

    with pytest.raises(InputError) as checked:
        subject.validate(request)
    with pytest.raises(InputError) as submitted:
        await subject.submit(request)

    for caught in (checked.value, submitted.value):
        assert message in caught.message
        assert caught.row == row
        assert caught.vendor == vendor.value
        where = f"row {row}: " if row is not None else ""
        assert str(caught).startswith(f"{vendor.value}: {where}")
    assert sim.stats.count() == 0


def test_messages_read_plainly(adapter):
    with pytest.raises(InputError) as caught:
        adapter(REPROMPT).validate(
            SubmitRequest(rows=[*places(16), {**places(17)[16], "latitude": "abc"}])
        )
    assert str(caught.value) == "reprompt: row 17: latitude 'abc' is not a number"


ACCEPTED: list[tuple[VendorName, list[dict[str, str]], dict[str, Any]]] = [
    (CRUST, crust_rows(2), {"chunk_size": 10}),
    (CRUST, crust_rows(2), {"chunk_size": 1000}),
    (CRUST, crust_rows(2), {"endpoint": "contact", "fields": "business_email"}),
    (CRUST, [{PROFILE: "https://www.linkedin.com/in/a", "note": "extra columns ride along"}], {}),
    (CLUB, [{"handle": "ada"}], {"enrichment_mode": "raw", "platform": "instagram"}),
    (
        REPROMPT,
        [
            {**places(1)[0], "latitude": "-90", "longitude": "180"},
            {**places(2)[1], "latitude": "", "longitude": " "},
        ],
        {"attribute_set": "core", "attributes": None},
    ),
    (BRIGHT, [{"profile-url": "https://maps.example.com/1"}], {"country": "USA"}),
    (BRIGHT, [{"anything": "x"}], {"job_path": "/v4/rankings/search"}),
    (ECORE, [{"company_name": "Acme", "website": ""}], {"category": "account"}),
]


@pytest.mark.parametrize(("vendor", "rows", "options"), ACCEPTED)
def test_inputs_at_the_edges_of_the_rules_pass(adapter, vendor, rows, options):
    adapter(vendor).validate(SubmitRequest(rows=rows, options=options))


@pytest.mark.parametrize(
    ("endpoint", "column", "cap"),
    [
        ({}, PROFILE, 10_000),
        ({"endpoint": "company"}, "domains", 10_000),
        (CONTACT, PROFILE, 300),
    ],
)
@pytest.mark.parametrize("extra", [0, 1])
def test_crustdata_splits_at_the_endpoint_cap(adapter, endpoint, column, cap, extra):
    rows = [{column: f"id-{i}"} for i in range(cap + extra)]
    request = SubmitRequest(rows=rows, options=endpoint, callback_url="http://h/hook")

    parts = adapter(CRUST).split(request)

    assert [len(part.rows) for part in parts] == [cap, 1][: 1 + extra]
    assert [row for part in parts for row in part.rows] == rows
    assert all(part.options == endpoint for part in parts)
    assert all(part.callback_url == "http://h/hook" for part in parts)


@pytest.mark.parametrize(("extra", "sizes"), [(0, [160]), (1, [159, 1])])
def test_influencers_club_splits_at_ten_megabytes_of_csv(adapter, extra, sizes):
    rows = upload_rows(MAX_UPLOAD_BYTES + extra)
    assert len("email\n") + sum(len(r["email"]) + 1 for r in rows) == MAX_UPLOAD_BYTES + extra
    club = adapter(CLUB)
    request = SubmitRequest(rows=rows, options=BASIC)
    club.validate(request)

    parts = club.split(request)

    assert [len(part.rows) for part in parts] == sizes
    assert [row for part in parts for row in part.rows] == rows


@pytest.mark.parametrize(
    ("count", "sizes"),
    [(MAX_PLACES, [MAX_PLACES]), (MAX_PLACES + 1, [MAX_PLACES, 1])],
)
def test_reprompt_splits_at_fifty_thousand_places(adapter, count, sizes):
    request = SubmitRequest(rows=places(count), name="run", options={"batch_id": "run"})

    parts = adapter(REPROMPT).split(request)

    assert [len(part.rows) for part in parts] == sizes
    if len(parts) == 1:
        assert (parts[0].options["batch_id"], parts[0].name) == ("run", "run")
    else:
        assert [p.options["batch_id"] for p in parts] == ["run-1", "run-2"]
        assert [p.name for p in parts] == ["run (1/2)", "run (2/2)"]


def test_reprompt_120000_places_are_three_named_batches(adapter):
    request = SubmitRequest(
        rows=places(120_000), name="big", options={"batch_id": "big", "attribute_set": "core"}
    )

    parts = adapter(REPROMPT).split(request)

    assert [len(p.rows) for p in parts] == [50_000, 50_000, 20_000]
    assert [p.options["batch_id"] for p in parts] == ["big-1", "big-2", "big-3"]
    assert [p.name for p in parts] == ["big (1/3)", "big (2/3)", "big (3/3)"]
    assert all(p.options["attribute_set"] == "core" for p in parts)
    assert request.options == {"batch_id": "big", "attribute_set": "core"}, "input untouched"


def test_reprompt_parts_without_a_batch_id_get_their_own_for_good(adapter):
    reprompt = adapter(REPROMPT)
    request = SubmitRequest(rows=places(120_000))

    parts = reprompt.split(request)

    ids = [p.options["batch_id"] for p in parts]
    assert len(set(ids)) == 3
    assert [p.name for p in parts] == [f"enrichwatch ({n}/3)" for n in (1, 2, 3)]
    assert "batch_id" not in request.options
    # A retried part keeps its id (and name), so the retry can find what the first try made.
    for part, batch_id in zip(parts, ids, strict=True):
        [again] = reprompt.split(part)
        assert (again.options["batch_id"], again.name) == (batch_id, part.name)


@pytest.mark.parametrize("vendor", [BRIGHT, ECORE])
def test_vendors_without_a_documented_cap_make_one_part(adapter, vendor):
    rows = review_rows(500) if vendor is BRIGHT else contacts(500)
    request = SubmitRequest(rows=rows, options={"x": 1}, callback_url="http://h/hook")

    [part] = adapter(vendor).split(request)

    assert (part.rows, part.options, part.callback_url) == (rows, {"x": 1}, "http://h/hook")


def jobs_at(sim: Any, vendor: VendorName) -> dict[Any, Any]:
    """The simulator's record of the jobs a vendor holds."""
    stores = {
        CRUST: sim.crustdata.jobs,
        CLUB: sim.influencers_club.batches,
        REPROMPT: sim.reprompt.batches,
        BRIGHT: sim.brightlocal.batches,
        ECORE: sim.ecore.jobs,
    }
    return dict(stores[vendor])


def held_rows(sim: Any, vendor: VendorName, key: Any) -> int:
    """How many input rows the vendor holds for one job."""
    if vendor is CRUST:
        return len(sim.crustdata.jobs[key].identifiers)
    if vendor is CLUB:
        return len(sim.influencers_club.batches[key].inputs)
    if vendor is REPROMPT:
        return len(sim.reprompt.batches[key].place_ids)
    if vendor is BRIGHT:
        return len(sim.brightlocal.batches[key].jobs)
    return len(sim.ecore.jobs[key].rows)


@pytest.mark.parametrize(
    ("vendor", "request_", "count"),
    [
        (CRUST, SubmitRequest(rows=crust_rows(301), options=CONTACT), 2),
        (CLUB, SubmitRequest(rows=upload_rows(MAX_UPLOAD_BYTES + 1), options=BASIC), 2),
        (REPROMPT, SubmitRequest(rows=places(120_000), name="big"), 3),
        (BRIGHT, SubmitRequest(rows=review_rows(3)), 1),
        (ECORE, SubmitRequest(rows=contacts(3)), 1),
    ],
    ids=lambda value: value.value if isinstance(value, VendorName) else "",
)
async def test_each_part_from_split_is_exactly_one_job(adapter, sim, vendor, request_, count):
    subject = adapter(vendor)
    subject.validate(request_)
    parts = subject.split(request_)
    assert len(parts) == count

    for n, part in enumerate(parts, 1):
        part.callback_url = f"http://127.0.0.1:9/hooks/{vendor.value}/part-{n}"
        before = jobs_at(sim, vendor)

        [job] = await subject.submit(part)

        new = set(jobs_at(sim, vendor)) - set(before)
        assert len(new) == 1, f"part {n} made {len(new)} jobs"
        [key] = new
        assert str(key[1] if vendor is REPROMPT else key) == job.vendor_job_id
        assert held_rows(sim, vendor, key) == len(part.rows)
    if vendor is CRUST:
        hooks = sorted(held.webhook_url for held in sim.crustdata.jobs.values())
        assert hooks == [f"http://127.0.0.1:9/hooks/crustdata/part-{n}" for n in (1, 2)]
