"""The dashboard's login over plain HTTP: who gets in, what the cookie is, and what a request
without it gets (a page: the login form; a fragment: a 401 its script can act on)."""

from __future__ import annotations

from http.cookies import SimpleCookie

import aiohttp
import pytest

from enrichwatch.config import load_settings
from enrichwatch.runtime import open_services
from receiver import serving
from receiver.dashboard.auth import COOKIE
from receiver.dashboard.views import EVENTS_SHOWN
from tests.conftest import API_TOKEN, snapshot, track

LOGGED_IN = {"Cookie": f"{COOKIE}={API_TOKEN}"}


def set_cookie(response: aiohttp.ClientResponse):
    cookies = SimpleCookie()
    for header in response.headers.getall("Set-Cookie", []):
        cookies.load(header)
    return cookies.get(COOKIE)


@pytest.mark.parametrize("path", ["/", "/jobs/1", "/vendors/crustdata", "/jobs/1/results"])
async def test_a_page_without_the_cookie_sends_to_the_login_form(server, http, path):
    async with http.get(f"{server}{path}", allow_redirects=False) as response:
        assert response.status == 303
        assert response.headers["Location"].startswith("/login?next=")
    async with http.get(f"{server}{path}") as response:  # and the form is there
        assert response.status == 200
        assert 'name="token"' in await response.text()


@pytest.mark.parametrize("path", ["/dashboard/jobs", "/dashboard/jobs/1"])
async def test_a_fragment_without_the_cookie_is_a_401_json(server, http, path):
    async with http.get(f"{server}{path}", allow_redirects=False) as response:
        assert response.status == 401
        body = await response.json()
    assert body["error"]["code"] == "unauthorized"


async def test_a_wrong_cookie_is_no_login(server, http):
    headers = {"Cookie": f"{COOKIE}=not-the-token"}
    async with http.get(f"{server}/", headers=headers, allow_redirects=False) as response:
        assert response.status == 303
    async with http.get(f"{server}/dashboard/jobs", headers=headers) as response:
        assert response.status == 401


async def test_a_wrong_token_is_refused_with_a_message_and_no_cookie(server, http, settings):
    before = snapshot(settings.db)
    async with http.post(
        f"{server}/login", data={"token": "wrong", "next": "/"}, allow_redirects=False
    ) as response:
        assert response.status == 401
        assert set_cookie(response) is None
        text = await response.text()
    assert "That is not the API token" in text
    assert 'role="alert"' in text
    async with http.post(
        f"{server}/login", data={"token": "  "}, allow_redirects=False
    ) as response:
        assert response.status == 401
        assert "Enter the API token" in await response.text()
    assert snapshot(settings.db) == before


async def test_the_right_token_sets_a_strict_httponly_cookie(server, http):
    async with http.post(
        f"{server}/login",
        data={"token": API_TOKEN, "next": "/vendors/ecore"},
        allow_redirects=False,
    ) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/vendors/ecore"
        cookie = set_cookie(response)
    assert cookie is not None
    assert cookie.value == API_TOKEN
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/"
    assert not cookie["secure"]  # served over http here
    async with http.get(f"{server}/", headers=LOGGED_IN, allow_redirects=False) as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    async with http.get(f"{server}/dashboard/jobs", headers=LOGGED_IN) as response:
        assert response.status == 200


async def test_the_cookie_is_secure_when_the_public_url_is_https(tmp_path, http):
    settings = load_settings(
        db=tmp_path / "e.db", api_token=API_TOKEN, public_url="https://watch.example.com"
    )
    async with (
        open_services(settings) as services,
        serving(services, "127.0.0.1", 0) as url,
        http.post(f"{url}/login", data={"token": API_TOKEN}, allow_redirects=False) as response,
    ):
        assert response.status == 303
        cookie = set_cookie(response)
    assert cookie is not None
    assert cookie["secure"] is True


@pytest.mark.parametrize("target", ["//evil.example.com/", "https://evil.example.com/", "/\\x"])
async def test_after_login_only_paths_on_this_site_are_followed(server, http, target):
    async with http.post(
        f"{server}/login", data={"token": API_TOKEN, "next": target}, allow_redirects=False
    ) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/"


