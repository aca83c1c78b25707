"""Bad input on the receiver's dashboard and callback surfaces, sent as raw bytes over a real
socket: each gets a clear answer (a JSON error, or the dashboard's own page) and changes
nothing, never a 500 or a dropped connection."""

from __future__ import annotations

import asyncio
import json
import re
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from html import unescape
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from enrichwatch.callbacks import sign_crustdata
from enrichwatch.config import load_settings
from enrichwatch.runtime import open_services
from receiver import serving
from receiver.dashboard import STATIC
from receiver.dashboard.auth import COOKIE
from tests.conftest import API_TOKEN, snapshot, track

WEBHOOK_SECRET = "whsec-crustdata-test"


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.all(name)
        assert len(values) <= 1, values
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def json(self) -> Any:
        assert self.header("Content-Type") == "application/json; charset=utf-8", self.headers
        return json.loads(self.body)

    def text(self) -> str:
        return self.body.decode()


async def send(
    base_url: str,
    method: str,
    target: str,
    headers: Sequence[tuple[str, bytes]] = (),
    body: bytes = b"",
) -> Answer:
    """One request written byte for byte (header values are sent exactly as given, so they
    can hold bytes no HTTP client would send); the connection is closed after the answer."""
    url = urlsplit(base_url)
    assert url.hostname is not None
    assert url.port is not None
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        lines = [f"{method} {target} HTTP/1.1".encode(), f"Host: {url.netloc}".encode()]
        lines += [name.encode() + b": " + value for name, value in headers]
        lines += [f"Content-Length: {len(body)}".encode(), b"Connection: close"]
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout=30)
    finally:
        writer.close()
    assert raw, "the server closed the connection without answering"
    head, _, rest = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = [tuple(line.split(":", 1)) for line in header_lines]
    answer_headers = [(name.strip(), value.strip()) for name, value in parsed]
    length = [int(value) for name, value in answer_headers if name.lower() == "content-length"]
    assert length, answer_headers
    assert len(rest) == length[0], "the answer was cut short"
    return Answer(int(status_line.split(" ")[1]), answer_headers, rest)


def form(**fields: bytes) -> tuple[list[tuple[str, bytes]], bytes]:
    """A login form body; values are already URL-encoded, so bad encodings can be sent."""
    body = b"&".join(name.encode() + b"=" + value for name, value in fields.items())
    return [("Content-Type", b"application/x-www-form-urlencoded")], body


def hidden_next(page: str) -> str:
    match = re.search(r'<input type="hidden" name="next" value="([^"]*)">', page)
    assert match, page
    return unescape(match.group(1))


# -- 1, 2: after login, only a plain path on this site -------------------------------------------

# As they arrive URL-encoded in the form or the query string.
HOSTILE_NEXT = [
    b"/%09/evil.example.com",  # tab, which browsers drop: //evil.example.com
    b"/%0a/evil.example.com",
    b"/%0d/evil.example.com",
    b"/%0d%0aSet-Cookie:x=y",  # header injection
    b"/%5cevil.example.com",  # /\evil.example.com
    b"/%5c/evil.example.com",
    b"//evil.example.com",
    b"/%2f/evil.example.com",  # decodes to //evil.example.com
    b"%20%20//evil.example.com",
    b"%20/evil.example.com",
    b"/%00/evil.example.com",
    b"/%7f/evil.example.com",
    b"/%C2%A0/evil.example.com",  # no-break space
    b"/%E2%80%A8/evil.example.com",  # line separator
    b"https://evil.example.com/",
    b"/jobs/1%20x",
]


@pytest.mark.parametrize("target", HOSTILE_NEXT)
async def test_login_never_redirects_off_a_plain_local_path(settings, server, target):
    before = snapshot(settings.db)
    headers, body = form(token=API_TOKEN.encode(), next=target)

    answer = await send(server, "POST", "/login", headers, body)

    assert answer.status == 303
    assert answer.all("Location") == ["/"]
    assert all("x=y" not in cookie for cookie in answer.all("Set-Cookie"))
    assert snapshot(settings.db) == before


