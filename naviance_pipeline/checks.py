"""Findings as Dagster data-quality checks: one blocking check per rule family and asset.

A family with error findings fails its check at ERROR severity, which stops every
downstream asset (no package, no delivery). Warnings and repairs alone pass the check and are
listed in its metadata and description: a ClassLink export carries guardians every night, and
a check that is yellow every night teaches people to ignore yellow. Metadata carries counts
per rule and a Markdown table of the first findings — file, line, column, sourcedId, never a
PII value.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import dagster as dg

from naviance_pipeline.oneroster.findings import ERROR, FAMILIES, Finding, family, summarize
from naviance_pipeline.oneroster.spec import FileSpec

CHECK_NAMES = {
    "SRC": "source_package",
    "CSV": "csv_syntax",
    "XLS": "spreadsheet_damage",
    "BULK": "bulk_semantics",
    "ID": "identifiers",
    "ORG": "org_rules",
    "USR": "user_rules",
    "DEM": "demographic_rules",
    "PKG": "package_integrity",
    "GRD": "delivery_guards",
}
FILE_FAMILIES = ("CSV", "XLS", "BULK", "ID")
ASSET_FAMILIES: dict[str, tuple[str, ...]] = {
    "sis_extract": ("SRC",),
    "orgs": (*FILE_FAMILIES, "ORG"),
    "users": (*FILE_FAMILIES, "USR"),
    "demographics": (*FILE_FAMILIES, "DEM"),
    "naviance_package": ("PKG", "GRD"),
}
TABLE_ROWS = 20


def check_specs(asset: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            CHECK_NAMES[fam],
            asset=asset,
            blocking=True,
            description=f"Rules {fam}-* ({FAMILIES[fam]}); an error finding blocks the package.",
        )
        for fam in ASSET_FAMILIES[asset]
    ]


def _check_family(asset: str, rule: str) -> str:
    """The family whose check reports a rule on this asset. A source-level finding raised while
    reading one file (SRC-VERSION from its header) is reported with that file's CSV check."""
    fam = family(rule)
    families = ASSET_FAMILIES[asset]
    return fam if fam in families else families[0]


def findings_table(findings: Iterable[Finding], limit: int = TABLE_ROWS) -> str:
    """A Markdown table of the first findings. Messages never hold PII values; ``value`` is
    only present for non-PII columns."""
    rows = [
        "| rule | severity | file | line | column | sourcedId | message |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in list(findings)[:limit]:
        cells = [f.rule, f.severity, f.file or "", f.line or "", f.column or "", f.sourcedId or ""]
        message = f.message + (f" (value: `{f.value}`)" if f.value is not None else "")
        cells.append(message.replace("|", "\\|"))
        rows.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(rows)


def check_results(asset: str, findings: list[Finding]) -> list[dg.AssetCheckResult]:
    """One result per check of ``asset``. Each names its asset and check: Dagster then takes
    the key as given, instead of looking up the asset's latest materialization once more per
    result to find it (a query each: about 0.1 s a run on the SQLite instance)."""
    grouped: dict[str, list[Finding]] = {fam: [] for fam in ASSET_FAMILIES[asset]}
    for f in findings:
        grouped[_check_family(asset, f.rule)].append(f)
    results = []
    for fam, items in grouped.items():
        summary = summarize(items)
        errors = summary["errors"]
        metadata: dict = {
            "errors": errors,
            "warnings": summary["warnings"],
            "by_rule": dg.MetadataValue.json(summary["by_rule"]),
        }
        if items:
            metadata["first_findings"] = dg.MetadataValue.md(findings_table(items))
        results.append(
            dg.AssetCheckResult(
                asset_key=dg.AssetKey(asset),
                check_name=CHECK_NAMES[fam],
                passed=errors == 0,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata=metadata,
                description=_verdict(items),
            )
        )
    return results


def _verdict(items: list[Finding]) -> str:
    if not items:
        return "No findings."
    counts = Counter(f.rule for f in items)
    errors = sum(1 for f in items if f.severity == ERROR)
    head = "Blocks the package" if errors else "Passed with warnings"
    return f"{head}: " + ", ".join(f"{rule} × {n}" for rule, n in sorted(counts.items()))


def column_schema(spec: FileSpec, header: list[str]) -> dg.TableSchema:
    """The output columns as Dagster's ``dagster/column_schema`` (from the one spec table)."""
    known = {c.name: c for c in spec.columns}
    columns = []
    for name in header:
        col = known.get(name)
        desc = (
            "extension column"
            if col is None
            else (f"{col.kind}{', required' if col.required else ''}{', PII' if col.pii else ''}")
        )
        columns.append(
            dg.TableColumn(
                name,
                type="string",
                description=desc,
                constraints=dg.TableColumnConstraints(
                    nullable=not (col and col.required), unique=name == "sourcedId"
                ),
            )
        )
    return dg.TableSchema(columns=columns)
