"""OneRoster 1.2 bulk exports in, the same OneRoster 1.1 package out (oneroster/v12.py).

The hand-written export below covers what 1.2 changes: roles.csv (primary and secondary roles,
an administrator role 1.1 names differently, a role 1.1 lacks, a user with no primary role and
one with two), 1.2's own users.csv columns (never sent) and sex values 1.1 lacks. Every finding
must name the 1.2 file, line and column it came from."""

from __future__ import annotations

import zipfile
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from naviance_pipeline import cli
from naviance_pipeline.oneroster.findings import ERROR, WARNING, Finding, has_errors
from naviance_pipeline.oneroster.manifest import manifest_frame
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.package import build_package
from naviance_pipeline.oneroster.sample import write_sample_district
from naviance_pipeline.oneroster.source import Source, open_source
from naviance_pipeline.oneroster.spec import DEMOGRAPHICS as DEMOGRAPHICS_SPEC
from naviance_pipeline.oneroster.spec import ZIP_NAME, user_output_header
from naviance_pipeline.oneroster.stages import StageResult, build_all
from naviance_pipeline.oneroster.v12 import ROLES as ROLES_SPEC
from naviance_pipeline.oneroster.v12 import USERS_V12, V11, V12
from naviance_pipeline_tests.conftest import make_settings
from naviance_pipeline_tests.pipeline_helpers import failed_checks, run_job

OPTIONS = Options(as_of=date(2026, 11, 30))
DAY = "2026-11-24"
STAFF = Options(as_of=date(2026, 11, 30), include_staff=True)

MANIFEST = """propertyName,value
manifest.version,1.0
oneroster.version,1.2
file.demographics,bulk
file.orgs,bulk
file.roles,bulk
file.users,bulk
source.systemName,Hand
"""
ORGS = """sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId
d1,,,Lakeview District,district,,
s1,,,North High,school,,d1
s2,,,South High,school,,d1
"""
# 1.2's users.csv: no role, no orgSourcedIds; its own columns at the end.
USERS = (
    ",".join(USERS_V12.header)
    + "\n"
    + "\n".join(
        f"{sid},,,true,{name.lower()}{sid},,{name},Lee,,,,,,,{grade},,MASTER-{sid},,{name}ie,,,"
        f"s1,she/her"
        for sid, name, grade in [
            ("u1", "Ann", "09"),  # line 2: primary s2 after a secondary s1: "s2,s1"
            ("u2", "Bob", ""),  # line 3: siteAdministrator: administrator
            ("u3", "Cat", ""),  # line 4: counselor: no 1.1 role, left out
            ("u4", "Dan", "10"),  # line 5: only a secondary role
            ("u5", "Eve", "11"),  # line 6: two primary roles
            ("u6", "Fay", "12"),  # line 7: a misspelled role
            ("u7", "Gus", "09"),  # line 8: a secondary role at an org not in orgs.csv
        ]
    )
    + "\n"
)
ROLES = f"""{",".join(ROLES_SPEC.header)}
r1,,,u1,secondary,student,,,s1,
r2,,,u1,primary,student,,,s2,
r3,,,u2,primary,siteAdministrator,,,s1,
r4,,,u3,primary,counselor,,,s1,
r5,,,u4,secondary,student,,,s1,
r6,,,u5,primary,student,,,s1,
r7,,,u5,primary,student,,,s2,
r8,,,u6,primary,studnet,,,s1,
r9,,,u7,primary,student,,,s1,
r10,,,u7,secondary,student,,,s9,
r11,,,u1,secondary,student,,,s1,
"""
DEMOGRAPHICS = f"""{",".join(DEMOGRAPHICS_SPEC.header)}
u1,,,2011-03-04,male,,,,,,,,,,,
u7,,,2011-05-06,Other,,,,,,,,,,,
u4,,,2010-05-06,unspecified,,,,,,,,,,,
"""
FILES = {
    "manifest.csv": MANIFEST,
    "orgs.csv": ORGS,
    "users.csv": USERS,
    "roles.csv": ROLES,
    "demographics.csv": DEMOGRAPHICS,
}


