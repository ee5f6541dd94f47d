"""``naviance-pipeline anonymise`` (issue 19, part 3): a copy of an export for support in which
every PII value is a keyed, consistent fake of the same shape, and the proof that ``validate``
finds the same rule codes on the same files, lines and columns in the copy as in the source.

Real files throughout: the bundled sample with damage of every validate-time rule family
injected (the package and delivery-guard families judge a built package, not a source), a
folder and a ZIP, and the command line as a district runs it.
"""

from __future__ import annotations

import csv
import io
import os
import re
import string
import zipfile
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from naviance_pipeline import cli
from naviance_pipeline.oneroster.anonymise import KEY_ENV, Faker, anonymise, prove
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.rules import family
from naviance_pipeline.oneroster.spec import DEMOGRAPHICS, MANIFEST_ROWS, ORGS, USERS
from naviance_pipeline_tests.oneroster.factories import clean_district, csv_bytes, file_bytes
from naviance_pipeline_tests.pipeline_helpers import zip_entries

AS_OF = date(2026, 11, 30)
KEY, OTHER_KEY = b"district-secret-0123456789", b"another-secret-9876543210"
# Injected PII that must not survive anywhere in the copy.
SECRETS = (
    "maria.gomez@example.org",
    "hunter2secret",
    "123-45-6789",
    "Maria Luisa Gomez",
    "O'Brien, Jr.",
    "Zoltanovich",
)
# The families validate reports; PKG (the built package) and GRD (delivery) judge no source.
VALIDATE_FAMILIES = {"SRC", "CSV", "XLS", "BULK", "ID", "ORG", "USR", "DEM"}


def _rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def _text(rows: list[list[str]], end: str = "\r\n") -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator=end).writerows(rows)
    return out.getvalue().encode()


