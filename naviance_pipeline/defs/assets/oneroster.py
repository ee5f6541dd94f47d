"""The validated OneRoster frames (orgs, users, demographics), the manifest and the package."""

from collections.abc import Callable, Iterator

import dagster as dg
import pandas as pd
from upath import UPath

from naviance_pipeline.defs.assets.common import (
    findings_metadata,
    load_snapshot,
    partition_of,
    refresh_report,
    store_findings,
    stored_error_counts,
)
from naviance_pipeline.defs.checks import blocked, check_results, check_specs, column_schema
from naviance_pipeline.defs.resources import DeliveryResource, PipelineResource
from naviance_pipeline.delivery.facts import (
    remove_facts,
    student_table,
    write_facts,
)
from naviance_pipeline.delivery.guards import summarize_package
from naviance_pipeline.delivery.service import IDENTITY_KEY, check_guards
from naviance_pipeline.oneroster.contract import coded_columns
from naviance_pipeline.oneroster.findings import has_errors
from naviance_pipeline.oneroster.manifest import manifest_frame
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.package import build_package
from naviance_pipeline.oneroster.spec import DEMOGRAPHICS, ORGS, USERS, FileSpec
from naviance_pipeline.oneroster.stages import (
    StageResult,
    build_demographics,
    build_orgs,
    build_users,
)
from naviance_pipeline.operations.crash import crashpoint
from naviance_pipeline.operations.frames import read_frame, write_frame
from naviance_pipeline.operations.storage import GUARDS_STAGE, DataLayout, release_memory
from naviance_pipeline.reporting import load_frame
from naviance_pipeline.reporting.diff import diff_markdown, diff_partitions

GROUP = "oneroster"
USERS_READ_BY_DEMOGRAPHICS = ["sourcedId", "role"]  # build_demographics needs no other
USERS_READ_BY_ORGS = ["orgSourcedIds"]  # build_orgs needs no other


def _stage_output(
    context: dg.AssetExecutionContext,
    pipeline: PipelineResource,
    day: str,
    spec: FileSpec,
    result: StageResult,
) -> Iterator[dg.MaterializeResult[pd.DataFrame] | dg.AssetCheckResult]:
    asset = context.asset_key.path[-1]
    store_findings(pipeline, day, asset, result.findings)
    context.log.info(f"{asset}: {result.counts}")
    if has_errors(result.findings):
        # Blocked: the frame and findings are stored (the report reads them), the checks say
        # why, and the step fails, so the date shows as failed here and downstream.
        write_frame(result.frame, pipeline.layout.frame_path(asset, day))
        refresh_report(pipeline, day)  # the package asset that would write it won't run
        yield from check_results(asset, result.findings, day)
        raise blocked(asset, day, result.findings)
    yield dg.MaterializeResult(
        value=result.frame,
        metadata={
            "dagster/row_count": len(result.frame),
            "dagster/column_schema": column_schema(spec, list(result.frame.columns)),
            "counts": dg.MetadataValue.json(result.counts),
            **findings_metadata(result.findings),
        },
    )
    yield from check_results(asset, result.findings, day)


def _change_summary(
    layout: DataLayout,
    day: str,
    last_delivered: str | None,
    current: tuple[pd.DataFrame, pd.DataFrame],
    target_name: str,
) -> dict:
    """Students added, deactivated, removed, moved and regraded since the last delivery (or
    the previous packaged date): the numbers to check before overriding a guard."""
    try:
        summary = diff_partitions(
            layout, day, last_delivered, current=current, target_name=target_name
        )
    except FileNotFoundError:
        return {}
    return {
        "changes": dg.MetadataValue.md(diff_markdown(summary)),
        "changes_against": summary["against"] or "(nothing earlier)",
    }


def _stored_path(layout: DataLayout, asset: str, day: str) -> UPath:
    """Where ``asset``'s frame of ``day`` is stored; a frame that is not there fails the step."""
    path = layout.frame_path(asset, day)
    if not path.exists():
        raise dg.Failure(f"no stored {asset} frame for {day}: materialize {asset} first")
    return path