def write(root: Path, files: dict[str, str]) -> str:
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8", newline="")
    return str(root)


def built(path: str, options: Options = OPTIONS) -> tuple[Source, list[StageResult], list[Finding]]:
    source = open_source(path, options)
    stages = build_all(source, options)
    findings = [*source.findings, *(f for s in stages for f in s.findings)]
    return source, list(stages), findings


def where(findings: list[Finding], rule: str) -> list[tuple]:
    return sorted(
        (f.file, f.line, f.column, f.severity, f.value) for f in findings if f.rule == rule
    )


@pytest.fixture
def hand(tmp_path: Path) -> str:
    return write(tmp_path, FILES)


def test_a_v12_export_is_read_as_v12_not_refused(hand):
    source, _, findings = built(hand)
    assert source.version == V12
    assert "roles.csv" in source.files
    assert not [f for f in findings if f.rule in ("SRC-VERSION", "SRC-EXTRA-FILE")]


def test_roles_give_the_role_and_the_orgs_primary_first(hand):
    _, (_, users, _), _ = built(hand, STAFF)
    by_id = users.frame.set_index("sourcedId")
    assert by_id.loc["u1", "orgSourcedIds"] == "s2,s1"  # primary first, s1 once
    assert by_id.loc["u1", "role"] == "student"
    assert (by_id.loc["u2", "role"], by_id.loc["u2", "orgSourcedIds"]) == ("administrator", "s1")
    assert by_id.loc["u7", "orgSourcedIds"] == "s1,s9"
    assert "u3" not in by_id.index  # counselor: no 1.1 role, not guessed


def test_users_out_of_order_and_a_repeated_id_get_their_roles_too(tmp_path):
    head, *rows = USERS.splitlines()
    users = "\n".join([head, *reversed(rows), rows[0]]) + "\n"  # u7 … u1, then u1 again
    _, (_, out, _), findings = built(write(tmp_path, {**FILES, "users.csv": users}))
    by_id = out.frame.set_index("sourcedId")
    assert (by_id.loc["u1", "orgSourcedIds"], by_id.loc["u7", "orgSourcedIds"]) == (
        "s2,s1",
        "s1,s9",
    )
    assert where(findings, "USR-ORG-REF") == [("roles.csv", 11, "orgSourcedId", ERROR, "s9")]
    assert [f.line for f in findings if f.rule == "ID-DUPLICATE"] == [8, 9]


def test_findings_name_the_v12_file_line_and_column(hand):
    _, _, findings = built(hand)
    assert where(findings, "USR-ROLE-UNMAPPED") == [("roles.csv", 5, "role", WARNING, "counselor")]
    assert where(findings, "USR-ROLE-PRIMARY") == [
        ("roles.csv", 8, "roleType", ERROR, "primary"),  # u5's second primary role
        ("users.csv", 5, "sourcedId", ERROR, None),  # u4 has no primary role
    ]
    assert where(findings, "USR-ROLE") == [("roles.csv", 9, "role", ERROR, "studnet")]
    assert where(findings, "USR-ORG-REF") == [("roles.csv", 11, "orgSourcedId", ERROR, "s9")]
    # u4 has no role to point at: USR-ROLE-PRIMARY says so, nothing else about its role
    assert not [f for f in findings if f.file == "users.csv" and f.column in ("role",)]


def test_v12_only_sex_values_are_findings_and_written_blank(hand):
    _, (_, _, demographics), findings = built(hand)
    assert where(findings, "DEM-SEX-UNMAPPED") == [
        ("demographics.csv", 3, "sex", WARNING, "Other"),
        ("demographics.csv", 4, "sex", WARNING, "unspecified"),
    ]
    assert "DEM-SEX" not in {f.rule for f in findings}
    sex = demographics.frame.set_index("sourcedId")["sex"]
    assert (sex["u1"], sex["u7"]) == ("male", "")