def damaged_sample(sample: Path, dest: Path, *, encoding: bool = False) -> Path:
    """The bundled sample with damage of every family validate reports injected, byte-level
    damage (a BOM, LF endings, a ragged row) included; with ``encoding``, a Windows-1252 byte in
    demographics.csv (CSV-ENCODING: the file is then not read, so its other damage is not seen)."""
    entries = zip_entries(sample)
    users = _rows(entries["users.csv"])
    h = users[0].index
    s = [r for r in users[1:] if r[h("role")] == "student"]
    edits = [
        (0, "givenName", " Maria\x01 "),  # CSV-WHITESPACE, CSV-CONTROL-CHARS
        (1, "familyName", "O'Brien, Jr."),  # USR-NAME-CHARS, a quoted comma
        (2, "email", "not an address"),  # USR-EMAIL
        (5, "enabledUser", "TRUE"),  # XLS-BOOLEAN-CASE
        (6, "grades", "9"),  # XLS-GRADE-PADDING
        (7, "role", "Student"),  # XLS-ENUM-CASE
        (8, "sourcedId", "1.23457E+11"),  # XLS-SCIENTIFIC-ID
        (9, "status", "active"),  # BULK-STATUS
        (9, "dateLastModified", "2026-11-01"),  # BULK-DATE
        (10, "sourcedId", s[11][h("sourcedId")]),  # ID-DUPLICATE
        (12, "sourcedId", "Ab#12"),  # ID-CHARSET
        (13, "sourcedId", "CaseX1"),  # ID-CASE-COLLISION with the next
        (14, "sourcedId", "casex1"),
        (15, "orgSourcedIds", "9999"),  # USR-ORG-REF
        (16, "grades", "maria.gomez@example.org"),  # USR-GRADE: PII in a non-PII column
        (17, "userIds", "StateID:123"),  # USR-USERIDS
        (18, "password", "hunter2secret"),  # USR-PASSWORD
        (19, "givenName", ""),  # USR-REQUIRED
        (20, "familyName", "Zoltanovich" * 30),  # CSV-TOO-LONG
        (21, "familyName", "Line\nBreak"),  # CSV-NEWLINE-IN-VALUE
        (22, "sourcedId", s[22][h("sourcedId")].lstrip("0")),  # XLS-LEADING-ZERO
        (23, "role", "Maria Luisa Gomez"),  # USR-ROLE: a name typed into role
        (24, "sourcedId", ""),  # ID-REQUIRED
    ]
    for row, column, value in edits:
        s[row][h(column)] = value
    s[3][h("username")] = s[4][h("username")].upper()  # USR-USERNAME-DUPLICATE
    users[0].append("studentSSN")  # CSV-HEADER-UNKNOWN, holding PII
    for k, r in enumerate(users[1:]):
        r.append("123-45-6789" if k == 0 else f"555-{k:02d}-0000")
    users.append(["ragged", "row"])  # CSV-PARSE
    users_bytes = b"\xef\xbb\xbf" + _text(users, "\n")  # CSV-BOM, LF line endings

    orgs = _rows(entries["orgs.csv"])
    orgs[0][orgs[0].index("parentSourcedId")] = "parentSourceId"  # CSV-HEADER-ALIAS
    orgs.append(["9001", "", "", "Extra Org", "academy", "", "nope"])  # ORG-TYPE, ORG-PARENT

    demo = _rows(entries["demographics.csv"])
    d = demo[0].index
    for row, column, value in [
        (1, "birthDate", "3/4/2010"),  # XLS-DATE-FORMAT
        (2, "birthDate", "2010-02-30"),  # DEM-BIRTHDATE (impossible)
        (3, "birthDate", "2031-05-05"),  # DEM-BIRTHDATE (after the as-of date)
        (4, "sex", "2009-04-17"),  # DEM-SEX: a birth date typed into sex
        (5, "white", "Yes"),  # DEM-FLAG
        (6, "asian", "true"),  # DEM-RACE-CONSISTENCY (white too, not two-or-more)
        (6, "white", "true"),
    ]:
        demo[row][d(column)] = value
    demo.append(list(demo[8]))  # DEM-DUPLICATE
    demo.append(["77777777", *demo[9][1:]])  # DEM-USER-REF
    if encoding:
        demo[7][d("cityOfBirth")] = "CP1252"
    demo_bytes = _text(demo).replace(b"CP1252", b"G\xf3mez")

    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            if name == "classes.csv":
                continue  # SRC-MANIFEST-MISMATCH: the manifest says bulk
            replaced = {"users.csv": users_bytes, "demographics.csv": demo_bytes}
            z.writestr(name, replaced.get(name, _text(orgs) if name == "orgs.csv" else data))
        z.writestr("notes.txt", "call Maria Luisa Gomez at 555-0100")  # SRC-EXTRA-FILE
    return dest


def _all_bytes(path: Path) -> bytes:
    if path.is_dir():
        return b"\0".join(p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file())
    return b"\0".join(zip_entries(path).values())


def _skeleton(data: bytes) -> str:
    """A CSV file without its letters and digits: what the copy must keep byte for byte."""
    return re.sub(r"[^\W_]", "", data.decode("utf-8", "surrogateescape"))


