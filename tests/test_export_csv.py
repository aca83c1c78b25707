"""The CSV export's columns when records are not all alike: a failed record, whose data is
null, among ones with fields; a real field named `value`; data that is a bare number, string
or list. Records are written to the results table directly, as a fetch stores them, and read
back through the API, the CLI and the export itself."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
from typing import Any

import pytest

from enrichwatch import export
from enrichwatch.models import VendorName
from enrichwatch.runtime import Services
from tests.conftest import API_TOKEN, run_cli
from tests.test_results_and_actions import assert_csv_matches

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


async def job_with(services: Services, datas: list[Any]) -> tuple[int, list[dict[str, Any]]]:
    """A tracked influencers.club job with one stored record per item of `datas` (its data),
    failed where the data is null as the vendor's failed records are; and the records."""
    job, _ = await services.store.track_job(VendorName.INFLUENCERS_CLUB, "ic-1", "handles")
    records = [
        {
            "position": n,
            "input_id": f"handle{n}",
            "status": "failed" if data is None else "success",
            "data": data,
        }
        for n, data in enumerate(datas)
    ]
    conn = sqlite3.connect(services.store.path)
    with conn:
        conn.executemany(
            "INSERT INTO results (job_id, position, input_id, status, data) VALUES (?, ?, ?, ?, ?)",
            [
                (job.id, r["position"], r["input_id"], r["status"], json.dumps(r["data"]))
                for r in records
            ],
        )
    conn.close()
    return job.id, records


async def csv_of(services: Services, job_id: int) -> tuple[bytes, list[bytes]]:
    chunks = [chunk async for chunk in export.csv_rows(services.store, job_id)]
    return b"".join(chunks), chunks


def table(body: bytes) -> tuple[list[str], list[dict[str, str]]]:
    header, *rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
    return header, [dict(zip(header, row, strict=True)) for row in rows]


PROFILES: list[Any] = [
    {"username": "ada", "followers": 120},
    None,
    {"username": "grace", "followers": 3, "bio": "compilers"},
]


async def test_a_failed_record_adds_no_column(services, server, http, tmp_path):
    """A failed record's data is null: it has no fields, so it adds no column (no `value`
    holding `null`), its field cells are blank, and its `data` cell is `null`. So in the API's
    CSV and in the CLI's file alike."""
    job_id, records = await job_with(services, PROFILES)

    async with http.get(f"{server}/api/jobs/{job_id}/results?format=csv", headers=AUTH) as resp:
        assert resp.status == 200
        body = await resp.read()
    out = tmp_path / "handles.csv"
    env = {**os.environ, "ENRICHWATCH_DB": str(services.store.path)}
    code, _, err = await run_cli(env, "results", str(job_id), "-o", str(out))
    assert code == 0, err

    for exported in (body, out.read_bytes()):
        header, rows = table(exported)
        assert header == ["position", "input_id", "status", "bio", "followers", "username", "data"]
        failed = rows[1]
        assert failed["status"] == "failed"
        assert (failed["bio"], failed["followers"], failed["username"]) == ("", "", "")
        assert failed["data"] == "null"
        assert_csv_matches(exported, records)


async def test_a_field_named_value_is_a_column_like_any_other(services):
    """A record's own `value` field gets its column and its cells, and nothing else lands in
    it: not a failed record, not data that is a bare number."""
    job_id, records = await job_with(
        services,
        [
            {"value": "gold", "name": "a"},
            None,
            {"value": 12.5, "name": "b"},
            7,
            {"name": "c"},
            {"value": None, "name": "d"},
        ],
    )

    body, _ = await csv_of(services, job_id)

    header, rows = table(body)
    assert header == ["position", "input_id", "status", "name", "value", "data"]
    assert [row["value"] for row in rows] == ["gold", "", "12.5", "", "", "null"]
    assert [row["data"] for row in rows][1:4:2] == ["null", "7"]
    assert_csv_matches(body, records)


async def test_data_that_is_not_an_object_is_only_in_the_data_column(services):
    """A bare number, string, boolean or list has no fields: no column, blank cells for the
    others' fields, and the value whole, as JSON, in `data`."""
    datas: list[Any] = [42, "plain text", [1, {"a": 2}], True, {"a": 1}]
    job_id, records = await job_with(services, datas)

    body, _ = await csv_of(services, job_id)

    header, rows = table(body)
    assert header == ["position", "input_id", "status", "a", "data"]
    assert [row["a"] for row in rows] == ["", "", "", "", "1"]
    assert [json.loads(row["data"]) for row in rows] == datas
    assert_csv_matches(body, records)


async def test_the_header_does_not_depend_on_pages_and_rows_go_out_page_by_page(
    services, monkeypatch
):
    """Records read a few at a time give the same file, byte for byte, as records read all
    at once: the columns are gathered over every page first (a field only a later page has
    still gets one; a failed record on the first page adds none), and each page's rows are
    sent as they are made, never the whole file at once."""
    datas: list[Any] = [None, {"b": 1}, None, {"a": {"x": 1}}, {"value": "v", "b": 2}]
    job_id, records = await job_with(services, datas)
    whole, _ = await csv_of(services, job_id)

    monkeypatch.setattr(export, "PAGE", 2)
    paged, chunks = await csv_of(services, job_id)

    assert paged == whole
    assert len(chunks) == 3
    assert table(paged)[0] == ["position", "input_id", "status", "a.x", "b", "value", "data"]
    assert_csv_matches(paged, records)


@pytest.mark.parametrize(
    ("data", "flat"),
    [
        (None, {}),
        (3, {}),
        ("text", {}),
        ([{"a": 1}], {}),
        ({}, {}),
        (
            {"value": None, "a": {"b": [1], "c": "x", "d": {}}, "n": 2},
            {"value": "null", "a.b": "[1]", "a.c": "x", "n": "2"},
        ),
    ],
)
def test_flatten_gives_cells_only_for_an_objects_fields(data, flat):
    assert export.flatten(data) == flat
    assert list(export.leaf_names(data)) == list(flat)
