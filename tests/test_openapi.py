"""The API document: it names exactly the routes the app serves under /api/, it is valid
OpenAPI, it is served without a token while the API stays protected, and a running service
(receiver, reconciler and the vendor simulator, over real sockets, with a real token) fuzzed
from it answers only what it promises and never a 5xx."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
import schemathesis.engine
from aiohttp import web
from schemathesis.engine import events

from enrichwatch.models import VendorName
from enrichwatch.serialize import job_json
from enrichwatch.sim import JobProfile, SimConfig, SimServer
from receiver import create_app
from receiver.openapi import DOCUMENT_PATH, OPERATIONS, document
from tests.conftest import track
from tests.test_reconciler import INPUTS

FUZZ_TOKEN = "openapi-fuzz-token-000000"
FUZZ_AUTH = {"Authorization": f"Bearer {FUZZ_TOKEN}"}


def api_routes(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every route under /api/, in the app and in sub-apps mounted there.
    HEAD is left out: aiohttp adds it beside every GET, answering the same."""
    routes: set[tuple[str, str]] = set()
    for resource in app.router.resources():
        subapp = resource.get_info().get("app")
        if isinstance(subapp, web.Application):
            routes |= api_routes(subapp)
            continue
        for route in resource:
            path = resource.canonical
            if path.startswith("/api/") and route.method != "HEAD":
                routes.add((route.method.lower(), path))
    return routes


def documented_routes(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, item in doc["paths"].items() for method in item}


async def test_the_document_names_exactly_the_routes_served_under_api(services):
    served = api_routes(create_app(services))
    documented = documented_routes(document())
    assert served - documented == set(), "routes with no entry in receiver/openapi.py"
    assert documented - served == set(), "documented routes the app does not serve"
    assert len(OPERATIONS) == len(documented)


def test_a_route_without_an_entry_is_caught():
    api = web.Application()
    for operation in OPERATIONS:
        api.router.add_route(
            operation.method.upper(), operation.path.removeprefix("/api"), _never_called
        )
    api.router.add_get("/jobs/{job_id}/undocumented", _never_called)
    app = web.Application()
    app.add_subapp("/api/", api)
    assert api_routes(app) - documented_routes(document()) == {
        ("get", "/api/jobs/{job_id}/undocumented")
    }


async def _never_called(request: web.Request) -> web.Response:
    raise AssertionError("only the route table is inspected")


def test_the_document_is_valid_openapi_3_1():
    doc = document()
    assert doc["openapi"].startswith("3.1")
    schemathesis.openapi.from_dict(json.loads(json.dumps(doc))).validate()
    bearer = doc["components"]["securitySchemes"]["bearerAuth"]
    assert (bearer["type"], bearer["scheme"]) == ("http", "bearer")
    assert doc["security"] == [{"bearerAuth": []}]
    public = [
        (method, path)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if operation.get("security") == []
    ]
    assert public == [("get", DOCUMENT_PATH)]


async def test_the_document_is_served_without_a_token_and_the_api_still_needs_one(server, http):
    async with http.get(f"{server}{DOCUMENT_PATH}") as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        assert await response.json() == json.loads(json.dumps(document()))
    async with http.get(f"{server}/api/jobs") as response:
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "unauthorized"


async def test_the_job_schema_takes_a_real_job_and_refuses_unknown_fields(server, http, services):
    tracked = await track(http, server, "ecore", "e-42")
    job = job_json(await services.store.get_job(tracked["id"]), server)
    validator = _validator_for("Job")
    validator.validate(job)
    job["unexpected"] = 1
    assert not validator.is_valid(job), "the Job schema must refuse fields it does not name"


