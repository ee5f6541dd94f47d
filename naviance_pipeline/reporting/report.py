"""The validation report of one date: what was found and where, what was repaired, the class
years per school, the package, its deliveries, and a plain-language verdict.

Built only from what the pipeline stored: the findings JSON of each stage (already PII-free;
values of PII columns are dropped again here, belt and braces), the non-PII columns of the
users and orgs frames, the package summary and the delivery receipts. The same dict is written
as ``report.json``, rendered as ``report.html`` (``reporting.html``) and printed by
``naviance-pipeline report``.
"""

from __future__ import annotations

from itertools import accumulate

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from upath import UPath

from naviance_pipeline.delivery.receipts import is_delivered
from naviance_pipeline.oneroster.findings import ERROR, WARNING, consequence_counts
from naviance_pipeline.oneroster.kernels.arrays import arrow, blank, is_in, strings
from naviance_pipeline.oneroster.rules import FAMILIES, RULES, family
from naviance_pipeline.oneroster.spec import (
    CLASS_YEAR_COLUMN,
    DEMOGRAPHICS,
    ORGS,
    PII_COLUMNS,
    STRING,
    USERS,
)
from naviance_pipeline.operations.storage import (
    GUARDS_STAGE,
    SNAPSHOT_INDEX,
    DataLayout,
    read_json,
    sha256_of,
    write_private_bytes,
    write_private_json,
)
from naviance_pipeline.reporting import (
    NO_SCHOOL,
    PIPELINE_STAGES,
    STUDENT,
    all_receipts,
    flags,
    load_frame,
    memberships,
    reports_dir,
    school_names,
    text_table,
)
from naviance_pipeline.reporting.html import render_html

DELIVERED, BLOCKED, NOT_YET = "delivered", "blocked", "not delivered yet"
NOT_SENT = "not sent"  # a past date rebuilt: a newer date is already on the target
FIRST_FINDINGS = 10  # per rule
FINDING_KEYS = ("stage", "rule", "severity", "file", "line", "column", "sourcedId", "message")
FILE_LEVEL = "(file-level)"
UNKNOWN_SCHOOL = "(school unknown)"  # a user row not in the stored users frame
NO_CLASS_YEAR = "(none)"
RECEIPT_KEYS = (
    "target",
    "remote_path",
    "bytes",
    "sha256",
    "attempts",
    "started_at",
    "ended_at",
    "run_id",
    "guard_overrides",
    "redelivery",
)


def load_findings(layout: DataLayout, day: str) -> dict[str, list[dict]]:
    """The stored findings of every stage of ``day`` that ran, in pipeline order."""
    folder = layout.findings_path(day, GUARDS_STAGE).parent
    if not folder.exists():
        return {}
    stored = {p.stem: p for p in folder.iterdir() if p.suffix == ".json" and p.stem[:1] != "."}
    order = [*PIPELINE_STAGES, *sorted(set(stored) - set(PIPELINE_STAGES))]
    return {stage: read_json(stored[stage]) for stage in order if stage in stored}


def _clean(stored: dict, stage: str) -> dict:
    """A stored finding as the report shows it; a PII column's value is never kept."""
    out = {k: stored.get(k) for k in FINDING_KEYS if k != "stage"}
    out["stage"] = stage
    if stored.get("value") is not None and stored.get("column") not in PII_COLUMNS:
        out["value"] = stored["value"]
    if stored.get("consequences"):
        out["consequences"] = stored["consequences"]
    return out


def consequences_line(consequences: dict[str, dict[str, int]]) -> str:
    """``USR-ROLE: DEM-USER-REF (3); USR-GRADE: USR-CLASSYEAR (1)``."""
    return "; ".join(f"{cause}: {_rule_list(under)}" for cause, under in consequences.items())


def _findings_frame(findings: dict[str, list[dict]]) -> pd.DataFrame:
    """One row per finding (stage, rule, severity, file, sourcedId), in stored order."""
    records = [
        (stage, f["rule"], f["severity"], f.get("file"), f.get("sourcedId"))
        for stage, found in findings.items()
        for f in found
    ]
    columns = ["stage", "rule", "severity", "file", "sourcedId"]
    return pd.DataFrame.from_records(records, columns=columns).astype(STRING)


