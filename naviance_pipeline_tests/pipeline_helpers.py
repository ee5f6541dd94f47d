"""Helpers for tests that materialize the real assets on a temporary Dagster instance."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import dagster as dg

from naviance_pipeline.definitions import build_definitions
from naviance_pipeline.defs.jobs import NIGHTLY_JOB, STAGES
from naviance_pipeline.operations.settings import Settings

ALL_ASSETS = frozenset(STAGES)


def run_job(
    settings: Settings,
    partition: str,
    instance: dg.DagsterInstance,
    *,
    selection: list[str] | None = None,
    tags: dict[str, str] | None = None,
    run_config: dict | None = None,
) -> dg.ExecuteInProcessResult:
    defs = build_definitions(settings)
    job = defs.resolve_job_def(NIGHTLY_JOB)
    return job.execute_in_process(
        partition_key=partition,
        instance=instance,
        raise_on_error=False,
        asset_selection=[dg.AssetKey(k) for k in selection] if selection else None,
        tags=tags,
        run_config=run_config,
    )


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def failed_checks(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    return {
        f"{e.asset_key.to_user_string()}:{e.check_name}": e.description or ""
        for e in result.get_asset_check_evaluations()
        if not e.passed
    }


def zip_entries(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def folder_state(folder: Path) -> dict[str, bytes]:
    """Every file under a folder with its bytes: to prove nothing changed."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def rewrite_zip(src: Path, dest: Path, entry_suffix: str, edit) -> Path:
    """Copy a source ZIP, passing the entry whose name ends with ``entry_suffix`` through
    ``edit(list_of_csv_rows) -> list_of_csv_rows``."""
    import csv

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith(entry_suffix):
                rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
                out = io.StringIO(newline="")
                csv.writer(out, lineterminator="\r\n").writerows(edit(rows))
                data = out.getvalue().encode()
            zout.writestr(info.filename, data)
    return dest


def set_first(rows: list[list[str]], where: dict[str, str], changes: dict[str, str]) -> int:
    """Apply ``changes`` to the first data row matching ``where``; return its record line."""
    header = rows[0]
    for number, row in enumerate(rows[1:], start=2):
        if all(row[header.index(k)] == v for k, v in where.items()):
            for k, v in changes.items():
                row[header.index(k)] = v
            return number
    raise AssertionError(f"no row matches {where}")


def first_student_editor(changes: dict[str, str]):
    """An ``edit`` for ``rewrite_zip`` changing the first student row; the edited record's
    line number is appended to the returned list."""
    lines: list[int] = []

    def edit(rows):
        lines.append(set_first(rows, {"role": "student"}, changes))
        return rows

    return edit, lines


def write_districts_file(folder: Path, entries: list[dict], start: str = "2026-11-20") -> Path:
    """A districts file of ``entries`` with its data root ``folder/data``."""
    import yaml

    path = folder / "districts.yaml"
    document = {"data_root": str(folder / "data"), "partitions_start": start}
    path.write_text(yaml.safe_dump({**document, "districts": entries}))
    return path