async def test_the_error_schema_takes_the_already_tracked_answer(server, http, auth):
    """The 409 carries the job already tracked; a client built from the document must not
    refuse it."""
    job = {"vendor": "ecore", "vendor_job_id": "e-7", "notify": {"slack": "https://a.test/X"}}
    async with http.post(f"{server}/api/jobs", json=job, headers=auth) as response:
        assert response.status == 201
    job["notify"] = {"slack": "https://a.test/Y"}
    async with http.post(f"{server}/api/jobs", json=job, headers=auth) as response:
        assert response.status == 409
        answer = await response.json()
    assert answer["error"]["job"]["vendor_job_id"] == "e-7"
    _validator_for("Error").validate(answer)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/api/jobs/345/check", None, 404, "not_found"),
        ("GET", "/api/jobs/99999999999999999999999", None, 404, "not_found"),
        ("GET", "/api/jobs/\u00b2", None, 404, "not_found"),
        ("GET", "/api/jobs/1/events?after=99999999999999999999999", None, 400, "invalid_request"),
        ("POST", "/api/jobs", b"\xff\xfe", 400, "invalid_json"),
        ("POST", "/api/jobs/1/reprocess", b"\xff", 400, "invalid_json"),
    ],
)
async def test_requests_the_fuzzer_found_answering_500_are_refused_cleanly(
    server, http, auth, services, method, path, body, status, code
):
    await track(http, server, "reprompt", "r-1")
    async with http.request(method, f"{server}{path}", data=body, headers=auth) as response:
        assert response.status == status
        assert (await response.json())["error"]["code"] == code


async def test_an_unsupported_method_names_the_allowed_ones(server, http, auth):
    async with http.request("TRACE", f"{server}/api/jobs", headers=auth) as response:
        assert response.status == 405
        assert set(response.headers["Allow"].split(",")) == {"GET", "HEAD", "POST"}


def _validator_for(component: str) -> Any:
    doc = json.loads(json.dumps(document()))
    return jsonschema_rs.validator_for(
        {**doc["components"]["schemas"][component], "components": doc["components"]}
    )


# --- fuzzing a running service from its own document -------------------------------------


