"""Reading a batch's input file: a CSV with a header row, one identifier (or place) per row."""

from __future__ import annotations

import csv
import unicodedata
from pathlib import Path

from enrichwatch.errors import InputError, VendorJobIdError
from enrichwatch.models import VendorName
from enrichwatch.vendors import adapter_class

MAX_VENDOR_JOB_ID = 200
"""Characters in a vendor job id we track; vendors' own ids are far shorter."""


def read_rows(path: Path, vendor: str) -> list[dict[str, str]]:
    """Rows as column → value; raises InputError for a file that is not a usable CSV."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file)
            header = next(reader, None)
            if header is None or not any(column.strip() for column in header):
                raise InputError(vendor, f"{path} is empty; the first line must name the columns")
            columns = [column.strip() for column in header]
            duplicates = {c for c in columns if columns.count(c) > 1}
            if duplicates:
                raise InputError(vendor, f"{path} repeats the column(s) {sorted(duplicates)}")
            rows: list[dict[str, str] | None] = []
            for number, values in enumerate(reader, start=1):
                if not any(value.strip() for value in values):
                    rows.append(None)  # blank: allowed only at the end of the file
                    continue
                if len(values) != len(columns):
                    raise InputError(
                        vendor,
                        f"has {len(values)} values but the header names {len(columns)} columns",
                        row=number,
                    )
                rows.append(dict(zip(columns, values, strict=True)))
            while rows and rows[-1] is None:
                rows.pop()
    except FileNotFoundError:
        raise InputError(vendor, f"no such file: {path}") from None
    except OSError as exc:  # a directory in the path, no permission…
        raise InputError(vendor, f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(vendor, f"{path} is not UTF-8 text") from None
    except csv.Error as exc:
        raise InputError(vendor, f"{path} is not valid CSV: {exc}") from None
    # Row numbers in every later message count data lines, so a blank one in the middle
    # would make them point at the wrong line.
    for number, row in enumerate(rows, start=1):
        if row is None:
            raise InputError(vendor, "is blank (remove blank lines)", row=number)
    return [row for row in rows if row is not None]


def check_vendor_job_id(raw: str, vendor: VendorName) -> str:
    """The id to track, without surrounding whitespace. One that is blank, longer than
    MAX_VENDOR_JOB_ID, holds control characters or has a shape the vendor never issues is a
    VendorJobIdError: it would only ever be polled as "not found", and control characters
    would garble every listing it is in."""
    value = raw.strip()
    if not value:
        raise VendorJobIdError("must not be blank")
    if len(value) > MAX_VENDOR_JOB_ID:
        raise VendorJobIdError(
            f"must be at most {MAX_VENDOR_JOB_ID} characters (this one has {len(value)})"
        )
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise VendorJobIdError("must not contain control characters")
    if problem := adapter_class(vendor).job_id_problem(value):
        raise VendorJobIdError(problem)
    return value


MAX_JOB_NAME = 200
"""Characters in a job name, as the API allows."""


def job_name_problem(name: str) -> str | None:
    """Why `name` cannot name a job, or None. A blank one would be shown as no name at all,
    and a control character (a line break, a tab, an escape sequence) garbles every listing
    it is in, as vendor job ids with them are refused for."""
    if not name.strip():
        return "must not be blank"
    if len(name) > MAX_JOB_NAME:
        return f"must be at most {MAX_JOB_NAME} characters (this one has {len(name)})"
    if any(unicodedata.category(char) == "Cc" for char in name):
        return "must not contain control characters (line breaks, tabs, escape sequences)"
    return None