@pytest.mark.parametrize(
    ("query", "location"),
    [("?next=/jobs/3", "/jobs/3"), ("?next=%2F%3Fstate%3Dfailed", "/?state=failed"), ("", "/")],
)
async def test_the_login_form_sends_someone_logged_in_straight_on(server, http, query, location):
    """A bookmark or an old tab on the form, opened with the cookie still good, should not ask
    for the token again."""
    async with http.get(
        f"{server}/login{query}", headers=LOGGED_IN, allow_redirects=False
    ) as response:
        assert response.status == 303
        assert response.headers["Location"] == location
    async with http.get(f"{server}/login{query}", allow_redirects=False) as response:
        assert response.status == 200  # without it, the form
        assert 'name="token"' in await response.text()


async def test_logout_clears_the_cookie(server, http):
    async with http.post(f"{server}/logout", headers=LOGGED_IN, allow_redirects=False) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/login"
        cookie = set_cookie(response)
    assert cookie is not None
    assert cookie.value == ""
    assert cookie["max-age"] == "0"


async def test_no_configured_token_means_no_login(tmp_path, http):
    settings = load_settings(db=tmp_path / "e.db")
    async with (
        open_services(settings) as services,
        serving(services, "127.0.0.1", 0) as url,
        http.post(f"{url}/login", data={"token": "anything"}, allow_redirects=False) as response,
    ):
        assert response.status == 401
        assert "No API token is configured" in await response.text()


async def test_unknown_things_are_pages_that_say_so(server, http):
    cases = {
        "/jobs/999": (404, "There is no job 999"),
        "/jobs/abc": (404, "There is no job abc"),
        "/jobs/99999999999999999999999": (404, "There is no job 9999"),
        "/jobs/%D9%A1": (404, "There is no job"),
        "/vendors/acme": (404, "There is no vendor"),
        "/?state=lost": (400, "No such filter"),
    }
    for path, (status, message) in cases.items():
        async with http.get(f"{server}{path}", headers=LOGGED_IN) as response:
            assert response.status == status, path
            assert response.content_type == "text/html"
            assert message in await response.text()


async def test_results_download_with_the_cookie(server, http):
    job = await track(http, server)
    async with http.get(
        f"{server}/jobs/{job['id']}/results?format=csv", headers=LOGGED_IN
    ) as response:
        assert response.status == 200
        assert response.content_type == "text/csv"
        assert response.headers["Content-Disposition"] == (
            f'attachment; filename="job-{job["id"]}.csv"'
        )
        assert (await response.text()).startswith("position,input_id,status,data")
    async with http.get(
        f"{server}/jobs/{job['id']}/results?format=xml", headers=LOGGED_IN
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "invalid_request"


async def test_the_cookie_does_not_open_the_api(server, http):
    async with http.get(f"{server}/api/jobs", headers=LOGGED_IN) as response:
        assert response.status == 401


async def test_fragment_errors_are_json(server, http):
    cases = {
        "/dashboard/jobs/999": (404, "not_found"),
        "/dashboard/jobs?vendor=acme": (400, "invalid_request"),
    }
    for path, (status, code) in cases.items():
        async with http.get(f"{server}{path}", headers=LOGGED_IN) as response:
            assert response.status == status, path
            assert (await response.json())["error"]["code"] == code


async def test_a_token_with_awkward_characters_survives_the_cookie(tmp_path, http):
    token = 'a token; with "quotes", commas\\ and spaces'
    settings = load_settings(db=tmp_path / "e.db", api_token=token)
    async with open_services(settings) as services, serving(services, "127.0.0.1", 0) as url:
        async with http.post(
            f"{url}/login", data={"token": token}, allow_redirects=False
        ) as response:
            assert response.status == 303
            cookie = set_cookie(response)
        assert cookie is not None
        assert cookie.value == token
        # Sent back as a browser does: the value exactly as it was set.
        sent = {"Cookie": f"{COOKIE}={cookie.coded_value}"}
        async with http.get(f"{url}/", headers=sent, allow_redirects=False) as response:
            assert response.status == 200


async def test_a_long_timeline_shows_its_latest_events(server, http, auth):
    job = await track(http, server)
    for _ in range(EVENTS_SHOWN + 1):  # one event each, after the job.tracked event
        async with http.post(f"{server}/api/jobs/{job['id']}/check", headers=auth) as response:
            assert response.status == 202
    async with http.get(f"{server}/jobs/{job['id']}", headers=LOGGED_IN) as response:
        text = await response.text()
    assert f"The latest {EVENTS_SHOWN} of {EVENTS_SHOWN + 2} events" in text
    assert "job.tracked" not in text  # the oldest is the one left out
    assert text.count("job.check_requested") == EVENTS_SHOWN
