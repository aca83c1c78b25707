"""The JSON API: tracking jobs and reading them back, and refusing bad input unchanged."""

from __future__ import annotations

import io
import time
from datetime import datetime

import pytest

from tests.conftest import snapshot, track


async def test_track_returns_the_job_with_its_callback_url(server, http, auth):
    async with http.post(
        f"{server}/api/jobs",
        json={"vendor": "reprompt", "vendor_job_id": "batch-42", "name": "stores"},
        headers=auth,
    ) as response:
        assert response.status == 201
        job = await response.json()
    assert job["vendor"] == "reprompt"
    assert job["vendor_job_id"] == "batch-42"
    assert job["name"] == "stores"
    assert job["state"] == "submitted"
    assert job["progress"] == {"done": None, "failed": None, "total": None}
    assert job["vendor_calls"] == 0
    assert job["created_at"].endswith("Z")
    prefix = f"{server}/hooks/reprompt/"
    assert job["callback_url"].startswith(prefix)
    assert len(job["callback_url"][len(prefix) :]) >= 22  # >= 128 bits of url-safe base64


async def test_tracking_the_same_vendor_job_twice_returns_the_existing_job(server, http, auth):
    first = await track(http, server, "ecore", "j-1")
    async with http.post(
        f"{server}/api/jobs", json={"vendor": "ecore", "vendor_job_id": "j-1"}, headers=auth
    ) as response:
        assert response.status == 200
        again = await response.json()
    assert again["id"] == first["id"]
    assert again["callback_url"] == first["callback_url"]
    async with http.get(f"{server}/api/jobs/{first['id']}/events", headers=auth) as response:
        events = (await response.json())["events"]
    assert [event["type"] for event in events] == ["job.tracked"]


async def test_same_vendor_job_id_at_two_vendors_is_two_jobs(server, http):
    a = await track(http, server, "ecore", "same")
    b = await track(http, server, "crustdata", "same")
    assert a["id"] != b["id"]
    assert a["callback_url"] != b["callback_url"]


async def test_list_filters_and_paginates(server, http, auth):
    for n in range(5):
        await track(http, server, "crustdata", f"c-{n}")
    await track(http, server, "ecore", "e-1")

    async with http.get(f"{server}/api/jobs?vendor=crustdata&limit=2", headers=auth) as response:
        page1 = await response.json()
    assert [job["vendor_job_id"] for job in page1["jobs"]] == ["c-4", "c-3"]
    async with http.get(
        f"{server}/api/jobs?vendor=crustdata&limit=2&cursor={page1['next_cursor']}", headers=auth
    ) as response:
        page2 = await response.json()
    assert [job["vendor_job_id"] for job in page2["jobs"]] == ["c-2", "c-1"]
    async with http.get(f"{server}/api/jobs?state=submitted&limit=50", headers=auth) as response:
        everything = await response.json()
    assert len(everything["jobs"]) == 6
    assert everything["next_cursor"] is None


async def test_get_job_and_its_events(server, http, auth):
    job = await track(http, server)
    async with http.get(f"{server}/api/jobs/{job['id']}", headers=auth) as response:
        assert response.status == 200
        assert (await response.json())["id"] == job["id"]
    async with http.get(f"{server}/api/jobs/{job['id']}/events", headers=auth) as response:
        events = await response.json()
    assert events["events"][0]["type"] == "job.tracked"
    assert events["events"][0]["source"] == "api"
    assert events["events"][0]["payload"]["vendor_job_id"] == job["vendor_job_id"]


@pytest.mark.parametrize("path", ["/api/jobs/999", "/api/jobs/abc", "/api/jobs/999/events"])
async def test_unknown_job_is_404_json(server, http, auth, path):
    async with http.get(server + path, headers=auth) as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"


async def test_checking_a_vendor_makes_its_open_jobs_due_and_an_unknown_one_is_404(
    settings, server, http, auth
):
    ecore = [await track(http, server, "ecore", f"e-{n}") for n in (1, 2)]
    await track(http, server, "reprompt", "r-1")
    before = snapshot(settings.db)
    async with http.post(server + "/api/vendors/nope/check", headers=auth) as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"
    assert snapshot(settings.db) == before

    async with http.post(server + "/api/vendors/ecore/check", headers=auth) as response:
        assert response.status == 202
        answered = (await response.json())["jobs"]
    assert [job["id"] for job in answered] == [job["id"] for job in ecore]
    for job in answered:
        due = datetime.fromisoformat(job["next_check_at"]).timestamp()
        assert due <= time.time()
        async with http.get(f"{server}/api/jobs/{job['id']}/events", headers=auth) as response:
            events = (await response.json())["events"]
        assert events[-1]["type"] == "job.check_requested"
        assert events[-1]["payload"] == {"scope": "vendor"}


CHALLENGE = 'Bearer realm="enrichwatch"'


