"""The validation report as one self-contained HTML page: inline CSS, no scripts, no external
assets, so it can be mailed, archived or opened from the data root as is.

Every value from the report — finding messages included — goes through ``html.escape``: a
message quoting a source value must never become markup.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;
max-width:72em;padding:0 1em;color:#1f2328}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:2em;
border-bottom:1px solid #d0d7de;padding-bottom:.2em}h3{font-size:1em;margin:1.2em 0 .4em}
.verdict{padding:.8em 1em;border-radius:6px;font-size:1.1em;margin:1em 0}
.delivered{background:#dafbe1;border:1px solid #4ac26b}
.blocked{background:#ffebe9;border:1px solid #ff8182}
.pending{background:#fff8c5;border:1px solid #d4a72c}
table{border-collapse:collapse;margin:.4em 0}th,td{border:1px solid #d0d7de;
padding:.25em .6em;text-align:left;vertical-align:top}th{background:#f6f8fa}
td.n{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#656d76}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.92em}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _cell(value: object) -> str:
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    return f'<td class="n">{value:,}</td>' if numeric else f"<td>{_e(value)}</td>"


def _table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(title: str, content: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{content}</section>'


def _none(text: str) -> str:
    return f'<p class="muted">{_e(text)}</p>'


def _verdict(report: dict) -> str:
    verdict = report["verdict"]
    status = str(verdict["status"])
    css = next((c for c in ("delivered", "blocked") if status.startswith(c)), "pending")
    return (
        f'<div class="verdict {css}"><strong>{_e(status.upper())}</strong> — '
        f"{_e(verdict['reason'])}</div>"
    )


def _totals(report: dict) -> str:
    t = report["totals"]
    stages = _table(
        ["stage", "errors", "warnings"],
        ([s["stage"], s["errors"], s["warnings"]] for s in report["stages"]),
    )
    return (
        f"<p>{t['errors']:,} error(s), {t['warnings']:,} warning(s), of which "
        f"{t['repairs']:,} repair(s).</p>" + (stages if report["stages"] else "")
    )


def _by_rule(report: dict) -> str:
    if not report["by_rule"]:
        return _none("No findings.")
    return _table(
        ["rule", "severity", "family", "errors", "warnings"],
        (
            [r["rule"], r["rule_severity"], r["family"], r["errors"], r["warnings"]]
            for r in report["by_rule"]
        ),
    )


def _by_school(report: dict) -> str:
    if not report["by_school"]:
        return _none("No findings.")
    return _table(
        ["school", "name", "errors", "warnings", "rules"],
        (
            [
                s["school"],
                s["name"],
                s["errors"],
                s["warnings"],
                ", ".join(f"{rule} ({n})" for rule, n in s["by_rule"].items()),
            ]
            for s in report["by_school"]
        ),
    )


def _first_findings(report: dict) -> str:
    if not report["first_findings"]:
        return _none("No findings.")
    parts = []
    for rule, found in report["first_findings"].items():
        parts.append(f"<h3><code>{_e(rule)}</code></h3>")
        parts.append(
            _table(
                ["severity", "file", "line", "column", "sourcedId", "message", "value"],
                (
                    [
                        f["severity"],
                        f["file"],
                        "" if f["line"] is None else str(f["line"]),
                        f["column"],
                        f["sourcedId"],
                        f["message"],
                        f.get("value", ""),
                    ]
                    for f in found
                ),
            )
        )
    return "".join(parts)


def _repairs(report: dict) -> str:
    if not report["repairs"]:
        return _none("No value was repaired.")
    return _table(["rule", "values repaired"], ([r["rule"], r["count"]] for r in report["repairs"]))


def _class_years(report: dict) -> str:
    schools = report["class_years"]
    if not schools:
        return _none("No users frame stored for this date.")
    years = sorted({y for s in schools for y in s["class_years"]})
    return _table(
        ["school", "name", "students", *years],
        (
            [s["school"], s["name"], s["students"], *(s["class_years"].get(y, 0) for y in years)]
            for s in schools
        ),
    )


def _package(report: dict) -> str:
    package = report["package"]
    if not package:
        return _none("No package was built for this date.")
    rows = []
    if "bytes" in package:
        rows += [["file", package["path"]], ["bytes", package["bytes"]]]
        rows += [["sha256", package["sha256"]]]
    summary = package.get("summary") or {}
    for key in ("students", "active_students", "disabled_students"):
        if key in summary:
            rows.append([key.replace("_", " "), summary[key]])
    return _table(["item", "value"], rows)


def _deliveries(report: dict) -> str:
    if not report["deliveries"]:
        return _none("Not delivered.")
    return _table(
        ["ended at", "target", "remote path", "bytes", "attempts", "run", "guard overrides"],
        (
            [
                d["ended_at"],
                d["target"],
                d["remote_path"],
                d["bytes"],
                d["attempts"],
                d["run_id"],
                ", ".join(d.get("guard_overrides") or []),
            ]
            for d in report["deliveries"]
        ),
    )


SECTIONS = (
    ("Findings", "totals", _totals),
    ("Counts by rule", "by-rule", _by_rule),
    ("Findings by school", "by-school", _by_school),
    ("First findings of each rule", "first-findings", _first_findings),
    ("Repairs made", "repairs", _repairs),
    ("Students per class year and school", "class-years", _class_years),
    ("Package", "package", _package),
    ("Deliveries", "deliveries", _deliveries),
)


def render_html(report: dict) -> str:
    """One self-contained page: verdict banner, then the sections of ``SECTIONS``."""
    title = f"Naviance OneRoster report — {report['district']}, {report['partition']}"
    body = "".join(_section(name, render(report), anchor) for name, anchor, render in SECTIONS)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{_e(title)}</h1>{_verdict(report)}{body}</body></html>\n"
    )