@pytest.mark.parametrize(("shape", "encoding"), [("zip", False), ("folder", False), ("zip", True)])
def test_the_copy_of_the_damaged_sample_gives_the_same_findings(
    tmp_path, tiny_district, shape, encoding
):
    source = damaged_sample(tiny_district, tmp_path / "district.zip", encoding=encoding)
    if shape == "folder":
        folder = tmp_path / "district"
        with zipfile.ZipFile(source) as z:
            z.extractall(folder)
        source = folder
    copy = anonymise(str(source), str(tmp_path / "out"), KEY)
    proof = prove(str(source), str(copy.path), Options(as_of=AS_OF))
    report = "\n".join(proof.lines())
    assert proof.same, report
    assert report.endswith("SAME: the copy gives the same rule codes on the same files, "
                           "lines and columns")  # fmt: skip
    found = {rule for rule, *_ in proof.original}
    assert {family(rule) for rule in found} == VALIDATE_FAMILIES, found
    demographic = (
        ["CSV-ENCODING"]
        if encoding
        else [
            "XLS-DATE-FORMAT",
            "DEM-BIRTHDATE",
            "DEM-SEX",
            "DEM-FLAG",
            "DEM-DUPLICATE",
            "DEM-USER-REF",
            "DEM-RACE-CONSISTENCY",
        ]
    )
    for rule in (
        "CSV-BOM",
        "CSV-PARSE",
        "XLS-SCIENTIFIC-ID",
        "XLS-LEADING-ZERO",
        "ID-CASE-COLLISION",
        "USR-USERNAME-DUPLICATE",
        "ID-DUPLICATE",
        "ID-REQUIRED",
        "SRC-EXTRA-FILE",
        "CSV-HEADER-UNKNOWN",
        "USR-ROLE",
        *demographic,
    ):
        assert rule in found, rule  # fmt: skip
    copied = _all_bytes(copy.path)
    for secret in SECRETS:
        assert secret.encode() not in copied, secret
    # Structure and damage byte for byte: only letters and digits differ.
    originals = (
        {p.name: p.read_bytes() for p in source.iterdir()}
        if shape == "folder"
        else zip_entries(source)
    )
    copies = (
        {p.name: p.read_bytes() for p in copy.path.iterdir()}
        if shape == "folder"
        else zip_entries(copy.path)
    )
    assert sorted(copies) == sorted(originals)
    for name, data in originals.items():
        if name.endswith(".csv"):
            assert _skeleton(copies[name]) == _skeleton(data), name
            assert data.splitlines()[0] == copies[name].splitlines()[0], name  # the header
    assert copies["users.csv"].startswith(b"\xef\xbb\xbf") and b"\r\n" not in copies["users.csv"]
    assert (b"\xf3" in copies["demographics.csv"]) == encoding  # an undecodable byte is kept
    assert copies["notes.txt"] == b""  # a file validate does not read: written empty


def test_same_key_same_copy_other_key_other_copy(tmp_path, tiny_district):
    first = anonymise(str(tiny_district), str(tmp_path / "a"), KEY).path.read_bytes()
    again = anonymise(str(tiny_district), str(tmp_path / "b"), KEY).path.read_bytes()
    other = anonymise(str(tiny_district), str(tmp_path / "c"), OTHER_KEY).path.read_bytes()
    assert first == again
    assert first != other
    a, c = (
        zip_entries(tmp_path / "a" / "district.zip"),
        zip_entries(tmp_path / "c" / "district.zip"),
    )
    differing = [n for n in a if a[n] != c[n]]
    assert {"users.csv", "demographics.csv", "orgs.csv"} <= set(differing)


def test_references_and_codes_survive_and_sourced_ids_are_replaced(tmp_path, tiny_district):
    copy = anonymise(str(tiny_district), str(tmp_path / "out"), KEY).path
    before, after = zip_entries(tiny_district), zip_entries(copy)
    u0, u1 = _rows(before["users.csv"]), _rows(after["users.csv"])
    h = u0[0].index
    for old, new in zip(u0[1:], u1[1:], strict=True):
        for column in ("role", "grades", "enabledUser"):
            assert old[h(column)] == new[h(column)]
        for column in ("sourcedId", "username", "givenName", "familyName", "email"):
            if old[h(column)]:
                assert new[h(column)] != old[h(column)]
                assert len(new[h(column)]) == len(old[h(column)])
    ids = {r[0] for r in _rows(after["users.csv"])[1:]}
    orgs = {r[0] for r in _rows(after["orgs.csv"])[1:]}
    assert all(set(r[h("orgSourcedIds")].split(",")) <= orgs for r in u1[1:])
    assert {r[0] for r in _rows(after["demographics.csv"])[1:]} <= ids
    assert not ids & {r[0] for r in u0[1:]}


