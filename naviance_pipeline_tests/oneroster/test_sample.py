"""The synthetic ClassLink-style district: deterministic, realistic, and valid (no errors)."""

from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from naviance_pipeline.oneroster.findings import ERROR, has_errors
from naviance_pipeline.oneroster.manifest import manifest_frame
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.package import build_package
from naviance_pipeline.oneroster.sample import EXPORT_FILES, write_sample_district
from naviance_pipeline.oneroster.source import open_source
from naviance_pipeline.oneroster.spec import (
    CEDS_GRADES,
    CLASS_YEAR_SOURCES,
    DEMOGRAPHICS,
    MANIFEST_ROWS,
    ORGS,
    RACE_FLAGS,
    USERS,
)
from naviance_pipeline.oneroster.stages import build_all

STUDENTS, SCHOOLS, SEED = 400, 5, 7


@pytest.fixture(scope="module")
def sample_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "classlink.zip"
    write_sample_district(str(out), students=STUDENTS, schools=SCHOOLS, seed=SEED)
    return out


@pytest.fixture(scope="module")
def files(sample_zip: Path) -> dict[str, list[dict[str, str]]]:
    """Every CSV of the sample as records (header -> value)."""
    with zipfile.ZipFile(sample_zip) as zf:
        return {
            n: list(csv.DictReader(io.StringIO(zf.read(n).decode(), newline="")))
            for n in zf.namelist()
        }


def header(sample_zip: Path, name: str) -> list[str]:
    with zipfile.ZipFile(sample_zip) as zf:
        return zf.read(name).split(b"\r\n", 1)[0].decode().split(",")


def students(files) -> list[dict[str, str]]:
    return [u for u in files["users.csv"] if u["role"] == "student"]


# ---- determinism ----------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes(tmp_path: Path, sample_zip: Path):
    again = write_sample_district(
        str(tmp_path / "again.zip"), students=STUDENTS, schools=SCHOOLS, seed=SEED
    )
    assert Path(again).read_bytes() == sample_zip.read_bytes()


def test_another_seed_gives_other_data(tmp_path: Path, sample_zip: Path):
    other = write_sample_district(
        str(tmp_path / "other.zip"), students=STUDENTS, schools=SCHOOLS, seed=SEED + 1
    )
    with zipfile.ZipFile(other) as a, zipfile.ZipFile(sample_zip) as b:
        assert a.read("users.csv") != b.read("users.csv")
        assert a.read("demographics.csv") != b.read("demographics.csv")


def test_folder_format_writes_the_same_files_as_the_zip(tmp_path: Path, sample_zip: Path):
    folder = Path(
        write_sample_district(
            str(tmp_path / "export"), students=STUDENTS, schools=SCHOOLS, seed=SEED, fmt="folder"
        )
    )
    assert sorted(p.name for p in folder.iterdir()) == sorted(EXPORT_FILES)
    with zipfile.ZipFile(sample_zip) as zf:
        for name in EXPORT_FILES:
            assert (folder / name).read_bytes() == zf.read(name)


# ---- layout and headers ---------------------------------------------------------------------


def test_zip_holds_the_classlink_file_set_at_the_root(sample_zip: Path):
    with zipfile.ZipFile(sample_zip) as zf:
        names = zf.namelist()
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in zf.infolist())
    assert names == list(EXPORT_FILES)
    assert names[0] == "manifest.csv" and all("/" not in n for n in names)
    assert {"orgs.csv", "users.csv", "demographics.csv", "enrollments.csv"} <= set(names)


def test_headers_are_the_spec_headers_plus_classlink_metadata(sample_zip: Path):
    assert header(sample_zip, "orgs.csv") == ORGS.header
    assert header(sample_zip, "demographics.csv") == DEMOGRAPHICS.header
    users_header = header(sample_zip, "users.csv")
    assert users_header == [*USERS.header, "metadata.yearOfGraduation", "metadata.title"]
    assert "metadata.yearOfGraduation" in CLASS_YEAR_SOURCES


def test_manifest_is_bulk_for_exactly_the_files_present(files):
    manifest = {r["propertyName"]: r["value"] for r in files["manifest.csv"]}
    assert list(manifest) == [p for p, _ in MANIFEST_ROWS]
    assert manifest["oneroster.version"] == "1.1"
    assert manifest["source.systemName"] == "ClassLink"
    for prop, state in manifest.items():
        if prop.startswith("file."):
            present = f"{prop.removeprefix('file.')}.csv" in EXPORT_FILES
            assert state == ("bulk" if present else "absent"), prop