@pytest.mark.parametrize(
    ("headers", "challenge"),
    [
        ({}, CHALLENGE),
        ({"Authorization": "Bearer wrong"}, CHALLENGE + ', error="invalid_token"'),
        ({"Authorization": "Bearer "}, CHALLENGE),
        ({"Authorization": "Basic dGVzdA=="}, CHALLENGE),
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/jobs"),
        ("POST", "/api/jobs"),
        ("GET", "/api/jobs/1"),
        ("POST", "/api/vendors/ecore/check"),
    ],
)
async def test_api_without_the_token_is_401_with_a_bearer_challenge_and_changes_nothing(
    settings, server, http, headers, challenge, method, path
):
    """RFC 6750: the 401 names the Bearer scheme, and says `invalid_token` only when a bearer
    token was sent (none, or another scheme, is a request without credentials)."""
    before = snapshot(settings.db)
    async with http.request(
        method, server + path, json={"vendor": "ecore", "vendor_job_id": "x"}, headers=headers
    ) as response:
        assert response.status == 401
        assert response.headers.getall("WWW-Authenticate") == [challenge]
        assert (await response.json())["error"]["code"] == "unauthorized"
    assert snapshot(settings.db) == before


async def test_the_dashboards_401_has_no_bearer_challenge(server, http):
    """The dashboard logs in with a form and a cookie, not a bearer token."""
    async with http.get(f"{server}/dashboard/jobs") as response:
        assert response.status == 401
        assert "WWW-Authenticate" not in response.headers


@pytest.mark.parametrize(
    ("body", "status", "fields"),
    [
        (b"{not json", 400, None),
        (b'{"vendor": "nope", "vendor_job_id": "1"}', 422, ["vendor"]),
        (b'{"vendor": "ecore"}', 422, ["body"]),
        (
            b'{"vendor": "ecore", "vendor_job_id": "1", "submit": {"rows": [{"a": "b"}]}}',
            422,
            ["body"],
        ),
        (b'{"vendor": "ecore", "submit": {"rows": []}}', 422, ["submit.rows"]),
        (b'{"vendor": "ecore", "vendor_job_id": "   "}', 422, ["vendor_job_id"]),
        (b'{"vendor": "ecore", "vendor_job_id": "a\\u0000b"}', 422, ["vendor_job_id"]),
        (b'{"vendor": "ecore", "vendor_job_id": "a\\nb/../x"}', 422, ["vendor_job_id"]),
        (b'{"vendor": "ecore", "vendor_job_id": "' + b"x" * 201 + b'"}', 422, ["vendor_job_id"]),
        (b'{"vendor": "ecore", "vendor_job_id": "1", "colour": "red"}', 422, ["colour"]),
        (b'["a list"]', 422, ["body"]),
    ],
)
async def test_invalid_track_request_names_the_field_and_changes_nothing(
    settings, server, http, auth, body, status, fields
):
    before = snapshot(settings.db)
    async with http.post(
        f"{server}/api/jobs", data=body, headers={**auth, "Content-Type": "application/json"}
    ) as response:
        assert response.status == status
        error = (await response.json())["error"]
    if fields is not None:
        assert [field["field"] for field in error["fields"]] == fields
    assert snapshot(settings.db) == before


@pytest.mark.parametrize(
    ("path", "body", "problems"),
    [
        ("/api/jobs", b'["a list"]', {"body": "the body must be a JSON object"}),
        ("/api/jobs", b'"text"', {"body": "the body must be a JSON object"}),
        ("/api/jobs", b"null", {"body": "the body must be a JSON object"}),
        (
            "/api/jobs",
            b'{"vendor": "ecore", "vendor_job_id": "   "}',
            {"vendor_job_id": "must not be blank"},
        ),
        (
            "/api/jobs",
            b'{"vendor": "ecore", "submit": [1]}',
            {"submit": "must be a JSON object"},
        ),
        (
            "/api/jobs",
            b'{"vendor": "ecore", "submit": {"rows": [["a"]]}}',
            {"submit.rows.0": "must be a JSON object"},
        ),
        (
            "/api/jobs",
            b'{"vendor": "ecore", "vendor_job_id": "1", "notify": 3}',
            {"notify": "must be a JSON object"},
        ),
        ("/api/jobs/1/reprocess", b"[1]", {"body": "the body must be a JSON object"}),
        (
            "/api/jobs/1/reprocess",
            b'{"attributes": ["a"], "attribute_set": "core"}',
            {"body": "give attribute_set or attributes, not both"},
        ),
    ],
)
async def test_field_messages_are_plain_english(settings, server, http, auth, path, body, problems):
    """What is wrong with each field, without pydantic's "Value error, " prefix or its
    "valid dictionary or instance of <class>"."""
    before = snapshot(settings.db)
    async with http.post(
        f"{server}{path}", data=body, headers={**auth, "Content-Type": "application/json"}
    ) as response:
        assert response.status == 422
        error = (await response.json())["error"]
    assert error["code"] == "invalid_request"
    assert {field["field"]: field["message"] for field in error["fields"]} == problems
    assert snapshot(settings.db) == before