def _severities(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """Findings per value of ``key`` (sorted), one column per severity: error, warning."""
    counts = frame.groupby([key, "severity"]).size().unstack(fill_value=0)
    return counts.reindex(columns=[ERROR, WARNING], fill_value=0).astype(int)


def _by_rule(frame: pd.DataFrame) -> list[dict]:
    return [
        {
            "rule": rule,
            "rule_severity": RULES.get(rule, "?"),
            "family": FAMILIES[family(rule)].title if family(rule) in FAMILIES else "",
            "errors": errors,
            "warnings": warnings,
            "count": errors + warnings,
        }
        for rule, errors, warnings in _severities(frame, "rule").itertuples()
    ]


def _first_findings(findings: dict[str, list[dict]], frame: pd.DataFrame) -> dict[str, list]:
    # frame rows are the stages' findings one after the other: row -> (stage, row - start).
    ends = accumulate(map(len, findings.values()))
    starts = {
        stage: end - len(found) for (stage, found), end in zip(findings.items(), ends, strict=True)
    }
    picked = frame.groupby("rule").head(FIRST_FINDINGS)
    first: dict[str, list[dict]] = {}
    for position, stage in zip(picked.index, picked["stage"], strict=True):
        stored = findings[stage][position - starts[stage]]
        first.setdefault(stored["rule"], []).append(_clean(stored, stage))
    return dict(sorted(first.items()))


def _schools_of_findings(
    frame: pd.DataFrame, users: pd.DataFrame | None, orgs: pd.DataFrame | None
) -> pd.DataFrame:
    """``(school, severity, rule)`` per finding and school it concerns: a user row → each of the
    user's schools; an org row → that org; anything else → file-level."""
    has_id = flags(frame["sourcedId"].notna())
    user_rows = has_id & flags(frame["file"].isin([USERS.name, DEMOGRAPHICS.name]))
    org_rows = has_id & flags(frame["file"] == ORGS.name)
    on_users = frame[user_rows]
    if users is not None and len(on_users):
        # Only the users findings name: a million users' memberships would cost a second.
        named = users[is_in(users["sourcedId"], on_users["sourcedId"].astype(STRING))]
        on_users = on_users.merge(
            memberships(named, orgs)[["sourcedId", "school"]], on="sourcedId", how="left"
        )
    else:
        on_users = on_users.assign(school=pd.NA)
    parts = [
        on_users.assign(school=on_users["school"].fillna(UNKNOWN_SCHOOL)),
        frame[org_rows].assign(school=frame.loc[org_rows, "sourcedId"]),
        frame[~(user_rows | org_rows)].assign(school=FILE_LEVEL),
    ]
    columns = ["school", "severity", "rule"]
    parts = [p[columns] for p in parts if len(p)]  # concat warns about empty parts
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=STRING) for c in columns})
    return pd.concat(parts, ignore_index=True)


SPECIAL_SCHOOLS = (NO_SCHOOL, UNKNOWN_SCHOOL, FILE_LEVEL)  # listed after the real schools


def _special_last(school: str) -> tuple[int, str]:
    return (SPECIAL_SCHOOLS.index(school) + 1 if school in SPECIAL_SCHOOLS else 0), school


def _by_school(per_school: pd.DataFrame, names: dict[str, str]) -> list[dict]:
    severities = _severities(per_school, "school")
    rules = per_school.groupby(["school", "rule"]).size()
    return [
        {
            "school": school,
            "name": names.get(school, ""),
            "errors": int(severities.loc[school, ERROR]),
            "warnings": int(severities.loc[school, WARNING]),
            "by_rule": {rule: int(n) for rule, n in rules.loc[school].items()},
        }
        for school in sorted(severities.index, key=_special_last)
    ]