class SimThread:
    """The vendor simulator on its own event loop in a thread, so the synchronous fuzzer
    can block while the simulator keeps serving."""

    def __init__(self, config: SimConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server = SimServer(config)

    def __enter__(self) -> SimServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(30)
        return self.server

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


def quick_jobs_config() -> SimConfig:
    """Every vendor's jobs finish a moment after they are submitted."""
    config = SimConfig(seed=11, speed=100)
    for vendor in VendorName:
        config.vendor(vendor.value).profile = JobProfile(
            base_seconds=20, seconds_per_record=0.0, sigma=0.1, start_jitter=0.0
        )
    return config


def service_env(sim: SimServer, db: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "ENRICHWATCH_DB": str(db),
        "ENRICHWATCH_PORT": "0",
        "ENRICHWATCH_API_TOKEN": FUZZ_TOKEN,
        "ENRICHWATCH_LOG_LEVEL": "warning",
        "ENRICHWATCH_LOG_FORMAT": "json",
        "ENRICHWATCH_WORK_INTERVAL": "0.2",
        "ENRICHWATCH_CRUSTDATA__DOWNLOAD_HOSTS": json.dumps([sim.storage.host]),
    }
    for vendor in VendorName:
        prefix = f"ENRICHWATCH_{vendor.value.upper()}__"
        env[prefix + "BASE_URL"] = sim.base_urls[vendor.value]
        env[prefix + "API_KEY"] = sim.api_keys[vendor.value]
        env[prefix + "MIN_POLL_INTERVAL"] = "0.2"
        env[prefix + "MAX_POLL_INTERVAL"] = "1"
    return env


@pytest.fixture(scope="module")
def running_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`enrichwatch serve` against the simulator, holding one finished job with stored
    results per vendor (so the fuzzer meets real jobs, events and results, not only 404s)."""
    workdir = tmp_path_factory.mktemp("fuzz")
    with SimThread(quick_jobs_config()) as sim, (workdir / "serve.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "enrichwatch", "serve"],
            env=service_env(sim, workdir / "enrichwatch.db"),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            url = _listening_url(process, workdir / "serve.log")
            _seed_finished_jobs(url)
            yield url
        finally:
            process.terminate()
            assert process.wait(30) == 0, (workdir / "serve.log").read_text()
            assert process.stdout is not None
            process.stdout.close()


def _listening_url(process: subprocess.Popen[str], log: Path) -> str:
    assert process.stdout is not None
    for line in process.stdout:
        if "listening on" in line:
            return line.rsplit(" ", 1)[1].strip()
    raise AssertionError("serve exited before listening: " + log.read_text())


def _seed_finished_jobs(url: str) -> None:
    ids = []
    for vendor, (rows, options) in INPUTS.items():
        body = {"vendor": vendor.value, "submit": {"rows": rows[:5], "options": options}}
        status, answer = _call(f"{url}/api/jobs", body)
        assert status == 201, answer
        ids += [job["id"] for job in answer["jobs"]]
    deadline = time.monotonic() + 40
    while True:
        jobs = [_call(f"{url}/api/jobs/{job_id}")[1] for job_id in ids]
        if all(job["results"]["state"] == "stored" for job in jobs):
            return
        assert time.monotonic() < deadline, f"seed jobs did not finish: {jobs}"
        time.sleep(0.1)


def _call(url: str, body: object = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {**FUZZ_AUTH, "Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.load(response)


def test_fuzzed_requests_get_only_documented_answers_and_no_5xx(running_service):
    """Every phase schemathesis has (examples, boundary coverage, random fuzzing, stateful
    sequences) with every check it has, from the document the service serves."""
    config = schemathesis.Config.from_dict(
        {
            "seed": 20261123,
            "base-url": running_service,
            "headers": FUZZ_AUTH,
            "cache": {"enabled": False},
            "generation": {"max-examples": 25, "deterministic": True},
            # Rows valid for the schema may still break a vendor's rules (required columns,
            # formats); the document says so, and the answer is 422 with the row.
            "operations": [
                {
                    "include-operation-id": "post_jobs",
                    "checks": {
                        "positive_data_acceptance": {"expected-statuses": ["2xx", "401", "422"]}
                    },
                }
            ],
        }
    )
    schema = schemathesis.openapi.from_url(f"{running_service}{DOCUMENT_PATH}", config=config)
    problems: list[str] = []
    cases: Counter[str] = Counter()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for case_node in event.recorder.cases.values():
                cases[case_node.value.operation.label] += 1
            problems += _failures(event.recorder)
        elif isinstance(event, events.NonFatalError | events.FatalError):
            error = event.value if isinstance(event, events.NonFatalError) else event.exception
            problems.append(f"{event.__class__.__name__}: {error!r}")
    assert problems == [], "\n\n".join(problems)
    # schemathesis leaves out the operation that served it the document (tested above).
    assert set(cases) == {
        f"{method.upper()} {path}"
        for method, path in documented_routes(document())
        if path != DOCUMENT_PATH
    }, "every operation is exercised"


def test_resuming_a_finished_job_is_a_409_not_a_502(running_service):
    """The fuzzer found resume on a finished eCore job answered 502, as if the vendor were
    down. A finished job is never looked at again, so it is refused before asking the vendor
    (which might otherwise resume, and bill, a run nobody fetches)."""
    _, page = _call(f"{running_service}/api/jobs?vendor=ecore")
    job = page["jobs"][-1]
    assert job["state"] == "completed"
    with pytest.raises(urllib.error.HTTPError) as refused:
        _call(f"{running_service}/api/jobs/{job['id']}/resume", {})
    assert refused.value.code == 409
    error = json.load(refused.value)["error"]
    assert error["code"] == "action_not_possible"
    assert "nothing to resume" in error["message"]


def _failures(recorder: Any) -> list[str]:
    return [
        f"{check.name}: {check.failure_info.failure.title}\n"
        f"{check.failure_info.failure.message}\n{check.failure_info.code_sample}"
        for checks in recorder.checks.values()
        for check in checks
        if check.failure_info is not None
    ]