def test_keep_sourcedids_keeps_ids_but_not_a_value_that_is_no_id(tmp_path, tiny_district):
    entries = zip_entries(tiny_district)
    users = _rows(entries["users.csv"])
    users[1][0] = "maria.gomez@example.org"
    source = tmp_path / "district.zip"
    with zipfile.ZipFile(source, "w") as z:
        for name, data in entries.items():
            z.writestr(name, _text(users) if name == "users.csv" else data)
    copy = anonymise(str(source), str(tmp_path / "out"), KEY, keep_sourced_ids=True).path
    after = _rows(zip_entries(copy)["users.csv"])
    assert [r[0] for r in after[2:]] == [r[0] for r in users[2:]]
    assert after[1][0] != users[1][0] and "@" in after[1][0]
    assert prove(str(source), str(copy), Options(as_of=AS_OF)).same


def test_the_copy_is_owner_only(tmp_path, tiny_district):
    folder = tmp_path / "export"
    with zipfile.ZipFile(tiny_district) as z:
        z.extractall(folder)
    old = os.umask(0o022)
    try:
        zipped = anonymise(str(tiny_district), str(tmp_path / "out"), KEY).path
        copied = anonymise(str(folder), str(tmp_path / "out"), KEY).path
    finally:
        os.umask(old)
    assert zipped.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o700
    assert copied.stat().st_mode & 0o777 == 0o700
    assert {p.stat().st_mode & 0o777 for p in copied.iterdir()} == {0o600}


# ---- property: no original PII value survives anywhere in the copy ---------------------------

_ALNUM = string.ascii_letters + string.digits
# Eight letters or digits at least (a shorter value can be someone else's fake: a same-shape
# fake of a 3-letter name is another 3-letter name), six of them after any leading zeros (those
# are kept, for XLS-LEADING-ZERO).
_VALUE = st.text(_ALNUM, min_size=8, max_size=24).filter(lambda v: len(v.lstrip("0")) >= 6)
_PERSON = st.fixed_dictionaries(
    {
        "sourcedId": _VALUE,
        "givenName": st.tuples(_VALUE, _VALUE).map(" ".join),
        "familyName": _VALUE,
        "username": _VALUE,
        "identifier": _VALUE,
        "email": st.tuples(_VALUE, _VALUE).map(lambda t: f"{t[0]}@{t[1]}.org"),
        "phone": st.integers(10**9, 10**10 - 1).map(lambda n: f"({n // 10**7}) {n % 10**7:07d}"),
        "grades": st.tuples(_VALUE, _VALUE).map(lambda t: f"{t[0]} {t[1]}"),  # PII in grades
        "birthDate": st.dates(date(1995, 1, 1), date(2021, 12, 31)).map(date.isoformat),
    }
)


def _write_district(folder: Path, people: list[dict]) -> Path:
    orgs, users, demographics = clean_district(staff=False)
    for k, p in enumerate(people):
        users[k] = {**users[k], **{c: v for c, v in p.items() if c != "birthDate"}}
        demographics[k] = {
            **demographics[k],
            "sourcedId": p["sourcedId"],
            "birthDate": p["birthDate"],
        }
    manifest = [{"propertyName": n, "value": v or "x"} for n, v in MANIFEST_ROWS]
    (folder / "manifest.csv").write_bytes(csv_bytes(["propertyName", "value"], manifest))
    for spec, rows in ((ORGS, orgs), (USERS, users), (DEMOGRAPHICS, demographics)):
        (folder / spec.name).write_bytes(file_bytes(spec, rows))
    return folder


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(people=st.lists(_PERSON, min_size=1, max_size=5), keep=st.booleans())
def test_no_original_pii_value_survives_anywhere_in_the_copy(tmp_path_factory, people, keep):
    folder = _write_district(tmp_path_factory.mktemp("district"), people)
    out = tmp_path_factory.mktemp("out")
    copy = anonymise(str(folder), str(out), KEY, keep_sourced_ids=keep).path
    copied = _all_bytes(copy)
    baseline = _all_bytes(_write_district(tmp_path_factory.mktemp("clean"), []))
    shifted = {
        (date.fromisoformat(p["birthDate"]) + timedelta(days=Faker(KEY).days)).isoformat()
        for p in people
    }
    kept = {p["sourcedId"] for p in people} if keep else set()
    for p in people:
        for column, value in p.items():
            if column == "sourcedId" and keep:
                continue
            if column == "birthDate" and value in shifted:
                continue  # a date moved onto another person's: dates shift consistently
            for piece in (value, *value.split(" "), *value.split("@")):
                if len(piece) < 8 or piece.encode() in baseline:  # a header word, say
                    continue
                if not any(piece in sourced_id for sourced_id in kept):
                    assert piece.encode() not in copied, (column, piece)
    assert prove(str(folder), str(copy), Options(as_of=AS_OF)).same


