"""Helpers the stage assets share: partition options, the stored snapshot, stored findings."""

from __future__ import annotations

import dagster as dg

from naviance_pipeline.oneroster.findings import Finding, summarize
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.source import Source, SourceUnreadable, open_source
from naviance_pipeline.resources import PipelineResource
from naviance_pipeline.storage import FINDING_STAGES, read_json, write_private_json

SNAPSHOT_INDEX = "snapshot.json"


def load_snapshot(pipeline: PipelineResource, day: str, options: Options) -> Source:
    """Open the stored snapshot of ``day`` — never the live source — so any stage can be
    re-run alone for a past date."""
    raw = pipeline.layout.raw_dir(day)
    index = raw / SNAPSHOT_INDEX
    if not index.exists():
        raise dg.Failure(f"no source snapshot for {day}: materialize sis_extract for {day} first")
    try:
        return open_source(str(raw / read_json(index)["open"]), options)
    except SourceUnreadable as exc:
        raise dg.Failure(f"the snapshot for {day} cannot be read: {exc.finding.message}") from exc


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
    summary = summarize(findings)
    return {
        "findings/errors": summary["errors"],
        "findings/warnings": summary["warnings"],
        "findings/by_rule": dg.MetadataValue.json(summary["by_rule"]),
    }


def refresh_report(pipeline: PipelineResource, day: str) -> dict:
    """Rewrite the date's validation report (HTML + JSON) from what is stored now; returns
    the metadata entries that link it from the asset in the UI."""
    from naviance_pipeline.reporting.report import build_report, write_report

    report = build_report(pipeline.layout, day)
    json_path, html_path = write_report(pipeline.layout, day, report)
    return {
        "report": dg.MetadataValue.path(str(html_path)),
        "report_json": dg.MetadataValue.path(str(json_path)),
        "verdict": report["verdict"]["status"],
    }
