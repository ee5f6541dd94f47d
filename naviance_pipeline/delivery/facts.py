"""What the delivery guards judge, proven to belong to the bytes being sent.

The package step writes, beside the archived ``NavianceOneRoster.zip``, its summary (counts by
school, ``summary.json``) and its students (``students.arrow``: sourcedId, active, username,
identifier, email), each stamped with the sha256 of the ZIP they describe. At delivery the ZIP
is hashed once more and the stamps must match; when they do not (a run killed between writing
the package and its summary, a package replaced by hand), the figures are read from the ZIP
itself. No crash window can pair one package with another's figures.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from upath import UPath

from naviance_pipeline.delivery.guards import summarize_package
from naviance_pipeline.oneroster.spec import STRING
from naviance_pipeline.operations.crash import temp_name
from naviance_pipeline.operations.storage import (
    DataLayout,
    make_private,
    read_json,
    replace_file,
    write_private_json,
)

SHA_KEY = "package_sha256"
# Columns of users.csv the facts need; the keys that recognise a student under a new sourcedId.
USER_FACT_COLUMNS = ["sourcedId", "role", "enabledUser", "orgSourcedIds"]
IDENTITY_KEYS = ["username", "identifier", "email"]
ORG_FACT_COLUMNS = ["sourcedId", "type"]


def student_table(users: pa.Table | pd.DataFrame) -> pa.Table:
    """One row per student of a users table or frame: sourcedId, active, the identity keys."""
    if isinstance(users, pd.DataFrame):
        users = pa.Table.from_pandas(users[USER_FACT_COLUMNS[:3] + IDENTITY_KEYS])
    # Plain strings whatever the frame's encoding (its codes may be dictionary-encoded).
    plain = {
        name: users[name].cast(pa.string()) for name in [*USER_FACT_COLUMNS[:3], *IDENTITY_KEYS]
    }
    students = pc.equal(plain["role"], "student")
    columns = {
        "sourcedId": plain["sourcedId"],
        "active": pc.equal(plain["enabledUser"], "true"),
        **{key: plain[key] for key in IDENTITY_KEYS},
    }
    return pa.table(columns).filter(students).combine_chunks()


def write_facts(
    layout: DataLayout, day: str, summary: dict, students: pa.Table, package_sha256: str
) -> None:
    """Store the summary and students of ``day``'s package, stamped with its sha256."""
    path = layout.students_path(day)
    # A new file moved into place, never rewritten in place: a receipt may hold a hard link.
    temp = path.with_name(temp_name(path.name))
    write_students(students.replace_schema_metadata({SHA_KEY: package_sha256}), temp)
    replace_file(temp, path)
    write_private_json(layout.summary_path(day), {**summary, SHA_KEY: package_sha256})


def write_students(students: pa.Table, path: UPath) -> None:
    """An Arrow IPC file, owner-only: a million students write in a few hundredths of a
    second and read back without a copy (Parquet took 0.3 s each way)."""
    with path.open("wb") as f, pa.ipc.new_file(f, students.schema) as writer:
        writer.write_table(students)
    make_private(path)


def read_students(path: UPath) -> pa.Table:
    with path.open("rb") as f:
        return pa.ipc.open_file(f).read_all()


def remove_facts(layout: DataLayout, day: str) -> None:
    for path in (layout.summary_path(day), layout.students_path(day)):
        path.unlink(missing_ok=True)


def package_facts(
    layout: DataLayout, day: str, local_zip: str, sha256: str, log: Callable[[str], None]
) -> tuple[dict, pa.Table, UPath | None]:
    """The summary and students of the package at ``local_zip`` (whose sha256 is ``sha256``):
    the stored ones when their stamps match, else read from the ZIP; and the stored students
    file when it was the one read (a receipt keeps a copy of it)."""
    summary_path, students_path = layout.summary_path(day), layout.students_path(day)
    if summary_path.exists() and students_path.exists():
        summary = read_json(summary_path)
        students = read_students(students_path)
        stamp = (students.schema.metadata or {}).get(SHA_KEY.encode(), b"").decode()
        if summary.get(SHA_KEY) == sha256 == stamp:
            return summary, students.replace_schema_metadata(None), students_path
    log(
        f"the stored summary of {day} does not belong to its package (a run killed between "
        "writing them?): the guards read the figures from the package itself"
    )
    return (*facts_from_package(local_zip, day, sha256), None)


def facts_from_package(path: str, day: str, sha256: str) -> tuple[dict, pa.Table]:
    """The summary and students of a NavianceOneRoster.zip, read from its CSV entries."""
    with zipfile.ZipFile(path) as package:
        users = _read_csv(package, "users.csv", USER_FACT_COLUMNS + IDENTITY_KEYS)
        orgs = _read_csv(package, "orgs.csv", ORG_FACT_COLUMNS)
    summary = {**summarize_package(orgs, users, day), SHA_KEY: sha256}
    return summary, student_table(users)


def _read_csv(package: zipfile.ZipFile, name: str, columns: list[str]) -> pd.DataFrame:
    with package.open(name) as entry:
        data = io.BytesIO(entry.read())
    table = pacsv.read_csv(
        data,
        convert_options=pacsv.ConvertOptions(
            include_columns=columns,
            column_types=dict.fromkeys(columns, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    return table.to_pandas(types_mapper={pa.string(): STRING}.get)
