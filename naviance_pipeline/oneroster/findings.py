"""Findings: what validation reports, one record per problem, never a PII value.

The rule codes and severities are ``shared/spec/rules.md`` as a table. Severity ``R`` (repair)
is reported as a warning that says what was changed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from naviance_pipeline.oneroster.spec import PII_COLUMNS

ERROR = "error"
WARNING = "warning"

# code -> severity letter from rules.md (E error, W warning, R repair reported as a warning)
RULES: dict[str, str] = {
    # Source package
    "SRC-UNREADABLE": "E",
    "SRC-UNSAFE-ENTRY": "E",
    "SRC-TOO-LARGE": "E",
    "SRC-NESTED": "W",
    "SRC-MISSING-FILE": "E",
    "SRC-DUPLICATE-FILE": "E",
    "SRC-EXTRA-FILE": "W",
    "SRC-MANIFEST-MISSING": "E",
    "SRC-VERSION": "E",
    "SRC-DELTA": "E",
    "SRC-MANIFEST-MISMATCH": "W",
    # CSV syntax
    "CSV-ENCODING": "E",
    "CSV-BOM": "R",
    "CSV-PARSE": "E",
    "CSV-NEWLINE-IN-VALUE": "E",
    "CSV-HEADER-MISSING": "E",
    "CSV-HEADER-INCOMPLETE": "W",
    "CSV-HEADER-ALIAS": "R",
    "CSV-HEADER-CASE": "E",
    "CSV-HEADER-ORDER": "W",
    "CSV-HEADER-DUPLICATE": "E",
    "CSV-HEADER-UNKNOWN": "W",
    "CSV-EMPTY": "E",
    "CSV-WHITESPACE": "R",
    "CSV-TOO-LONG": "W",
    # Spreadsheet damage
    "XLS-BOOLEAN-CASE": "R",
    "XLS-GRADE-PADDING": "R",
    "XLS-ENUM-CASE": "R",
    "XLS-SCIENTIFIC-ID": "E",
    "XLS-DATE-FORMAT": "E",
    "XLS-LEADING-ZERO": "W",
    # Bulk semantics
    "BULK-STATUS": "W",
    "BULK-DATE": "R",
    # Identifiers
    "ID-REQUIRED": "E",
    "ID-DUPLICATE": "E",
    "ID-CHARSET": "W",
    "ID-CASE-COLLISION": "W",
    # Orgs
    "ORG-NAME": "E",
    "ORG-TYPE": "E",
    "ORG-TYPE-NAVIANCE": "E",
    "ORG-PARENT": "E",
    "ORG-CYCLE": "E",
    "ORG-NO-SCHOOL": "E",
    # Users
    "USR-ENABLED": "E",
    "USR-ROLE": "E",
    "USR-ROLE-NAVIANCE": "W",
    "USR-REQUIRED": "E",
    "USR-ORG-REF": "E",
    "USR-STUDENT-SCHOOL": "E",
    "USR-AGENT-REF": "W",
    "USR-USERIDS": "E",
    "USR-EMAIL": "W",
    "USR-USERNAME-DUPLICATE": "W",
    "USR-GRADE": "E",
    "USR-GRADE-MULTI": "W",
    "USR-CLASSYEAR": "E",
    "USR-CLASSYEAR-RANGE": "E",
    "USR-STAFF-TITLE": "E",
    "USR-NAME-CHARS": "W",
    "USR-PASSWORD": "W",
    # Demographics
    "DEM-MISSING": "W",
    "DEM-USER-REF": "W",
    "DEM-DUPLICATE": "E",
    "DEM-BIRTHDATE": "E",
    "DEM-SEX": "E",
    "DEM-FLAG": "E",
    "DEM-RACE-CONSISTENCY": "W",
    # Package
    "PKG-SIZE": "E",
    "PKG-VERIFY": "E",
    # Guards
    "GRD-STUDENT-DROP": "E",
    "GRD-SCHOOL-VANISHED": "E",
    "GRD-DISABLED-JUMP": "W",
    "GRD-EMPTY": "E",
    "GRD-STALE-PARTITION": "E",
}

FAMILIES = {
    "SRC": "source package",
    "CSV": "CSV syntax",
    "XLS": "spreadsheet damage",
    "BULK": "bulk semantics",
    "ID": "identifiers",
    "ORG": "orgs",
    "USR": "users",
    "DEM": "demographics",
    "PKG": "package",
    "GRD": "guards",
}


def family(rule: str) -> str:
    """The family prefix of a rule code: ``USR-ROLE`` -> ``USR``."""
    return rule.split("-", 1)[0]


def default_severity(rule: str) -> str:
    return ERROR if RULES[rule] == "E" else WARNING


@dataclass(frozen=True)
class Finding:
    """One problem found in the source or the package. ``value`` is None for PII columns."""

    rule: str
    severity: str
    file: str | None
    line: int | None
    column: str | None
    sourcedId: str | None  # the spec's spelling, as it appears in reports
    message: str
    value: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["value"] is None:
            d.pop("value")
        return d


def finding(
    rule: str,
    message: str,
    *,
    file: str | None = None,
    line: int | None = None,
    column: str | None = None,
    sourced_id: str | None = None,
    value: str | None = None,
    severity: str | None = None,
) -> Finding:
    """Build a finding; drops ``value`` when ``column`` is a PII column (rules.md)."""
    if rule not in RULES:
        raise KeyError(f"unknown rule code {rule}")
    if column in PII_COLUMNS:
        value = None
    return Finding(
        rule=rule,
        severity=severity or default_severity(rule),
        file=file,
        line=None if line is None else int(line),
        column=column,
        sourcedId=sourced_id if sourced_id else None,
        message=message,
        value=value,
    )


def as_warning(f: Finding) -> Finding:
    """The same finding at most a warning (rows the package leaves out anyway, section 10)."""
    if f.severity == WARNING:
        return f
    return Finding(**{**asdict(f), "severity": WARNING})


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity == ERROR for f in findings)


def summarize(findings: Iterable[Finding]) -> dict:
    """``{"errors": n, "warnings": n, "by_rule": {code: n}}`` with rules sorted by code."""
    findings = list(findings)
    by_rule = Counter(f.rule for f in findings)
    return {
        "errors": sum(1 for f in findings if f.severity == ERROR),
        "warnings": sum(1 for f in findings if f.severity == WARNING),
        "by_rule": dict(sorted(by_rule.items())),
    }


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Stable report order: file, line, rule."""
    return sorted(findings, key=lambda f: (f.file or "", f.line or 0, f.rule, f.column or ""))
