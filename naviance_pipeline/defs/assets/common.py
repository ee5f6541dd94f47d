"""Helpers the stage assets share: partition options, the snapshot opened, stored findings."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import dagster as dg
import pandas as pd

from naviance_pipeline.defs.io_manager import StoredSnapshot
from naviance_pipeline.defs.partitions import split_key
from naviance_pipeline.defs.resources import DeliveryResource, PipelineResource
from naviance_pipeline.oneroster.findings import Finding, summarize
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.source import Source, SourceUnreadable, open_source
from naviance_pipeline.operations.crash import crashpoint
from naviance_pipeline.operations.storage import (
    FINDING_STAGES,
    read_json,
    write_private_json,
)


def open_snapshot(snapshot: StoredSnapshot, options: Options) -> Source:
    """Open the stored snapshot of a date (the stage's ``sis_extract`` input) — never the live
    source — so any stage can be re-run alone for a past date.

    Opened lazily: a stage inflates only the file it reads (sis_extract's eager open already
    vouched for the snapshot), and an entry that cannot be read fails the stage."""
    try:
        source = open_source(str(snapshot.open_path), options, lazy=True)
    except SourceUnreadable as exc:
        raise _unreadable(snapshot.day, exc) from exc
    source.files = _FailingFiles(source.files, snapshot.day)
    return source


def _unreadable(day: str, exc: SourceUnreadable) -> dg.Failure:
    return dg.Failure(f"the snapshot for {day} cannot be read: {exc.finding.message}")


class _FailingFiles(Mapping[str, bytes]):
    """A lazily read snapshot whose unreadable entry fails the stage as a ``dg.Failure``."""

    def __init__(self, files: Mapping[str, bytes], day: str) -> None:
        self._files, self._day = files, day

    def __getitem__(self, name: str) -> bytes:
        try:
            return self._files[name]
        except SourceUnreadable as exc:
            raise _unreadable(self._day, exc) from exc

    def __contains__(self, name: object) -> bool:
        return name in self._files

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)


def store_findings(pipeline: PipelineResource, day: str, stage: str, findings: list[Finding]):
    write_private_json(pipeline.layout.findings_path(day, stage), [f.to_dict() for f in findings])


def stored_error_counts(pipeline: PipelineResource, day: str) -> dict[str, int]:
    """Error findings per stage for ``day`` (a stage never run counts as missing: -1)."""
    counts = {}
    for stage in FINDING_STAGES:
        path = pipeline.layout.findings_path(day, stage)
        if not path.exists():
            counts[stage] = -1
            continue
        counts[stage] = sum(1 for f in read_json(path) if f["severity"] == "error")
    return counts


def findings_metadata(findings: list[Finding]) -> dict:
    """Counts with what blocks (errors) apart from warnings and repairs."""
    from naviance_pipeline.defs.checks import split_by_rule

    summary = summarize(findings)
    blocking, warnings = split_by_rule(findings)
    metadata = {
        "findings/errors": summary["errors"],
        "findings/warnings": summary["warnings"],
        "findings/blocking_by_rule": dg.MetadataValue.json(blocking),
        "findings/warnings_by_rule": dg.MetadataValue.json(warnings),
    }
    if "consequences" in summary:  # counted under their cause, not among the findings
        metadata["findings/consequences"] = dg.MetadataValue.json(summary["consequences"])
    return metadata


def refresh_report(
    pipeline: PipelineResource,
    day: str,
    *,
    delivered: bool = False,
    not_sent: str | None = None,
    frames: tuple[pd.DataFrame | None, pd.DataFrame | None] | None = None,
    changes: str | None = None,
) -> dict:
    """Rewrite the date's validation report (HTML + JSON) from what is stored now (after a
    delivery: only its deliveries and verdict; ``frames``: the (users, orgs) report columns
    when the caller has read them; ``changes``: the change summary's Markdown; ``not_sent``:
    why the delivery step did not send the date); returns the metadata entries that show it
    in the UI: the report as Markdown (``report_md``), the verdict, and the files' paths."""
    from naviance_pipeline.reporting.report import (
        build_report,
        delivered_report,
        render_report_markdown,
        write_report,
    )

    if delivered or not_sent:
        report = delivered_report(pipeline.layout, day, not_sent=not_sent)
    else:
        report = build_report(pipeline.layout, day, frames=frames)
    if changes:  # the change summary against the last delivery, kept for the delivery step
        report["changes"] = changes
    json_path, html_path = write_report(pipeline.layout, day, report)
    return {
        "report_md": dg.MetadataValue.md(render_report_markdown(report)),
        "report": dg.MetadataValue.path(str(html_path)),
        "report_json": dg.MetadataValue.path(str(json_path)),
        "verdict": report["verdict"]["status"],
    }


def partition_of(
    context: dg.AssetExecutionContext,
    pipeline: PipelineResource,
    delivery: DeliveryResource | None = None,
) -> tuple[str, PipelineResource, DeliveryResource | None]:
    """(date, pipeline, delivery) for this run's partition: unchanged for a plain date; for a
    date × district key, copies configured for that district from the districts file."""
    crashpoint(f"{context.asset_key.to_user_string()}:start")
    day, district = split_key(context.partition_key)
    if district is None:
        return day, pipeline, delivery
    return (
        day,
        pipeline.for_district(district),
        delivery.for_district(district) if delivery is not None else None,
    )
