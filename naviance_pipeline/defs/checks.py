"""Findings as Dagster data-quality checks: one blocking check per rule family and asset.

A family with error findings fails its check at ERROR severity, and the asset that found them
fails its step for that date (``blocked``): no materialization is recorded, so the date shows
as failed in the asset's partitions and in everything downstream that did not run (no
package, no delivery), and the failure message starts with the blocking rule codes. Every
result names its date (description and ``partition`` metadata): Dagster shows an asset's latest
check result whatever its date. Warnings and repairs alone pass the check and are
listed in its metadata and description: a ClassLink export carries guardians every night, and
a check that is yellow every night teaches people to ignore yellow. Metadata carries counts
per rule and a Markdown table of the first findings — file, line, column, sourcedId, never a
PII value.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import dagster as dg

from naviance_pipeline.oneroster.findings import ERROR, Finding, consequence_counts, summarize
from naviance_pipeline.oneroster.rules import FAMILIES, family
from naviance_pipeline.oneroster.spec import FileSpec

# The asset check that reports each rule family (declared with the rules, in rules.py).
CHECK_NAMES = {prefix: fam.check for prefix, fam in FAMILIES.items()}
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
            description=f"Rules {fam}-* ({FAMILIES[fam].title}); an error finding blocks the "
            "package.",
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


def check_results(asset: str, findings: list[Finding], day: str) -> list[dg.AssetCheckResult]:
    """One result per check of ``asset`` for the date ``day``. Each names its asset and check:
    Dagster then takes the key as given, instead of looking up the asset's latest
    materialization once more per result to find it (a query each: about 0.1 s a run on the
    SQLite instance)."""
    grouped: dict[str, list[Finding]] = {fam: [] for fam in ASSET_FAMILIES[asset]}
    for f in findings:
        grouped[_check_family(asset, f.rule)].append(f)
    results = []
    for fam, items in grouped.items():
        summary = summarize(items)
        errors = summary["errors"]
        blocking, warnings = split_by_rule(items)
        metadata: dict = {
            "partition": day,
            "errors": errors,
            "warnings": summary["warnings"],
            "blocking_by_rule": dg.MetadataValue.json(blocking),
            "warnings_by_rule": dg.MetadataValue.json(warnings),
        }
        if "consequences" in summary:  # {cause: {consequence: n}}, counted under the cause
            metadata["consequences_by_rule"] = dg.MetadataValue.json(summary["consequences"])
        if items:
            metadata["first_findings"] = dg.MetadataValue.md(findings_table(items))
        results.append(
            dg.AssetCheckResult(
                asset_key=dg.AssetKey(asset),
                check_name=CHECK_NAMES[fam],
                passed=errors == 0,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata=metadata,
                description=f"{day}: {_verdict(items)}",
            )
        )
    return results


def split_by_rule(items: Iterable[Finding]) -> tuple[dict[str, int], dict[str, int]]:
    """({rule: n} of the error findings, which block; {rule: n} of the warnings and repairs)."""
    blocking: Counter = Counter()
    warnings: Counter = Counter()
    for f in items:
        (blocking if f.severity == ERROR else warnings)[f.rule] += 1
    return dict(sorted(blocking.items())), dict(sorted(warnings.items()))


def rule_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{rule} × {n}" for rule, n in counts.items())


def _verdict(items: list[Finding]) -> str:
    if not items:
        return "No findings."
    blocking, warnings = split_by_rule(items)
    parts = [f"Blocks the package: {rule_counts(blocking)}"] if blocking else ["Passed"]
    if warnings:
        parts.append(f"warnings and repairs (do not block): {rule_counts(warnings)}")
    consequences = consequence_counts(items)
    if consequences:
        under = (f"{rule_counts(c)} under {cause}" for cause, c in consequences.items())
        parts.append(f"counted under their cause, not listed: {', '.join(under)}")
    return "; ".join(parts) + "."


def blocked(asset: str, day: str, findings: list[Finding], what: str = "the package") -> dg.Failure:
    """The failure of ``asset``'s step for a date whose error findings block: led by the rule
    codes and counts, then the first error's message (findings carry no PII)."""
    blocking, _ = split_by_rule(findings)
    first = next(f for f in findings if f.severity == ERROR)
    where = ", ".join(
        str(x) for x in (first.file, first.line and f"line {first.line}", first.column) if x
    )
    return dg.Failure(
        f"{rule_counts(blocking)} block {what} for {day}: {asset} found "
        f"{sum(blocking.values())} error finding(s); first: {first.rule}"
        + (f" ({where})" if where else "")
        + f": {first.message}. Nothing downstream of {asset} was built or sent for {day}; "
        "see its checks and the report.",
        allow_retries=False,
    )


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