def _frame_loader(
    layout: DataLayout, asset: str, day: str, options: Options
) -> Callable[[], pd.DataFrame]:
    """Loads ``asset``'s stored frame of ``day`` when called (``build_package`` calls it when
    the frame's entry is written), its columns of codes dictionary-encoded: the package's
    contract check then looks at each distinct code once."""
    path = _stored_path(layout, asset, day)
    coded = coded_columns(f"{asset}.csv", options.include_staff)
    return lambda: read_frame(path, dictionary=coded)


def _report_columns(layout: DataLayout, day: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The (users, orgs) columns the reports read (no PII), read once for the guards' summary
    and the change summary."""
    for asset in ("users", "orgs"):
        _stored_path(layout, asset, day)
    return load_frame(layout, "users", day), load_frame(layout, "orgs", day)


def build_oneroster_assets(partitions_def: dg.PartitionsDefinition) -> list:
    common = {"group_name": GROUP, "partitions_def": partitions_def}

    @dg.asset(
        kinds={"pandas", "parquet"},
        deps=["sis_extract"],
        check_specs=check_specs("users"),
        **common,
    )
    def users(context: dg.AssetExecutionContext, pipeline: PipelineResource):
        """users.csv: students (and staff when included) with their class year in
        metadata.classYear, validated (rules CSV, XLS, BULK, ID, USR); org references are
        checked against the snapshot's orgs.csv (its rows not deleted)."""
        day, pipeline, _ = partition_of(context, pipeline)
        options = pipeline.options(day)
        source = load_snapshot(pipeline, day, options)
        yield from _stage_output(context, pipeline, day, USERS, build_users(source, options))

    @dg.asset(
        kinds={"pandas", "parquet"},
        # One column of users is needed: read here rather than the whole frame as input.
        deps=[users],
        check_specs=check_specs("orgs"),
        **common,
    )
    def orgs(context: dg.AssetExecutionContext, pipeline: PipelineResource):
        """orgs.csv as Naviance gets it: the schools and district that the stored users of the
        date belong to (and their ancestors), validated against the Naviance profile (rules
        CSV, XLS, BULK, ID, ORG). Stored as Parquet for this date."""
        day, pipeline, _ = partition_of(context, pipeline)
        options = pipeline.options(day)
        source = load_snapshot(pipeline, day, options)
        users_frame = read_frame(_stored_path(pipeline.layout, "users", day), USERS_READ_BY_ORGS)
        result = build_orgs(source, users_frame, options)
        yield from _stage_output(context, pipeline, day, ORGS, result)

    @dg.asset(
        kinds={"pandas", "parquet"},
        # Only two columns of users are needed: read here rather than the whole frame as input.
        deps=[users],
        check_specs=check_specs("demographics"),
        **common,
    )
    def demographics(context: dg.AssetExecutionContext, pipeline: PipelineResource):
        """demographics.csv: exactly one row per student of the stored users frame, validated
        (rules CSV, XLS, BULK, ID, DEM); a student without source demographics gets a
        sourcedId-only row and a DEM-MISSING warning."""
        day, pipeline, _ = partition_of(context, pipeline)
        options = pipeline.options(day)
        source = load_snapshot(pipeline, day, options)
        path = _stored_path(pipeline.layout, "users", day)
        result = build_demographics(source, read_frame(path, USERS_READ_BY_DEMOGRAPHICS), options)
        yield from _stage_output(context, pipeline, day, DEMOGRAPHICS, result)

    @dg.asset(kinds={"pandas", "csv"}, deps=[orgs, users, demographics], **common)
    def manifest(context: dg.AssetExecutionContext, pipeline: PipelineResource):
        """manifest.csv rows: OneRoster 1.1, bulk orgs/users/demographics, every other file
        absent, and the configured source system name and district code."""
        day, pipeline, _ = partition_of(context, pipeline)
        frame = manifest_frame(pipeline.options(day))
        return dg.MaterializeResult(
            value=frame,
            metadata={
                "dagster/row_count": len(frame),
                "rows": dg.MetadataValue.md(
                    "| propertyName | value |\n|---|---|\n"
                    + "\n".join(f"| {p} | {v} |" for p, v in frame.itertuples(index=False))
                ),
            },
        )

    @dg.asset(
        kinds={"zip"},
        # The frames are read here, not passed in: each is loaded when its entry is written and
        # dropped after, so one frame is resident at a time (inputs would stay for the step).
        deps=[manifest, orgs, users, demographics],
        check_specs=check_specs("naviance_package"),
        **common,
    )
    def naviance_package(
        context: dg.AssetExecutionContext,
        pipeline: PipelineResource,
        delivery: DeliveryResource,
    ):
        """NavianceOneRoster.zip for this date, archived under the data root: the four files
        in order, deterministic bytes, re-read and verified (PKG-VERIFY) and within the size
        limit (PKG-SIZE). Its delivery_guards check compares it with the last package
        delivered to the configured target (GRD-*): a blocked guard stops delivery."""
        day, pipeline, delivery = partition_of(context, pipeline, delivery)
        errors = {k: v for k, v in stored_error_counts(pipeline, day).items() if v}
        if errors:
            raise dg.Failure(
                f"refusing to package {day}: stages with error findings or never run: {errors}"
            )
        options = pipeline.options(day)
        layout = pipeline.layout
        dest = layout.package_path(day)
        release_memory()  # a stage begins: what the one before freed goes back to the OS
        load_orgs, load_users, load_demographics = (
            _frame_loader(layout, a, day, options) for a in ("orgs", "users", "demographics")
        )
        found: dict = {}

        def users_with_students() -> pd.DataFrame:
            """The users frame, its students kept aside for the identity guard on the way (the
            frame is in memory for its entry anyway: no second read of the strings)."""
            frame = load_users()
            found["students"] = student_table(frame)
            return frame

        loaders = [load_orgs, users_with_students, load_demographics]

        def summaries() -> None:
            """The guards' and change summaries, from the report columns (no PII): computed
            while the package's last entries are re-read, once every frame has been dropped."""
            columns = _report_columns(layout, day)
            summary = summarize_package(columns[1], columns[0], day)
            students = found["students"]
            plan = delivery.plan(context.run.tags)
            guards = check_guards(
                layout,
                plan.name,
                summary,
                limits=plan.limits,
                overrides=plan.overrides,
                students=students,
            )
            changes = _change_summary(layout, day, guards.last_partition, columns, plan.name)
            found.update(columns=columns, summary=summary, guards=guards, changes=changes)

        result = build_package(*loaders, options, str(dest), meanwhile=summaries)
        summary, guards, changes = found["summary"], found["guards"], found["changes"]
        crashpoint("package:archived")
        if has_errors(result.findings):
            # An earlier package of this date must not be delivered in place of this one.
            dest.unlink(missing_ok=True)
            remove_facts(layout, day)
        else:
            if guards.identity is not None:  # taken once here, reused at delivery
                summary = {**summary, IDENTITY_KEY: guards.identity}
            write_facts(layout, day, summary, found.pop("students"), result.sha256)
        store_findings(pipeline, day, GUARDS_STAGE, guards.findings)
        changes_md = changes["changes"].value if changes else None
        report = refresh_report(pipeline, day, frames=found["columns"], changes=changes_md)
        findings = [*result.findings, *guards.findings]
        if has_errors(findings):
            yield from check_results("naviance_package", findings, day)
            what = "the package" if has_errors(result.findings) else "its delivery"
            raise blocked("naviance_package", day, findings, what)
        yield dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(result.path),
                "size": result.size,
                "sha256": result.sha256,
                "entries": dg.MetadataValue.md(
                    "| entry | rows | bytes | sha256 |\n|---|---|---|---|\n"
                    + "\n".join(
                        f"| {e.name} | {e.rows} | {e.bytes} | `{e.sha256}` |"
                        for e in result.entries
                    )
                ),
                "active_students": summary["active_students"],
                "disabled_students": summary["disabled_students"],
                "compared_with": guards.last_partition or "(no earlier delivery)",
                **findings_metadata(findings),
                **changes,
                **report,
            },
        )
        yield from check_results("naviance_package", findings, day)
        crashpoint("naviance_package:end")

    return [users, orgs, demographics, manifest, naviance_package]