@pytest.mark.parametrize("path", ["/api/jobs", "/api/jobs/1/reprocess"])
@pytest.mark.parametrize("chunked", [False, True])
async def test_a_body_over_the_limit_is_413_naming_the_limit(
    settings, server, http, auth, path, chunked
):
    """As a callback's is: the message says how many bytes a body may have."""
    await track(http, server, "reprompt", "r-1")
    before = snapshot(settings.db)
    too_big = b" " * (settings.max_body_bytes + 1)

    async def chunks():
        yield too_big

    async with http.post(
        f"{server}{path}",
        data=chunks() if chunked else io.BytesIO(too_big),
        headers={**auth, "Content-Type": "application/json"},
    ) as response:
        assert response.status == 413
        error = (await response.json())["error"]
    assert error["code"] == "payload_too_large"
    assert error["message"] == f"request body exceeds {settings.max_body_bytes} bytes"
    assert snapshot(settings.db) == before


async def test_rows_without_the_fields_a_vendor_needs_are_named_as_fields(
    settings, server, http, auth
):
    """Rows sent as JSON have no header: the refusal speaks of the input, not of a header."""
    before = snapshot(settings.db)
    rows = [{"place_id": "p-1", "name": "Shop", "full_address": "1 Main St"}]
    async with http.post(
        f"{server}/api/jobs",
        json={"vendor": "reprompt", "submit": {"rows": rows}},
        headers=auth,
    ) as response:
        assert response.status == 422
        error = (await response.json())["error"]
    assert error["code"] == "invalid_input"
    assert error["message"] == (
        "reprompt: the input lacks the columns latitude, longitude; "
        "Reprompt takes place_id,name,full_address,latitude,longitude"
    )
    assert "header" not in error["message"]
    assert snapshot(settings.db) == before


@pytest.mark.parametrize(
    ("path", "body", "headers", "code"),
    [
        ("/api/jobs", b"[" * 100_000, {}, "invalid_json"),
        (
            "/api/jobs",
            b'{"vendor": "ecore", "vendor_job_id": ' + b"9" * 5000 + b"}",
            {},
            "invalid_json",
        ),
        ("/api/jobs", b"{}", {"Content-Type": "application/json; charset=nope"}, "invalid_json"),
        ("/api/jobs", b"not gzip", {"Content-Encoding": "gzip"}, "invalid_body"),
        ("/api/jobs/1/reprocess", b"[" * 100_000, {}, "invalid_json"),
        ("/api/jobs/1/reprocess", b"not gzip", {"Content-Encoding": "gzip"}, "invalid_body"),
    ],
)
async def test_a_body_that_cannot_be_read_as_json_is_400_and_changes_nothing(
    settings, server, http, auth, path, body, headers, code
):
    """Nesting too deep, a number too long to parse, an unknown charset, or a body that does
    not match its Content-Encoding: each a 400 that says so, never a 500."""
    await track(http, server, "reprompt", "r-1")
    before = snapshot(settings.db)
    headers = {**auth, "Content-Type": "application/json", **headers}
    async with http.post(f"{server}{path}", data=body, headers=headers) as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == code
    assert snapshot(settings.db) == before


@pytest.mark.parametrize(
    ("query", "field"),
    [("vendor=nope", "vendor"), ("state=done", "state"), ("limit=0", "limit"), ("x=1", "x")],
)
async def test_invalid_list_filters_are_400_naming_the_field(server, http, auth, query, field):
    async with http.get(f"{server}/api/jobs?{query}", headers=auth) as response:
        assert response.status == 400
        assert [f["field"] for f in (await response.json())["error"]["fields"]] == [field]


async def test_unknown_route_and_wrong_method_are_json(server, http, auth):
    async with http.get(f"{server}/nowhere") as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"
    async with http.delete(f"{server}/api/jobs", headers=auth) as response:
        assert response.status == 405
        assert (await response.json())["error"]["code"] == "method_not_allowed"


def test_an_events_times_read_as_iso_as_every_other_time():
    """`retry_at` in `submit.queued` and `notification.failed` is stored as Unix seconds."""
    from enrichwatch.models import EventSource
    from enrichwatch.serialize import event_json
    from enrichwatch.store import EventRecord

    event = EventRecord(
        seq=1,
        job_id=1,
        type="submit.queued",
        source=EventSource.SYSTEM,
        payload={"reason": "cap", "retry_at": 1_800_000_000.5, "attempts": 2, "dead": False},
        created_at=1_800_000_000.0,
    )
    assert event_json(event)["payload"] == {
        "reason": "cap",
        "retry_at": "2027-01-15T08:00:00.500000Z",
        "attempts": 2,
        "dead": False,
    }


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("line1\nline2\u001b[31mred", "must not contain control characters"),
        ("   ", "must not be blank"),
    ],
)
async def test_a_job_name_that_would_garble_listings_is_a_422_naming_it(
    settings, server, http, auth, name, problem
):
    """As the CLI refuses it: a line break or escape sequence garbles every listing."""
    before = snapshot(settings.db)
    job = {"vendor": "ecore", "vendor_job_id": "e-1", "name": name}
    async with http.post(f"{server}/api/jobs", json=job, headers=auth) as response:
        assert response.status == 422
        (field,) = (await response.json())["error"]["fields"]
    assert field["field"] == "name"
    assert problem in field["message"]
    assert snapshot(settings.db) == before