def test_v12_only_user_columns_are_not_sent_and_never_shown(hand):
    _, (_, users, _), findings = built(hand, STAFF)
    assert list(users.frame.columns) == user_output_header(include_staff=True)
    # u3 (counselor), u4 (no primary role) and u6 (role not in 1.1) are not written
    assert sorted(users.frame["sourcedId"]) == ["u1", "u2", "u5", "u7"]
    text = "\n".join(repr(f) for f in findings)
    sent = users.frame.to_csv()
    for value in ("Annie", "she/her", "MASTER-u1"):
        assert value not in text and value not in sent


def test_a_v12_delta_is_refused_like_a_v11_delta(tmp_path):
    for name in ("roles", "users"):
        manifest = MANIFEST.replace(f"file.{name},bulk", f"file.{name},delta")
        folder = tmp_path / name
        folder.mkdir()
        source = open_source(write(folder, {**FILES, "manifest.csv": manifest}), OPTIONS)
        (f,) = [f for f in source.findings if f.rule == "SRC-DELTA"]
        assert (f.file, f.column, f.value, f.severity) == ("manifest.csv", "value", "delta", ERROR)
        assert f"{name}.csv" in f.message


def test_misspelled_v12_headers_are_read_by_the_alias_rules(tmp_path):
    users = USERS.replace("sourcedId,", "sourceID,", 1)
    roles = ROLES.replace("userSourcedId", "userSourceId").replace("orgSourcedId,", "orgSourceId,")
    folder = write(tmp_path, {**FILES, "users.csv": users, "roles.csv": roles})
    _, (_, u, _), findings = built(folder)
    assert where(findings, "CSV-HEADER-ALIAS") == [
        ("roles.csv", 1, "orgSourcedId", WARNING, "orgSourceId"),
        ("roles.csv", 1, "userSourcedId", WARNING, "userSourceId"),
        ("users.csv", 1, "sourcedId", WARNING, "sourceID"),
    ]
    assert u.frame.set_index("sourcedId").loc["u1", "orgSourcedIds"] == "s2,s1"


def test_a_v12_export_without_roles_is_missing_a_file(tmp_path):
    files = {k: v for k, v in FILES.items() if k != "roles.csv"}
    source = open_source(write(tmp_path, files), OPTIONS)
    errors = [(f.rule, f.file) for f in source.findings if f.severity == ERROR]
    assert errors == [("SRC-MISSING-FILE", "roles.csv")]
    _, (_, users, _), findings = built(str(tmp_path))  # the stages still run, quietly
    assert len(users.frame) == 0 and "USR-ROLE-PRIMARY" not in {f.rule for f in findings}


@pytest.mark.parametrize("roles", ["", ",".join(ROLES_SPEC.header) + "\n"], ids=["empty", "header"])
def test_an_empty_roles_file_is_one_finding(tmp_path, roles):
    _, (_, users, _), findings = built(write(tmp_path, {**FILES, "roles.csv": roles}))
    assert where(findings, "CSV-EMPTY") == [("roles.csv", None, None, ERROR, None)]
    assert len(users.frame) == 0 and "USR-ROLE-PRIMARY" not in {f.rule for f in findings}


def test_roles_without_a_role_type_column_is_one_finding_not_one_a_user(tmp_path):
    roles = ROLES.replace("roleType", "kind")
    _, _, findings = built(write(tmp_path, {**FILES, "roles.csv": roles}))
    assert where(findings, "CSV-HEADER-MISSING") == [("roles.csv", 1, "roleType", ERROR, None)]
    assert "USR-ROLE-PRIMARY" not in {f.rule for f in findings}


def test_without_a_manifest_roles_csv_makes_it_v12(tmp_path):
    files = {k: v for k, v in FILES.items() if k != "manifest.csv"}
    raw = Options(as_of=date(2026, 11, 30), raw_sis_export=True)
    source = open_source(write(tmp_path, files), raw)
    assert source.version == V12
    assert not [f for f in source.findings if f.rule == "SRC-VERSION"]