@pytest.mark.parametrize("target", HOSTILE_NEXT)
async def test_the_login_form_never_carries_a_hostile_next(settings, server, target):
    before = snapshot(settings.db)

    answer = await send(server, "GET", "/login?next=" + target.decode())

    assert answer.status == 200
    assert hidden_next(answer.text()) == "/"
    assert snapshot(settings.db) == before


@pytest.mark.parametrize("target", HOSTILE_NEXT)
async def test_the_form_opened_logged_in_never_redirects_off_a_plain_local_path(
    settings, server, target
):
    """Someone logged in who opens the form is sent straight on to its `next`: a link to the
    form is as good a way to send a logged-in browser elsewhere as the form itself."""
    before = snapshot(settings.db)
    logged_in = [("Cookie", COOKIE.encode() + b"=" + API_TOKEN.encode())]

    answer = await send(server, "GET", "/login?next=" + target.decode(), logged_in)

    assert answer.status == 303
    assert answer.all("Location") == ["/"]
    assert snapshot(settings.db) == before


@pytest.mark.parametrize(
    ("target", "location"),
    [
        (b"/vendors/ecore", "/vendors/ecore"),
        (b"%2F%3Fvendor%3Dcrustdata%26state%3Dfailed", "/?vendor=crustdata&state=failed"),
        (b"/jobs/12", "/jobs/12"),
        (b"/jobs/%2512", "/jobs/%12"),
    ],
)
async def test_login_still_goes_back_to_a_plain_local_path(server, target, location):
    headers, body = form(token=API_TOKEN.encode(), next=target)
    answer = await send(server, "POST", "/login", headers, body)
    assert answer.status == 303
    assert answer.all("Location") == [location]


async def test_a_page_with_encoded_characters_is_still_reached_after_login(settings, server):
    before = snapshot(settings.db)
    sent = await send(server, "GET", "/jobs/%D9%A1?x=a%20b")
    location = sent.header("Location") or ""
    assert sent.status == 303
    assert location.startswith("/login?next=")

    form_page = await send(server, "GET", location)
    target = hidden_next(form_page.text())
    headers, body = form(token=API_TOKEN.encode(), next=quote(target, safe="").encode())
    answer = await send(server, "POST", "/login", headers, body)

    assert answer.status == 303
    assert answer.all("Location") == ["/jobs/%D9%A1?x=a%20b"]
    assert snapshot(settings.db) == before


# -- 3: Crustdata's signature header, whatever bytes it holds -------------------------------------


@pytest.fixture
def signed_settings(tmp_path):
    return load_settings(
        db=tmp_path / "signed.db",
        api_token=API_TOKEN,
        crustdata={"webhook_secret": WEBHOOK_SECRET},
    )


@pytest.fixture
async def signed_server(signed_settings):
    async with (
        open_services(signed_settings) as services,
        serving(services, "127.0.0.1", 0) as url,
    ):
        yield services, url


def _now() -> bytes:
    return str(int(time.time())).encode()


