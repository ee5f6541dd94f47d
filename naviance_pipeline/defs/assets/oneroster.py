"""The validated OneRoster frames (orgs, users, demographics), the manifest and the package."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from naviance_pipeline.defs.assets.common import (
    findings_metadata,
    open_snapshot,
    partition_of,
    refresh_report,
    store_findings,
    stored_error_counts,
)
from naviance_pipeline.defs.checks import blocked, check_results, check_specs, column_schema
from naviance_pipeline.defs.io_manager import StoredSnapshot, frame_in, frame_on_demand
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
from naviance_pipeline.oneroster.package import build_package
from naviance_pipeline.oneroster.spec import DEMOGRAPHICS, ORGS, USERS, FileSpec
from naviance_pipeline.oneroster.stages import (
    StageResult,
    build_demographics,
    build_orgs,
    build_users,
)
from naviance_pipeline.operations.crash import crashpoint
from naviance_pipeline.operations.frames import StoredFrame, write_frame
from naviance_pipeline.operations.storage import GUARDS_STAGE, DataLayout, release_memory
from naviance_pipeline.reporting import report_columns
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


def build_oneroster_assets(partitions_def: dg.PartitionsDefinition) -> list:
    common = {"group_name": GROUP, "partitions_def": partitions_def}

    @dg.asset(
        kinds={"pandas", "parquet"},
        ins={"snapshot": dg.AssetIn("sis_extract")},
        check_specs=check_specs("users"),
        **common,
    )
    def users(
        context: dg.AssetExecutionContext, pipeline: PipelineResource, snapshot: StoredSnapshot
    ):
        """users.csv: students (and staff when included) with their class year in
        metadata.classYear, validated (rules CSV, XLS, BULK, ID, USR); org references are
        checked against the snapshot's orgs.csv (its rows not deleted)."""
        day, pipeline, _ = partition_of(context, pipeline)
        options = pipeline.options(day)
        source = open_snapshot(snapshot, options)
        yield from _stage_output(context, pipeline, day, USERS, build_users(source, options))

    @dg.asset(
        kinds={"pandas", "parquet"},
        # One column of users is needed: only it is read.
        ins={
            "snapshot": dg.AssetIn("sis_extract"),
            "users": frame_in("users", *USERS_READ_BY_ORGS),
        },
        check_specs=check_specs("orgs"),
        **common,
    )
    def orgs(
        context: dg.AssetExecutionContext,
        pipeline: PipelineResource,
        snapshot: StoredSnapshot,
        users: pd.DataFrame,
    ):
        """orgs.csv as Naviance gets it: the schools and district that the stored users of the
        date belong to (and their ancestors), validated against the Naviance profile (rules
        CSV, XLS, BULK, ID, ORG). Stored as Parquet for this date."""
        day, pipeline, _ = partition_of(context, pipeline)
        options = pipeline.options(day)
        result = build_orgs(open_snapshot(snapshot, options), users, options)
        yield from _stage_output(context, pipeline, day, ORGS, result)

    @dg.asset(
        kinds={"pandas", "parquet"},
        # Only two columns of users are needed: only they are read.
        ins={
            "snapshot": dg.AssetIn("sis_extract"),
            "users": frame_in("users", *USERS_READ_BY_DEMOGRAPHICS),
        },
        check_specs=check_specs("demographics"),
        **common,
    )
    def demographics(
        context: dg.AssetExecutionContext,
        pipeline: PipelineResource,
        snapshot: StoredSnapshot,
        users: pd.DataFrame,
    ):
        """demographics.csv: exactly one row per student of the stored users frame, validated
        (rules CSV, XLS, BULK, ID, DEM); a student without source demographics gets a
        sourcedId-only row and a DEM-MISSING warning."""
        day, pipeline, _ = partition_of(context, pipeline)
        options = pipeline.options(day)
        result = build_demographics(open_snapshot(snapshot, options), users, options)
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
        # The frames come unread: each is loaded when its entry is written and dropped after,
        # so one frame is resident at a time (loaded inputs would stay for the whole step).
        ins={
            "manifest_rows": dg.AssetIn("manifest"),
            "stored_orgs": frame_on_demand("orgs"),
            "stored_users": frame_on_demand("users"),
            "stored_demographics": frame_on_demand("demographics"),
        },
        check_specs=check_specs("naviance_package"),
        **common,
    )
    def naviance_package(
        context: dg.AssetExecutionContext,
        pipeline: PipelineResource,
        delivery: DeliveryResource,
        manifest_rows: pd.DataFrame,
        stored_orgs: StoredFrame,
        stored_users: StoredFrame,
        stored_demographics: StoredFrame,
    ):
        """NavianceOneRoster.zip for this date, archived under the data root: the manifest
        asset's rows and the three frames, in order, deterministic bytes, re-read and verified
        (PKG-VERIFY) and within the size limit (PKG-SIZE). Its delivery_guards check compares
        it with the last package delivered to the configured target (GRD-*): a blocked guard
        stops delivery."""
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

        def loader(stored: StoredFrame, asset: str):
            """Loads the frame when its entry is written, its columns of codes dictionary-
            encoded: the package's contract check then looks at each distinct code once."""
            coded = coded_columns(f"{asset}.csv", options.include_staff)
            return lambda: stored.load(dictionary=coded)

        load_users = loader(stored_users, "users")
        found: dict = {}

        def users_with_students() -> pd.DataFrame:
            """The users frame, its students kept aside for the identity guard on the way (the
            frame is in memory for its entry anyway: no second read of the strings)."""
            frame = load_users()
            found["students"] = student_table(frame)
            return frame

        loaders = [
            manifest_rows,
            loader(stored_orgs, "orgs"),
            users_with_students,
            loader(stored_demographics, "demographics"),
        ]

        def summaries() -> None:
            """The guards' and change summaries, from the report columns (no PII): computed
            while the package's last entries are re-read, once every frame has been dropped."""
            columns = report_columns(stored_users, "users"), report_columns(stored_orgs, "orgs")
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
