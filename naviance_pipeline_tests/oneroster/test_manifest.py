"""manifest.csv of the package: spec section 4, row for row."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from naviance_pipeline.oneroster.manifest import manifest_frame
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.writer import write_csv

# Spelled out from spec section 4 on purpose: an independent statement of the contract.
EXPECTED = (
    "propertyName,value\r\n"
    "manifest.version,1.0\r\n"
    "oneroster.version,1.1\r\n"
    "file.academicSessions,absent\r\n"
    "file.categories,absent\r\n"
    "file.classes,absent\r\n"
    "file.classResources,absent\r\n"
    "file.courses,absent\r\n"
    "file.courseResources,absent\r\n"
    "file.demographics,bulk\r\n"
    "file.enrollments,absent\r\n"
    "file.lineItems,absent\r\n"
    "file.orgs,bulk\r\n"
    "file.resources,absent\r\n"
    "file.results,absent\r\n"
    "file.users,bulk\r\n"
    "source.systemName,PowerSchool SIS\r\n"
    "source.systemCode,0612345\r\n"
)


def options(name: str = "PowerSchool SIS", code: str = "0612345") -> Options:
    return Options(as_of=date(2026, 11, 30), source_system_name=name, district_code=code)


def test_manifest_rows_are_exactly_the_spec_rows_with_configured_source():
    f = manifest_frame(options())
    assert list(f.columns) == ["propertyName", "value"]
    assert write_csv(f, list(f.columns)) == EXPECTED.encode()


def test_manifest_columns_are_pyarrow_strings():
    f = manifest_frame(options())
    assert all(dtype == pd.StringDtype("pyarrow") for dtype in f.dtypes)


def test_configured_values_are_trimmed():
    f = manifest_frame(options(name=" ClassLink ", code="d1 "))
    values = dict(zip(f["propertyName"], f["value"], strict=True))
    assert values["source.systemName"] == "ClassLink"
    assert values["source.systemCode"] == "d1"


@pytest.mark.parametrize(
    ("name", "code", "blank"),
    [
        ("", "d1", "source.systemName"),
        ("  ", "d1", "source.systemName"),
        ("SIS", "", "source.systemCode"),
    ],
)
def test_blank_system_name_or_code_raises_naming_the_property(name, code, blank):
    with pytest.raises(ValueError, match=blank.replace(".", r"\.")):
        manifest_frame(options(name=name, code=code))