@pytest.mark.parametrize(
    ("make_header", "reason"),
    [
        (lambda: b"t=\xc2\xb2,v1=abc", "malformed_signature"),  # superscript two: isdigit()
        (lambda: "t=\u0661\u0667\u0660\u0660,v1=abc".encode(), "malformed_signature"),
        (lambda: b"t=" + b"9" * 5000 + b",v1=abc", "malformed_signature"),  # past int()'s limit
        (lambda: b"t=\xe9,v1=abc", "malformed_signature"),
        (lambda: b"t=" + _now() + b",v1=\xc3\xa9", "bad_signature"),  # UTF-8 é
        (lambda: b"t=" + _now() + b",v1=\xe9", "bad_signature"),  # a raw Latin-1 byte
        (lambda: b"t=" + _now() + b",v1=\xe9,v1=abc", "bad_signature"),
    ],
)
async def test_crustdata_signature_with_odd_bytes_is_401_and_stores_nothing(
    signed_settings, signed_server, http, make_header, reason
):
    services, url = signed_server
    job = await track(http, url)
    before = snapshot(signed_settings.db)
    path = urlsplit(job["callback_url"]).path

    answer = await send(
        url, "POST", path, [("x-crustdata-signature", make_header())], b'{"batch_id": "b-1"}'
    )

    assert answer.status == 401
    error = answer.json()["error"]
    assert (error["code"], error["reason"]) == ("bad_signature", reason)
    assert snapshot(signed_settings.db) == before
    assert services.metrics.callback_rejections.labels("crustdata", reason)._value.get() == 1


async def test_a_good_signature_beside_an_odd_one_is_verified(signed_server, http):
    services, url = signed_server
    job = await track(http, url)
    body = b'{"batch_id": "b-1"}'
    timestamp, good = sign_crustdata(body, WEBHOOK_SECRET, int(time.time())).split(",")
    header = f"{timestamp},v1=".encode() + b"\xe9," + good.encode()  # the odd one first

    answer = await send(
        url, "POST", urlsplit(job["callback_url"]).path, [("x-crustdata-signature", header)], body
    )

    assert answer.status == 200, answer.body
    (row,) = await services.store.list_inbox(job["id"])
    assert row.verification == "verified"


# -- 4: credentials that are not UTF-8 ------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization", [b"Bearer \xe9\xe9", b"Bearer \xff", b"\xe9 \xe9", b"Bearer \xc3\xa9"]
)
async def test_a_bearer_token_that_is_not_utf8_is_401(settings, server, authorization):
    before = snapshot(settings.db)

    answer = await send(server, "GET", "/api/jobs", [("Authorization", authorization)])

    assert answer.status == 401
    assert answer.json()["error"]["code"] == "unauthorized"
    invalid = ', error="invalid_token"' if authorization.startswith(b"Bearer ") else ""
    assert answer.all("WWW-Authenticate") == ['Bearer realm="enrichwatch"' + invalid]
    assert snapshot(settings.db) == before


@pytest.mark.parametrize("cookie", [b"\xe9", b"\xff\xfe", b"\xc3\xa9"])
@pytest.mark.parametrize("path", ["/", "/jobs/1", "/vendors/crustdata", "/jobs/1/results"])
async def test_a_page_with_a_cookie_that_is_not_utf8_sends_to_the_login_form(
    settings, server, path, cookie
):
    before = snapshot(settings.db)

    answer = await send(server, "GET", path, [("Cookie", COOKIE.encode() + b"=" + cookie)])

    assert answer.status == 303
    assert (answer.header("Location") or "").startswith("/login?next=")
    assert snapshot(settings.db) == before


@pytest.mark.parametrize("cookie", [b"\xe9", b"\xff\xfe", b"\xc3\xa9"])
@pytest.mark.parametrize("path", ["/dashboard/jobs", "/dashboard/jobs/1"])
async def test_a_fragment_with_a_cookie_that_is_not_utf8_is_401(settings, server, path, cookie):
    before = snapshot(settings.db)

    answer = await send(server, "GET", path, [("Cookie", COOKIE.encode() + b"=" + cookie)])

    assert answer.status == 401
    assert answer.json()["error"]["code"] == "unauthorized"
    assert answer.all("WWW-Authenticate") == []
    assert snapshot(settings.db) == before