# ---- the command line ------------------------------------------------------------------------


def test_without_a_key_it_refuses_in_one_line(tmp_path, tiny_district, capsys, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    assert cli.main(["anonymise", str(tiny_district), "--out", str(tmp_path / "o")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and KEY_ENV in err
    assert not (tmp_path / "o").exists()
    short = tmp_path / "short.key"
    short.write_text("tooshort\n")
    args = ["anonymise", str(tiny_district), "--out", str(tmp_path / "o"), "--key-file"]
    assert cli.main([*args, str(short)]) == 2
    assert "tooshort" not in "".join(capsys.readouterr())
    assert cli.main([*args, str(tmp_path / "missing.key")]) == 2


def test_the_command_prints_the_proof_and_never_the_key(tmp_path, tiny_district, capsys):
    key_file = tmp_path / "district.key"
    key_file.write_bytes(KEY + b"\n")
    argv = ["anonymise", str(tiny_district), "--out", str(tmp_path / "o"), "--as-of", "2026-11-30"]
    assert cli.main([*argv, "--key-file", str(key_file)]) == 0
    out, err = capsys.readouterr()
    assert "SAME: the copy gives the same rule codes" in out
    assert "USR-ROLE-NAVIANCE" in out and "same places" in out
    assert KEY.decode() not in out + err
    # The copy exists now: a second run refuses to replace it.
    assert cli.main([*argv, "--key-file", str(key_file)]) == 2


def test_a_copy_whose_findings_differ_exits_1_naming_the_place(
    tmp_path, tiny_district, capsys, monkeypatch
):
    # A birth date the day before the as-of date is moved 30 to 365 days on: after the as-of
    # date in the copy (DEM-BIRTHDATE there only). The proof says so instead of claiming a match.
    entries = zip_entries(tiny_district)
    demo = _rows(entries["demographics.csv"])
    demo[1][demo[0].index("birthDate")] = (AS_OF - timedelta(days=1)).isoformat()
    source = tmp_path / "district.zip"
    with zipfile.ZipFile(source, "w") as z:
        for name, data in entries.items():
            z.writestr(name, _text(demo) if name == "demographics.csv" else data)
    monkeypatch.setenv(KEY_ENV, KEY.decode())
    argv = ["anonymise", str(source), "--out", str(tmp_path / "o"), "--as-of", AS_OF.isoformat()]
    assert cli.main(argv) == 1
    out = capsys.readouterr().out
    assert "copy only: DEM-BIRTHDATE at demographics.csv:2 column birthDate" in out
    assert out.rstrip().endswith("DIFFERENT: the copy does not give the same findings (see above)")


def test_a_hostile_folder_is_copied_as_it_is_without_following_or_reading(tmp_path, tiny_district):
    # A link out of the folder and a FIFO (SRC-UNSAFE-ENTRY): recreated, never followed or
    # opened (a FIFO with no writer would hang a reader), and the proof still holds.
    folder = tmp_path / "export"
    with zipfile.ZipFile(tiny_district) as z:
        z.extractall(folder)
    outside = tmp_path / "outside.csv"
    outside.write_text("sourcedId\nMaria Luisa Gomez\n")
    (folder / "extra.csv").symlink_to(outside)
    os.mkfifo(folder / "pipe.csv")
    copy = anonymise(str(folder), str(tmp_path / "out"), KEY).path
    assert os.readlink(copy / "extra.csv") == str(outside)
    assert (copy / "pipe.csv").is_fifo()
    proof = prove(str(folder), str(copy), Options(as_of=AS_OF))
    assert proof.same and ("SRC-UNSAFE-ENTRY" in {rule for rule, *_ in proof.original})