def _class_years(users: pd.DataFrame | None, orgs: pd.DataFrame | None) -> list[dict]:
    """Students per class year and school (a student in two schools counts in both)."""
    if users is None:
        return []
    students = pa.array(flags(users["role"] == STUDENT))
    # Count the distinct (orgSourcedIds, class year) pairs first: a few thousand of them stand
    # for a million students, and only those few are split into schools.
    cells = pc.dictionary_encode(arrow(users["orgSourcedIds"]).filter(students))
    years = pc.dictionary_encode(arrow(users[CLASS_YEAR_COLUMN]).filter(students))
    width = max(len(years.dictionary), 1)
    pairs, counts = np.unique(
        cells.indices.to_numpy() * width + years.indices.to_numpy(), return_counts=True
    )
    distinct = pd.DataFrame(
        {
            "sourcedId": blank(pd.RangeIndex(len(pairs))),
            "orgSourcedIds": strings(
                cells.dictionary.take(pa.array(pairs // width)), pd.RangeIndex(len(pairs))
            ),
        }
    )
    members = memberships(distinct, orgs)
    rows = members["row"].to_numpy()
    year_of = years.dictionary.take(pa.array(pairs % width)).to_pylist()
    table: dict[str, dict[str, int]] = {}
    for school, row in zip(members["school"].tolist(), rows.tolist(), strict=True):
        year = year_of[row] or NO_CLASS_YEAR
        per_year = table.setdefault(school, {})
        per_year[year] = per_year.get(year, 0) + int(counts[row])
    names = school_names(orgs)
    return [
        {
            "school": school,
            "name": names.get(school, ""),
            "students": sum(table[school].values()),
            "class_years": dict(sorted(table[school].items())),
        }
        for school in sorted(table, key=_special_last)
    ]


def _package(layout: DataLayout, day: str) -> dict | None:
    zip_path, summary_path = layout.package_path(day), layout.summary_path(day)
    package: dict = {}
    if zip_path.exists():
        package.update(
            path=str(zip_path), bytes=zip_path.fs.size(zip_path.path), sha256=sha256_of(zip_path)
        )
    if summary_path.exists():
        package["summary"] = read_json(summary_path)
    return package or None


def _export(layout: DataLayout, day: str) -> dict | None:
    """The export's freshness when ``sis_extract`` copied it (``sources/freshness.py``): its
    newest file's modification time and age, how long its content had not changed. None for
    a database or the bundled sample."""
    index = layout.raw_dir(day) / SNAPSHOT_INDEX
    return (read_json(index).get("freshness") or None) if index.exists() else None


def export_line(export: dict) -> str:
    """The export's age in words (the text and Markdown reports)."""
    parts = []
    if export.get("age_hours") is not None:
        parts.append(f"newest file modified {export['age_hours']:g} hours before the copy")
    parts.append(f"content unchanged for {export['unchanged_days']:g} days")
    return "; ".join(parts)


def _deliveries(layout: DataLayout, day: str) -> list[dict]:
    return [
        {k: r.get(k) for k in RECEIPT_KEYS}
        for r in all_receipts(layout)
        if r["partition"] == day and is_delivered(r)  # not one interrupted in flight
    ]


def _rule_list(counts: dict[str, int]) -> str:
    return ", ".join(f"{rule} ({n})" for rule, n in sorted(counts.items()))


def _errors_by_rule(frame: pd.DataFrame) -> dict[str, int]:
    counts = frame.loc[flags(frame["severity"] == ERROR), "rule"].value_counts()
    return {rule: int(n) for rule, n in counts.items()}


def compute_verdict(
    frame: pd.DataFrame, stages: list[str], deliveries: list[dict], package: dict | None
) -> dict:
    """``{"status", "reason", "blocking"}``: delivered (a receipt exists), blocked (error
    findings, or the delivery guards), or not delivered yet."""
    if deliveries:
        last = deliveries[-1]
        times = f"{len(deliveries)} times, last " if len(deliveries) > 1 else ""
        return {
            "status": DELIVERED,
            "reason": f"delivered {times}to {last['target']} at {last['ended_at']}",
            "blocking": {},
        }
    guards = flags(frame["stage"] == GUARDS_STAGE)
    stage_errors, guard_errors = _errors_by_rule(frame[~guards]), _errors_by_rule(frame[guards])
    reasons = []
    if stage_errors:
        total = sum(stage_errors.values())
        reasons.append(f"{total} error finding(s) block the package: {_rule_list(stage_errors)}")
    if guard_errors:
        reasons.append(f"the delivery guards held it back: {_rule_list(guard_errors)}")
    if reasons:
        return {
            "status": BLOCKED,
            "reason": "; ".join(reasons),
            "blocking": {**stage_errors, **guard_errors},
        }
    missing = [s for s in PIPELINE_STAGES if s not in stages]
    reason = "no delivery of this date yet"
    if missing:
        reason += f"; stages not run: {', '.join(missing)}"
    elif package is None:
        reason += "; no package built"
    return {"status": NOT_YET, "reason": reason, "blocking": {}}


def build_report(
    layout: DataLayout,
    day: str,
    *,
    verdict: str | None = None,
    frames: tuple[pd.DataFrame | None, pd.DataFrame | None] | None = None,
) -> dict:
    """The validation report of ``day`` as a JSON-able dict (see the module docstring);
    ``verdict`` replaces the computed status (the computed one stays in the reason).
    ``frames``: the (users, orgs) report columns (``load_frame``), when the caller has them."""
    findings = load_findings(layout, day)
    frame = _findings_frame(findings)
    if frames is None:
        frames = load_frame(layout, "users", day), load_frame(layout, "orgs", day)
    users, orgs = frames
    by_rule = _by_rule(frame)
    consequences = consequence_counts(f for found in findings.values() for f in found)
    for r in by_rule:
        if r["rule"] in consequences:  # counted under this cause, not among its findings
            r["consequences"] = sum(consequences[r["rule"]].values())
    # Every stage that ran, in pipeline order, a stage with no findings included.
    stages = _severities(frame, "stage").reindex(list(findings), fill_value=0)
    package = _package(layout, day)
    deliveries = _deliveries(layout, day)
    computed = compute_verdict(frame, list(findings), deliveries, package)
    if verdict is not None and verdict != computed["status"]:
        computed = {
            **computed,
            "status": verdict,
            "reason": f"{verdict} (the stored data says: {computed['reason']})",
        }
    return {
        "district": layout.district,
        "partition": day,
        "verdict": computed,
        "totals": {
            "findings": len(frame),
            "errors": int((frame["severity"] == ERROR).sum()),
            "warnings": int((frame["severity"] == WARNING).sum()),
            "repairs": sum(r["count"] for r in by_rule if r["rule_severity"] == "R"),
        },
        "stages": [
            {"stage": stage, "errors": errors, "warnings": warnings}
            for stage, errors, warnings in stages.itertuples()
        ],
        "by_rule": by_rule,
        "consequences": consequences,
        "by_school": _by_school(_schools_of_findings(frame, users, orgs), school_names(orgs)),
        "first_findings": _first_findings(findings, frame),
        "repairs": [
            {"rule": r["rule"], "count": r["count"]} for r in by_rule if r["rule_severity"] == "R"
        ],
        "class_years": _class_years(users, orgs),
        "export": _export(layout, day),
        "package": package,
        "deliveries": deliveries,
    }


def delivered_report(layout: DataLayout, day: str, *, not_sent: str | None = None) -> dict:
    """The stored report of ``day`` brought up to date after a delivery: its deliveries and
    verdict. The rest is kept as the package step wrote it, so the report describes the
    package that was delivered (and is not rebuilt from a million rows again). Built whole
    when no report is stored or no delivery is recorded. ``not_sent``: the delivery step
    decided not to send this date, and why (the verdict says so)."""
    stored = report_paths(layout, day)[0]
    deliveries = _deliveries(layout, day)
    if not stored.exists() or not (deliveries or not_sent):
        return build_report(layout, day)
    report = read_json(stored)
    report["deliveries"] = deliveries
    report["verdict"] = compute_verdict(_findings_frame({}), [], deliveries, report["package"])
    if not_sent:
        earlier = f"; {report['verdict']['reason']} before" if deliveries else ""
        report["verdict"] = {"status": NOT_SENT, "reason": not_sent + earlier, "blocking": {}}
    return report


def report_paths(layout: DataLayout, day: str) -> tuple[UPath, UPath]:
    """``reports/<date>/report.json`` and ``report.html``."""
    folder = reports_dir(layout, day)
    return folder / "report.json", folder / "report.html"


def write_report(layout: DataLayout, day: str, report: dict) -> tuple[UPath, UPath]:
    """``reports/<date>/report.json`` and ``report.html``, owner-only; returns both paths."""
    json_path, html_path = report_paths(layout, day)
    write_private_json(json_path, report)
    write_private_bytes(html_path, render_html(report).encode())
    return json_path, html_path


def _where(f: dict) -> str:
    parts = [f.get("file") or FILE_LEVEL]
    if f.get("line") is not None:
        parts.append(f"line {f['line']}")
    if f.get("column"):
        parts.append(f"column {f['column']}")
    if f.get("sourcedId"):
        parts.append(f"sourcedId {f['sourcedId']}")
    return ", ".join(parts)


def render_report_text(report: dict) -> str:
    """The report for the terminal (``naviance-pipeline report --date D``)."""
    verdict, totals = report["verdict"], report["totals"]
    out = [
        f"Naviance OneRoster report — district {report['district']}, {report['partition']}",
        f"Verdict: {verdict['status'].upper()} — {verdict['reason']}",
        f"Findings: {totals['errors']} error(s), {totals['warnings']} warning(s), "
        f"of which {totals['repairs']} repair(s)",
    ]
    if report["stages"]:
        out += ["", "By stage:"]
        rows = [[s["stage"], str(s["errors"]), str(s["warnings"])] for s in report["stages"]]
        out += text_table(["stage", "errors", "warnings"], rows)
    if report["by_rule"]:
        out += ["", "By rule:"]
        rows = [
            [r["rule"], r["rule_severity"], r["family"], str(r["errors"]), str(r["warnings"])]
            for r in report["by_rule"]
        ]
        out += text_table(["rule", "sev", "family", "errors", "warnings"], rows)
    if report.get("consequences"):
        out.append(
            "Counted under their cause (same user), not listed: "
            + consequences_line(report["consequences"])
        )
    if report["by_school"]:
        out += ["", "By school:"]
        rows = [
            [s["school"], s["name"], str(s["errors"]), str(s["warnings"]), _rule_list(s["by_rule"])]
            for s in report["by_school"]
        ]
        out += text_table(["school", "name", "errors", "warnings", "rules"], rows, names=2)
    if report["first_findings"]:
        out += ["", f"First findings (up to {FIRST_FINDINGS} per rule):"]
        for rule, found in report["first_findings"].items():
            out.append(f"  {rule}")
            for f in found:
                value = f" [value: {f['value']}]" if "value" in f else ""
                out.append(f"    {f['severity']}: {_where(f)}: {f['message']}{value}")
    if report["repairs"]:
        out += [
            "",
            "Repairs made: " + _rule_list({r["rule"]: r["count"] for r in report["repairs"]}),
        ]
    if report["class_years"]:
        out += ["", "Students per class year and school:"]
        years = sorted({y for s in report["class_years"] for y in s["class_years"]})
        rows = [
            [s["school"], s["name"], *(str(s["class_years"].get(y, 0)) for y in years)]
            for s in report["class_years"]
        ]
        out += text_table(["school", "name", *years], rows, names=2)
    if report.get("export"):
        out += ["", "Export: " + export_line(report["export"])]
    package = report["package"]
    out += ["", "Package: " + (_package_line(package) if package else "not built")]
    deliveries = report["deliveries"]
    out.append("Deliveries:" + ("" if deliveries else " none"))
    out += [
        f"  {d['ended_at']}  {d['target']}  {d['bytes']} bytes  run {d['run_id']}"
        for d in deliveries
    ]
    return "\n".join(out) + "\n"


def _package_line(package: dict) -> str:
    parts = []
    if "bytes" in package:
        parts.append(f"{package['bytes']} bytes, sha256 {package['sha256']}")
    summary = package.get("summary")
    if summary:
        parts.append(
            f"{summary['active_students']} active and {summary['disabled_students']} "
            "disabled students"
        )
    return "; ".join(parts)


def _md_cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_report_markdown(report: dict, first: int = 3) -> str:
    """The report as Markdown for the asset's metadata in the UI: the verdict, what blocks
    apart from warnings and repairs, counts by school, the first findings of each rule and
    the change summary against the last delivery. Built from the report (no PII)."""
    verdict, totals = report["verdict"], report["totals"]
    out = [
        f"**{verdict['status'].upper()}** — {_md_cell(verdict['reason'])}",
        "",
        f"District {report['district']}, {report['partition']}: {totals['errors']} error(s) "
        f"(block), {totals['warnings']} warning(s) (do not block), of which "
        f"{totals['repairs']} repair(s).",
    ]
    blocking = {r["rule"]: r["errors"] for r in report["by_rule"] if r["errors"]}
    warnings = {r["rule"]: r["warnings"] for r in report["by_rule"] if r["warnings"]}
    out.append("")
    out.append(f"- Blocks: {_rule_list(blocking) or 'nothing'}")
    out.append(f"- Warnings and repairs: {_rule_list(warnings) or 'none'}")
    if report.get("consequences"):
        out.append(f"- Counted under their cause: {consequences_line(report['consequences'])}")
    if report.get("export"):
        out.append(f"- Export: {export_line(report['export'])}")
    if report["by_school"]:
        out += ["", "| school | name | errors | warnings | rules |", "|---|---|---|---|---|"]
        out += [
            f"| {s['school']} | {_md_cell(s['name'])} | {s['errors']} | {s['warnings']} | "
            f"{_rule_list(s['by_rule'])} |"
            for s in report["by_school"]
        ]
    if report["first_findings"]:
        out += ["", f"First findings (up to {first} per rule):", ""]
        out += ["| rule | severity | where | message |", "|---|---|---|---|"]
        for rule, found in report["first_findings"].items():
            out += [
                f"| {rule} | {f['severity']} | {_md_cell(_where(f))} | {_md_cell(f['message'])} |"
                for f in found[:first]
            ]
    if report.get("changes"):
        out += ["", "Changes:", "", report["changes"]]
    return "\n".join(out) + "\n"