# -- 5: callback bodies that cannot be decoded ----------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        (b"deflate", b"xx"),
        (b"deflate", b"x\x9c" + b"\xff" * 40),  # a zlib header, then no valid stream
        (b"gzip", b"not gzip at all"),
    ],
)
async def test_a_callback_body_that_does_not_decode_is_400_and_stores_nothing(
    settings, services, server, http, encoding, body
):
    job = await track(http, server, vendor="brightlocal", vendor_job_id="17")
    before = snapshot(settings.db)
    headers = [("Content-Encoding", encoding), ("Content-Type", b"application/json")]

    answer = await send(server, "POST", urlsplit(job["callback_url"]).path, headers, body)

    assert answer.status == 400
    assert answer.json()["error"]["code"] == "bad_body"
    assert snapshot(settings.db) == before
    rejected = services.metrics.callback_rejections.labels("brightlocal", "bad_body")
    assert rejected._value.get() == 1


async def test_a_compressed_callback_that_decodes_is_stored(services, server, http):
    job = await track(http, server, vendor="brightlocal", vendor_job_id="17")
    body = b'{"status": "done"}'

    answer = await send(
        server,
        "POST",
        urlsplit(job["callback_url"]).path,
        [("Content-Encoding", b"deflate")],
        zlib.compress(body),
    )

    assert answer.status == 200, answer.body
    (row,) = await services.store.list_inbox(job["id"])
    assert row.body == body


async def test_callback_headers_that_are_not_utf8_are_stored_escaped(services, server, http):
    job = await track(http, server)
    path = urlsplit(job["callback_url"]).path
    headers = [
        ("x-crustdata-event-id", b"evt-\xe9"),
        ("Content-Type", b"application/json; charset=\xe9"),
        ("x-note", b"caf\xc3\xa9 \xff"),
    ]

    first = await send(server, "POST", path, headers, b'{"attempt": 1}')
    again = await send(server, "POST", path, headers, b'{"attempt": 2}')

    assert (first.status, again.status) == (200, 200), (first.body, again.body)
    assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)
    row, _ = await services.store.list_inbox(job["id"])
    assert row.content_type == "application/json; charset=\\xe9"
    assert row.headers["x-crustdata-event-id"] == "evt-\\xe9"
    assert row.headers["x-note"] == "caf\u00e9 \\xff"


# -- 6: login forms that cannot be read -----------------------------------------------------------


FORM = b"application/x-www-form-urlencoded"
MULTIPART = b"multipart/form-data; boundary=XYZ"


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ([("Content-Type", FORM)], b"token=\xff\xfe"),
        ([("Content-Type", FORM + b"; charset=nope")], b"token=abc"),
        ([("Content-Type", FORM), ("Content-Encoding", b"deflate")], b"xx"),
        ([("Content-Type", b"multipart/form-data")], b"token=abc"),
        ([("Content-Type", MULTIPART)], b"garbage"),
        (
            [("Content-Type", MULTIPART)],
            b'--XYZ\r\nContent-Disposition: form-data; name="token"\r\n\r\nabc',
        ),
        (
            [("Content-Type", MULTIPART)],
            b'--XYZ\r\nContent-Disposition: form-data; name="token"\r\n'
            b"Content-Type: text/plain; charset=nope\r\n\r\nabc\r\n--XYZ--\r\n",
        ),
        (
            [("Content-Type", MULTIPART)],
            b'--XYZ\r\nContent-Disposition: form-data; name="token"\r\n\r\n\xff\xfe\r\n--XYZ--\r\n',
        ),
        *[
            (
                [("Content-Type", MULTIPART)],
                b'--XYZ\r\nContent-Disposition: form-data; name="token"\r\n'
                + part_header
                + b"\r\n\r\nabc\r\n--XYZ--\r\n",
            )
            for part_header in [
                b"Content-Transfer-Encoding: bogus",
                b"Content-Transfer-Encoding: base64",
                b"\r\n".join(b"X-%d: y" % n for n in range(200)),
                b"Content-Type: multipart/mixed; boundary=ABC",
            ]
        ],
    ],
)
async def test_a_login_form_that_cannot_be_read_is_the_login_page_with_a_400(
    settings, server, headers, body
):
    before = snapshot(settings.db)

    answer = await send(server, "POST", "/login", headers, body)

    assert answer.status == 400
    assert (answer.header("Content-Type") or "").startswith("text/html")
    page = answer.text()
    assert 'name="token"' in page
    assert 'role="alert"' in page
    assert "could not be read" in page
    assert hidden_next(page) == "/"
    assert answer.all("Set-Cookie") == []
    assert snapshot(settings.db) == before