def test_a_v12_header_under_a_v11_manifest_is_still_refused(tmp_path):
    folder = write(tmp_path, {**FILES, "manifest.csv": MANIFEST.replace("1.2", "1.1")})
    source, _, findings = built(folder)
    assert source.version == V11
    assert [(f.file, f.line) for f in findings if f.rule == "SRC-VERSION"] == [("users.csv", 1)]


def test_a_lazy_open_reads_the_same_v12_export(hand):
    eager = built(hand)[1]
    source = open_source(hand, OPTIONS, lazy=True)
    lazy = build_all(source, OPTIONS)
    assert source.version == V12
    for a, b in zip(eager, lazy, strict=True):
        assert a.frame.equals(b.frame) and a.findings == b.findings


# -- the sample: the same people as 1.2, the same package bytes ----------------------------------


def package(path: str, options: Options, out: Path) -> bytes:
    _, (orgs, users, demographics), findings = built(path, options)
    assert not has_errors(findings), [f for f in findings if f.severity == ERROR][:3]
    result = build_package(
        manifest_frame(options), orgs.frame, users.frame, demographics.frame, options, str(out)
    )
    assert not has_errors(result.findings)
    return Path(result.path).read_bytes()


@pytest.mark.parametrize("options", [OPTIONS, STAFF], ids=["students", "with-staff"])
def test_the_v12_sample_gives_the_v11_samples_package_byte_for_byte(tmp_path, options):
    v11, v12 = tmp_path / "v11.zip", tmp_path / "v12.zip"
    write_sample_district(str(v11), students=300, schools=3, seed=5)
    write_sample_district(str(v12), students=300, schools=3, seed=5, version="1.2")
    with zipfile.ZipFile(v12) as zf:
        assert "roles.csv" in zf.namelist()
        assert b"oneroster.version,1.2" in zf.read("manifest.csv")
        assert b",role," not in zf.read("users.csv").split(b"\r\n", 1)[0]
    one = package(str(v11), options, tmp_path / "a" / "NavianceOneRoster.zip")
    two = package(str(v12), options, tmp_path / "b" / "NavianceOneRoster.zip")
    assert one == two


def test_sample_district_shape_oneroster_1_2_on_the_command_line(tmp_path, capsys):
    out = tmp_path / "v12"
    code = cli.main(
        ["sample-district", "--out", str(out), "--shape", "oneroster-1.2", "--format", "folder",
         "--students", "40"]
    )  # fmt: skip
    assert code == 0
    assert "OneRoster 1.2" in capsys.readouterr().out
    assert (out / "roles.csv").is_file()
    assert open_source(str(out), OPTIONS).version == V12


def test_the_nightly_job_delivers_the_same_package_from_the_v12_sample(tmp_path):
    """The Dagster path (a snapshot opened lazily, each stage reading its own file) too."""
    delivered = []
    for version in ("1.1", "1.2"):
        home = tmp_path / version
        export = home / "export.zip"
        home.mkdir()
        write_sample_district(str(export), students=120, schools=3, seed=5, version=version)
        with dg.DagsterInstance.ephemeral() as instance:
            result = run_job(make_settings(home, export), DAY, instance)
        assert result.success, failed_checks(result)
        delivered.append((home / "outbox" / ZIP_NAME).read_bytes())
    assert delivered[0] == delivered[1]


def test_an_ext_role_holding_pii_is_not_echoed_in_the_left_out_finding(tmp_path):
    """`ext:` roles are free text: an e-mail typed there is named by its shape, never shown."""
    roles = FILES["roles.csv"].replace(",counselor,", ",ext:jane.roe@example.org,")
    _, _, findings = built(write(tmp_path, {**FILES, "roles.csv": roles}))
    (left_out,) = [f for f in findings if f.rule == "USR-ROLE-UNMAPPED"]
    assert (left_out.file, left_out.line, left_out.column) == ("roles.csv", 5, "role")
    shown = f"{left_out.message} {left_out.value} {left_out.to_dict()}"
    assert "jane" not in shown and "example.org" not in shown