# ---- content --------------------------------------------------------------------------------


def test_orgs_are_one_district_and_its_schools(files):
    orgs = files["orgs.csv"]
    district = [o for o in orgs if o["type"] == "district"]
    schools = [o for o in orgs if o["type"] == "school"]
    assert len(district) == 1 and len(schools) == SCHOOLS and len(orgs) == SCHOOLS + 1
    assert {o["parentSourcedId"] for o in schools} == {district[0]["sourcedId"]}
    assert len(district[0]["identifier"]) == 7
    assert all(len(o["identifier"]) == 12 and o["identifier"].isdigit() for o in schools)
    levels = Counter(o["name"].rsplit(" ", 2)[-2] for o in schools)
    assert levels == {"Elementary": 3, "Middle": 1, "High": 1}
    assert len({len(o["sourcedId"]) for o in orgs}) == 1


def test_users_counts_by_role(files):
    roles = Counter(u["role"] for u in files["users.csv"])
    assert roles["student"] == STUDENTS
    assert roles["guardian"] == 2
    assert roles["teacher"] >= STUDENTS // 18
    assert roles["administrator"] == SCHOOLS * 3 + 3
    assert len(files["demographics.csv"]) == STUDENTS


def test_students_have_same_width_numeric_ids_and_ceds_grades_across_kg_to_12(files):
    kids = students(files)
    ids = [u["sourcedId"] for u in files["users.csv"]]
    assert len(set(ids)) == len(ids)
    assert all(i.isdigit() for i in ids) and len({len(i) for i in ids}) == 1
    assert ids[0].startswith("0")
    grades = Counter(u["grades"] for u in kids)
    assert set(grades) == set(CEDS_GRADES[4:17])  # KG, 01 ... 12
    assert {u["password"] for u in files["users.csv"]} == {""}
    assert {u["metadata.yearOfGraduation"] for u in kids} == {""}


def test_students_sit_in_schools_serving_their_grade(files):
    band = {o["sourcedId"]: o["name"] for o in files["orgs.csv"]}
    for u in students(files):
        grade = 0 if u["grades"] == "KG" else int(u["grades"])
        name = band[u["orgSourcedIds"]]
        expected = "Elementary" if grade <= 5 else "Middle" if grade <= 8 else "High"
        assert expected in name, (u["sourcedId"], u["grades"], name)


def test_most_students_are_enabled_some_are_not(files):
    enabled = Counter(u["enabledUser"] for u in students(files))
    assert set(enabled) == {"true", "false"}
    assert enabled["false"] < enabled["true"] // 20


def test_staff_have_titles_and_some_teachers_have_two_schools(files, sample_zip: Path):
    staff = [u for u in files["users.csv"] if u["role"] in ("teacher", "administrator")]
    assert all(u["metadata.title"] for u in staff)
    assert any("," in u["orgSourcedIds"] for u in staff)
    district = next(o["sourcedId"] for o in files["orgs.csv"] if o["type"] == "district")
    assert {u["metadata.title"] for u in staff if u["orgSourcedIds"] == district} >= {
        "Superintendent"
    }
    with zipfile.ZipFile(sample_zip) as zf:
        assert b',"0' in zf.read("users.csv")  # a two-school orgSourcedIds is quoted


def test_guardians_and_their_children_name_each_other(files):
    by_id = {u["sourcedId"]: u for u in files["users.csv"]}
    guardians = [u for u in files["users.csv"] if u["role"] == "guardian"]
    for g in guardians:
        child = by_id[g["agentSourcedIds"]]
        assert child["role"] == "student" and child["agentSourcedIds"] == g["sourcedId"]


def test_usernames_and_emails_are_unique_and_names_are_clean(files):
    users = files["users.csv"]
    assert len({u["username"].lower() for u in users}) == len(users)
    assert all(u["email"].startswith(u["username"] + "@") for u in users)
    names = [u[c] for u in users for c in ("givenName", "familyName", "middleName")]
    assert not [n for n in names if set(n) & set(',".()[]{}')]
    assert any(not n.isascii() for n in names)  # unicode names are part of the sample


def test_birth_dates_fit_the_grade_in_school_year_2026_27(files):
    grade = {u["sourcedId"]: u["grades"] for u in students(files)}
    for d in files["demographics.csv"]:
        g = 0 if grade[d["sourcedId"]] == "KG" else int(grade[d["sourcedId"]])
        born = date.fromisoformat(d["birthDate"])
        age = 2026 - born.year - ((born.month, born.day) > (9, 1))  # age on 1 September 2026
        assert age in (5 + g, 6 + g), (d["sourcedId"], g, born)