async def test_a_login_form_over_the_size_limit_is_the_login_page_with_a_413(settings, server):
    before = snapshot(settings.db)
    body = b"token=" + b"x" * settings.max_body_bytes

    answer = await send(server, "POST", "/login", [("Content-Type", FORM)], body)

    assert answer.status == 413
    assert (answer.header("Content-Type") or "").startswith("text/html")
    page = answer.text()
    assert 'name="token"' in page
    assert f"larger than {settings.max_body_bytes} bytes" in page
    assert answer.all("Set-Cookie") == []
    assert snapshot(settings.db) == before


async def test_a_multipart_login_form_still_logs_in(server):
    body = (
        b'--XYZ\r\nContent-Disposition: form-data; name="token"\r\n\r\n'
        + API_TOKEN.encode()
        + b'\r\n--XYZ\r\nContent-Disposition: form-data; name="next"\r\n\r\n/jobs/3\r\n--XYZ--\r\n'
    )
    answer = await send(server, "POST", "/login", [("Content-Type", MULTIPART)], body)
    assert answer.status == 303
    assert answer.all("Location") == ["/jobs/3"]


# -- 7: a missing static file ---------------------------------------------------------------------


BROWSER = b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
"""What a browser sends for a page it navigates to."""
NOT_FOR_HTML = [b"*/*", b"application/json", b"text/css,*/*;q=0.1", b"text/html;q=0"]
"""What a program sends, or a page's own request for its style sheet: no wish for HTML."""


@pytest.mark.parametrize(
    "path", ["/static/nope.css", "/static/", "/static/../pyproject.toml", "/static/%2e%2e/x"]
)
@pytest.mark.parametrize("accept", [None, *NOT_FOR_HTML])
async def test_a_missing_static_file_is_the_json_404(settings, server, path, accept):
    """A style sheet or script the page asks for and cannot have is an error for its
    script or the browser's console, not a page."""
    before = snapshot(settings.db)

    answer = await send(server, "GET", path, [] if accept is None else [("Accept", accept)])

    assert answer.status == 404
    assert answer.json()["error"]["code"] == "not_found"
    assert snapshot(settings.db) == before


# -- 8: paths that lead nowhere -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/nope", "There is no page at /nope."),
        ("/static/missing.css", "There is no page at /static/missing.css."),
        ("/jobs/1/events", "There is no page at /jobs/1/events."),
        ("/jobs/1/x/", "There is no page at /jobs/1/x/."),
        ("//evil.example.com/", "There is no page at //evil.example.com/."),
    ],
)
async def test_a_browser_is_shown_the_page_for_a_path_that_leads_nowhere(
    settings, server, path, message
):
    """A person who types or follows a wrong address is told so on the dashboard's own page,
    not in raw JSON; someone logged in keeps the dashboard's navigation on it."""
    before = snapshot(settings.db)
    logged_in = ("Cookie", COOKIE.encode() + b"=" + API_TOKEN.encode())

    for headers, navigation in (
        ([("Accept", BROWSER)], False),
        ([("Accept", BROWSER), logged_in], True),
    ):
        answer = await send(server, "GET", path, headers)

        assert answer.status == 404
        assert (answer.header("Content-Type") or "").startswith("text/html")
        assert "default-src 'none'" in (answer.header("Content-Security-Policy") or "")
        page = unescape(answer.text())
        assert f'<p class="error" role="alert">{message}</p>' in page
        assert ('aria-label="Main"' in page) is navigation
        assert ("Log out" in page) is navigation
    assert snapshot(settings.db) == before


