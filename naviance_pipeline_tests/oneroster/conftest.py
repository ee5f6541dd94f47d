"""Small generated fixtures for the domain-core tests: CSV bytes, ZIP bytes, a valid package.

The helpers are plain functions handed out by fixtures, so a test names what it builds.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable, Iterable, Mapping

import pytest

from naviance_pipeline.oneroster.spec import DEMOGRAPHICS, MANIFEST_ROWS, ORGS, USERS, FileSpec


def csv_bytes(rows: Iterable[Iterable[str]], newline: str = "\r\n") -> bytes:
    """RFC 4180 CSV (quoting only where needed), UTF-8, ``newline`` after every record."""
    out = io.StringIO()
    csv.writer(out, lineterminator=newline).writerows(rows)
    return out.getvalue().encode("utf-8")


def spec_rows(spec: FileSpec, *rows: Mapping[str, str]) -> list[list[str]]:
    """The spec header, then one record per mapping (missing columns blank)."""
    return [spec.header, *([row.get(c, "") for c in spec.header] for row in rows)]


def zip_bytes(entries: Mapping[str | zipfile.ZipInfo, bytes] | Iterable[tuple]) -> bytes:
    """A ZIP of ``{name or ZipInfo: data}`` (or pairs), Deflate-compressed."""
    pairs = entries.items() if isinstance(entries, Mapping) else entries
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in pairs:
            zf.writestr(name, data)
    return out.getvalue()


def package_files() -> dict[str, bytes]:
    """A small valid OneRoster v1.1 package: one school, one student, their demographics."""
    manifest = [("propertyName", "value"), *((p, v or "x") for p, v in MANIFEST_ROWS)]
    return {
        "manifest.csv": csv_bytes(manifest),
        "orgs.csv": csv_bytes(
            spec_rows(ORGS, {"sourcedId": "s1", "name": "High", "type": "school"})
        ),
        "users.csv": csv_bytes(
            spec_rows(
                USERS,
                {
                    "sourcedId": "u1",
                    "enabledUser": "true",
                    "orgSourcedIds": "s1",
                    "role": "student",
                    "username": "ann",
                    "givenName": "Ann",
                    "familyName": "Lee",
                    "grades": "09",
                },
            )
        ),
        "demographics.csv": csv_bytes(spec_rows(DEMOGRAPHICS, {"sourcedId": "u1"})),
    }


@pytest.fixture
def make_csv() -> Callable[..., bytes]:
    return csv_bytes


@pytest.fixture
def make_rows() -> Callable[..., list[list[str]]]:
    return spec_rows


@pytest.fixture
def make_zip() -> Callable[..., bytes]:
    return zip_bytes


@pytest.fixture
def valid_package() -> dict[str, bytes]:
    return package_files()