def test_demographics_are_valid_tokens_with_consistent_two_or_more_flag(files):
    for d in files["demographics.csv"]:
        assert d["sex"] in ("male", "female")
        flags = [d[f] for f in RACE_FLAGS]
        assert set(flags) <= {"true", "false"}
        assert d["demographicRaceTwoOrMoreRaces"] == str(flags.count("true") >= 2).lower()


def test_enrollments_are_six_per_student_plus_one_teacher_per_class(files):
    enrollments = files["enrollments.csv"]
    roles = Counter(e["role"] for e in enrollments)
    assert roles["student"] == STUDENTS * 6
    assert roles["teacher"] == len(files["classes.csv"])
    classes = {c["sourcedId"] for c in files["classes.csv"]}
    assert {e["classSourcedId"] for e in enrollments} == classes
    courses = {c["sourcedId"] for c in files["courses.csv"]}
    assert {c["courseSourcedId"] for c in files["classes.csv"]} == courses


# ---- progress and arguments -----------------------------------------------------------------


def test_progress_counts_rows_up_to_the_total(tmp_path: Path, files):
    calls: list[tuple[int, int]] = []
    write_sample_district(
        str(tmp_path / "p.zip"),
        students=STUDENTS,
        schools=SCHOOLS,
        seed=SEED,
        progress=lambda done, total: calls.append((done, total)),
    )
    total = sum(len(records) for records in files.values())
    assert calls[-1] == (total, total)
    done = [d for d, _ in calls]
    assert done == sorted(done) and len(calls) >= len(EXPORT_FILES)


def test_chunks_do_not_change_the_output(tmp_path: Path, monkeypatch, sample_zip: Path):
    monkeypatch.setattr("naviance_pipeline.oneroster.sample.CHUNK_STUDENTS", 64)
    small = write_sample_district(
        str(tmp_path / "c.zip"), students=STUDENTS, schools=SCHOOLS, seed=SEED
    )
    assert Path(small).read_bytes() == sample_zip.read_bytes()


@pytest.mark.parametrize("kwargs", [{"fmt": "tar"}, {"students": 0}, {"schools": 0}])
def test_bad_arguments_raise(tmp_path: Path, kwargs):
    with pytest.raises(ValueError):
        write_sample_district(str(tmp_path / "x.zip"), **kwargs)


@pytest.mark.parametrize("schools", [1, 2, 3])
def test_few_schools_still_cover_every_grade(tmp_path: Path, schools: int):
    out = write_sample_district(str(tmp_path / "s.zip"), students=80, schools=schools, seed=3)
    with zipfile.ZipFile(out) as zf:
        users = list(csv.DictReader(io.StringIO(zf.read("users.csv").decode(), newline="")))
    kids = [u for u in users if u["role"] == "student"]
    assert len(kids) == 80
    assert len({u["orgSourcedIds"] for u in kids}) == schools


# ---- validity: the pipeline's own stages find no error ----------------------------------------


@pytest.mark.parametrize("include_staff", [False, True])
@pytest.mark.parametrize("as_of", [date(2026, 11, 30), date(2033, 8, 1)])
def test_sample_validates_without_errors_and_packages(
    tmp_path: Path, sample_zip: Path, files, include_staff: bool, as_of: date
):
    options = Options(as_of=as_of, include_staff=include_staff)
    source = open_source(str(sample_zip), options)
    orgs, users, demographics = build_all(source, options)
    findings = [*source.findings, *orgs.findings, *users.findings, *demographics.findings]
    assert not has_errors(findings), [f for f in findings if f.severity == ERROR][:3]
    # The guardians are the one thing left out, on purpose.
    assert {f.rule for f in findings} == {"USR-ROLE-NAVIANCE"}
    staff = sum(u["role"] in ("teacher", "administrator") for u in files["users.csv"])
    assert len(users.frame) == STUDENTS + (staff if include_staff else 0)
    is_student = (users.frame["role"] == "student").to_numpy()
    class_years = users.frame["metadata.classYear"].to_numpy()[is_student]
    assert len(set(class_years)) == 13 and "" not in class_years  # KG ... 12, all derived
    result = build_package(
        manifest_frame(options),
        orgs.frame,
        users.frame,
        demographics.frame,
        options,
        str(tmp_path / "NavianceOneRoster.zip"),
    )
    assert result.findings == []
    assert result.entries[3].rows == STUDENTS