@pytest.mark.parametrize(
    ("path", "message"),
    [("/jobs/999/results", "There is no job 999."), ("/jobs/abc/results", "There is no job abc.")],
)
async def test_a_download_of_no_job_is_the_page_saying_so(settings, server, path, message):
    """The results link of a job that is not there, opened in a browser (behind the login,
    as every download is)."""
    logged_in = ("Cookie", COOKIE.encode() + b"=" + API_TOKEN.encode())

    answer = await send(server, "GET", path, [("Accept", BROWSER), logged_in])

    assert answer.status == 404
    assert (answer.header("Content-Type") or "").startswith("text/html")
    assert f'<p class="error" role="alert">{message}</p>' in unescape(answer.text())


@pytest.mark.parametrize("path", ["/nope", "/jobs/999/results", "/jobs/abc/results"])
@pytest.mark.parametrize("accept", [None, *NOT_FOR_HTML])
async def test_a_client_that_asks_for_no_html_keeps_the_json_404(server, path, accept):
    logged_in = ("Cookie", COOKIE.encode() + b"=" + API_TOKEN.encode())
    headers = [logged_in] if accept is None else [logged_in, ("Accept", accept)]

    answer = await send(server, "GET", path, headers)

    assert answer.status == 404
    assert answer.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/nope", 404),
        ("GET", "/api/jobs/1/", 404),
        ("GET", "/api", 404),
        ("POST", "/hooks/crustdata/no-such-token", 404),
        ("GET", "/hooks/nope", 404),
        ("GET", "/hooks/crustdata/no-such-token/", 405),
        ("GET", "/healthz/", 404),
        ("GET", "/readyz/x", 404),
        ("GET", "/metrics/", 404),
    ],
)
async def test_paths_for_programs_keep_json_errors_for_a_browser_too(server, method, path, status):
    """The API, the callbacks, health and metrics answer programs, whatever they accept: a
    probe of `/healthz/` must fail, not pass by following a redirect to `/healthz`."""
    headers = [("Accept", BROWSER), ("Authorization", b"Bearer " + API_TOKEN.encode())]

    answer = await send(server, method, path, headers)

    assert answer.status == status
    assert answer.header("Location") is None
    assert answer.json()["error"]["code"] in ("not_found", "method_not_allowed")


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/jobs/1/", "/jobs/1"),
        ("/jobs/1//?x=a%20b", "/jobs/1?x=a%20b"),
        ("/vendors/ecore/", "/vendors/ecore"),
        ("/jobs/%D9%A1/", "/jobs/%D9%A1"),
        ("/login/?next=/jobs/3", "/login?next=/jobs/3"),
    ],
)
@pytest.mark.parametrize("accept", [BROWSER, None])
async def test_a_page_with_a_trailing_slash_is_sent_to_the_page(server, path, location, accept):
    answer = await send(server, "GET", path, [] if accept is None else [("Accept", accept)])

    assert answer.status == 301
    assert answer.all("Location") == [location]


@pytest.mark.parametrize("path", ["/nope/", "//evil.example.com/", "/%2F/evil.example.com/"])
async def test_only_a_page_is_redirected_to(server, path):
    """A slash is taken off only to reach a page of this site: a path that is none without
    it is the 404, and `//evil.example.com/` less its slash would be another host."""
    answer = await send(server, "GET", path, [("Accept", BROWSER)])

    assert answer.status == 404
    assert answer.header("Location") is None


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/static/dashboard.css", "text/css"),
        ("/static/dashboard.js", "javascript"),
        ("/static/favicon.svg", "image/svg+xml"),
    ],
)
async def test_static_files_are_still_served(server, path, content_type):
    answer = await send(server, "GET", path)
    assert answer.status == 200
    assert content_type in (answer.header("Content-Type") or "")
    assert answer.body == (STATIC / path.rsplit("/", 1)[1]).read_bytes()
