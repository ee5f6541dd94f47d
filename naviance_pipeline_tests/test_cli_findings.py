"""What ``validate`` hands people: the summary first (text and JSON), ``--limit`` for JSON
saying how many findings were left out, and ``--findings-csv`` with every finding for the SIS
staff: owner-only, one row per finding, never a PII value (planted in every non-PII column, as
test_pii_in_wrong_columns.py does)."""

from __future__ import annotations

import csv
import json
import os
import stat
from pathlib import Path

import pytest

from naviance_pipeline import cli
from naviance_pipeline.oneroster.findings import Finding
from naviance_pipeline_tests.pipeline_helpers import first_student_editor, rewrite_zip
from naviance_pipeline_tests.test_pii_in_wrong_columns import AS_OF, CASES, PII, write_district

COLUMNS = ["rule", "severity", "file", "line", "column", "sourcedId", "message", "consequences"]


def _read_csv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        return list(reader)


def _as_csv_row(f: dict) -> dict:
    row = {c: "" if f.get(c) is None else str(f[c]) for c in COLUMNS}
    row["consequences"] = "; ".join(f"{r}: {n}" for r, n in f.get("consequences", {}).items())
    return row


@pytest.fixture
def bad_district(tmp_path, tiny_district) -> Path:
    """Two errors on the first student (USR-ROLE, USR-ENABLED) and what follows from them."""
    edit, _ = first_student_editor({"role": "pupil", "enabledUser": "yes"})
    return rewrite_zip(tiny_district, tmp_path / "bad.zip", "users.csv", edit)


def test_json_puts_the_summary_first_and_limit_says_how_many_were_left_out(bad_district, capsys):
    argv = ["validate", str(bad_district), "--as-of", "2026-11-24", "--format", "json"]
    assert cli.main(argv) == 1
    full = json.loads(capsys.readouterr().out)
    total = len(full["findings"])
    assert total >= 2 and full["summary"]["errors"] >= 2
    assert next(iter(full)) == "summary"
    # The shape of before is kept (ok, counts, summary, findings); two keys are added.
    assert {"ok", "counts", "summary", "findings"} <= set(full)
    assert (full["findings_total"], full["findings_left_out"]) == (total, 0)

    assert cli.main([*argv, "--limit", "1"]) == 1
    limited = json.loads(capsys.readouterr().out)
    assert next(iter(limited)) == "summary"
    assert limited["summary"] == full["summary"]  # the summary counts every finding
    assert len(limited["findings"]) == 1 and limited["findings"][0]["severity"] == "error"
    assert limited["findings"][0] in full["findings"]
    assert (limited["findings_total"], limited["findings_left_out"]) == (total, total - 1)

    assert cli.main([*argv, "--limit", "0"]) == 1
    none = json.loads(capsys.readouterr().out)
    assert none["findings"] == [] and none["findings_left_out"] == total


def test_limit_goes_with_json_only(bad_district, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["validate", str(bad_district), "--limit", "3"])
    out, err = capsys.readouterr()
    assert exc.value.code == 2 and out == "" and len(err.splitlines()) == 1
    assert "--limit goes with --format json" in err


def test_text_puts_the_summary_first(bad_district, capsys):
    assert cli.main(["validate", str(bad_district), "--as-of", "2026-11-24"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("rows: orgs ")
    assert lines[1].startswith("NOT OK: ") and lines[-1] == lines[1]
    assert lines[2].startswith("by rule: ") and "USR-ROLE × 1" in lines[2]
    (heading,) = [i for i, line in enumerate(lines) if line.startswith("USR-ROLE (error) × 1")]
    assert heading > 2  # the details below the summary


def test_findings_csv_holds_every_finding_owner_only(bad_district, tmp_path, capsys):
    out = tmp_path / "findings.csv"
    out.write_text("an older file, world-readable")
    os.chmod(out, 0o644)
    old = os.umask(0o022)  # as a shell's; main() tightens it, the writer does not rely on that
    try:
        argv = ["validate", str(bad_district), "--as-of", "2026-11-24", "--format", "json"]
        assert cli.main([*argv, "--limit", "1", "--findings-csv", str(out)]) == 1
    finally:
        os.umask(old)
    payload = json.loads(capsys.readouterr().out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    rows = _read_csv(out)
    assert len(rows) == payload["findings_total"] > 1  # every finding, not the --limit
    assert {"USR-ROLE", "USR-ENABLED"} <= {r["rule"] for r in rows}
    # The student's demographics row, unmatched once the user is left out, is counted under
    # the cause, not written as a row of its own.
    (role,) = [r for r in rows if r["rule"] == "USR-ROLE"]
    assert role["consequences"] == "DEM-USER-REF: 1"
    assert "DEM-USER-REF" not in {r["rule"] for r in rows}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".findings.csv")]


def test_findings_csv_refuses_a_folder_in_one_line(bad_district, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["validate", str(bad_district), "--findings-csv", str(tmp_path)])
    out, err = capsys.readouterr()
    assert exc.value.code == 2 and out == "" and "is a folder, not a file" in err


def test_findings_csv_of_an_unreadable_source(tmp_path, capsys):
    out = tmp_path / "findings.csv"
    assert cli.main(["validate", str(tmp_path / "missing.zip"), "--findings-csv", str(out)]) == 2
    capsys.readouterr()
    assert [r["rule"] for r in _read_csv(out)] == ["SRC-UNREADABLE"]


def test_findings_csv_cells_are_never_read_as_formulas(tmp_path):
    out = tmp_path / "f.csv"
    planted = Finding("USR-ROLE", "error", "users.csv", 2, "role", "=HYPERLINK(x)", "-1 or +1")
    cli.write_findings_csv(str(out), [planted])
    (row,) = _read_csv(out)
    assert row["sourcedId"] == "'=HYPERLINK(x)" and row["message"] == "'-1 or +1"


@pytest.mark.parametrize(("spec", "column", "row"), CASES, ids=lambda x: getattr(x, "name", x))
def test_findings_csv_never_holds_pii_typed_into_a_non_pii_column(
    tmp_path, capsys, spec, column, row
):
    for k, value in enumerate(PII):
        folder = write_district(tmp_path / str(k), spec.name, column, row, value)
        out = tmp_path / f"findings-{k}.csv"
        argv = ["validate", str(folder), "--as-of", AS_OF, "--format", "json"]
        code = cli.main([*argv, "--findings-csv", str(out)])
        printed, err = capsys.readouterr()
        assert code in (0, 1), err
        text = out.read_text(encoding="utf-8-sig")
        for pii in PII:
            assert pii not in text, f"{pii!r} typed into {spec.name} {column} was written"
        # The CSV is the JSON's findings, column for column (no value column).
        assert _read_csv(out) == [_as_csv_row(f) for f in json.loads(printed)["findings"]]
