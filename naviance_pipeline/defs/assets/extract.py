"""``sis_extract``: an immutable, byte-for-byte snapshot of the district's source for the date."""

import dagster as dg
import tenacity

from naviance_pipeline.defs.assets.common import findings_metadata, partition_of, store_findings
from naviance_pipeline.defs.checks import blocked, check_results, check_specs
from naviance_pipeline.defs.io_manager import SNAPSHOT_IO_MANAGER
from naviance_pipeline.defs.resources import PipelineResource
from naviance_pipeline.defs.sensors import alert_if_stale, export_dep
from naviance_pipeline.oneroster.findings import has_errors
from naviance_pipeline.oneroster.source import SourceUnreadable, open_source, redact_url
from naviance_pipeline.operations.crash import crashpoint
from naviance_pipeline.operations.storage import ensure_private_dir, sweep_leftovers
from naviance_pipeline.sources.freshness import (
    look,
    observe,
    snapshot_version,
    stale_finding,
    state_path,
)
from naviance_pipeline.sources.snapshot import (
    Snapshot,
    SourceConfig,
    SourceConfigError,
    SourceUnavailable,
    sftp_errors,
    storage_options,
    take_snapshot,
)


def build_extract_asset(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    many = partitions_def if isinstance(partitions_def, dg.MultiPartitionsDefinition) else None

    @dg.asset(
        name="sis_extract",
        group_name="extract",
        kinds={"csv", "zip"},
        deps=[export_dep(many)],
        partitions_def=partitions_def,
        check_specs=check_specs("sis_extract"),
        io_manager_key=SNAPSHOT_IO_MANAGER,
    )
    def sis_extract(context: dg.AssetExecutionContext, pipeline: PipelineResource):
        """Snapshot of the configured source for this date, stored under the data root: a
        OneRoster ZIP or folder copied byte for byte; a SIS CSV export copied as exported and
        converted through its mapping; or a SQL database's query results with the query text
        and row counts, converted the same way. Every later stage of the date reads this
        snapshot, never the live source, so any stage can be re-run alone. Its check reports
        the source-package rules (SRC-*), the export's freshness (SRC-STALE-EXPORT: its age
        and how long its content has not changed are in the metadata) and values the mapping
        could not map. Its output is the snapshot's index (what to open, kind, mapping,
        queries, files), stored beside it once the snapshot is complete: the later stages
        take the snapshot as an input. Upstream of it: sis_export, the export as it lands.
        """
        day, pipeline, _ = partition_of(context, pipeline)
        config = pipeline.source_config()
        raw = pipeline.layout.raw_dir(day)
        # Everything of the district lives below one owner-only folder.
        ensure_private_dir(pipeline.layout.base)
        for leftover in sweep_leftovers(pipeline.layout.base):
            context.log.warning(f"removed {leftover}, left by a run that was killed")
        try:
            url = pipeline.resolved_source()
            snapshot, attempts = _snapshot_with_retries(context, pipeline, config, url, day)
        except FileNotFoundError as exc:
            # Named without credentials a URL may carry (user:password@, ?token=).
            raise dg.Failure(
                f"SRC-UNREADABLE: the source {redact_url(url)} does not exist"
            ) from exc
        except SourceConfigError as exc:
            raise dg.Failure(
                f"the {config.kind} source cannot be used as configured: {exc}\n"
                f"Nothing was stored for {day}; the last snapshot of the date is kept."
            ) from exc
        except SourceUnavailable as exc:
            raise dg.Failure(
                f"the source is unreachable after {1 + max(0, pipeline.source_retries)} "
                f"attempt(s): {exc}\nNothing was stored for {day}; the last snapshot of the "
                f"date is kept. Re-run sis_extract for {day}."
            ) from exc
        except SourceUnreadable as exc:
            raise dg.Failure(f"{exc.finding.rule}: {exc.finding.message}") from exc
        crashpoint("sis_extract:snapshot")
        try:
            findings = open_source(str(snapshot.open_path), pipeline.options(day)).findings
        except SourceUnreadable as exc:
            findings = [exc.finding]
        findings = [*snapshot.findings, *findings]
        freshness = _freshness(context, pipeline, config, url, snapshot, day)
        if freshness is not None and (
            stale := stale_finding(freshness, pipeline.freshness_limits())
        ):
            findings.append(stale)
            state = state_path(pipeline.layout.base)
            alert_if_stale(state, pipeline.district, day, freshness, context.log.warning)
        store_findings(pipeline, day, "sis_extract", findings)
        files = snapshot.files
        context.log.info(f"snapshot of {len(files)} file(s), {sum(f.size for f in files)} bytes")
        if has_errors(findings):  # stored for the report; the date fails here
            yield from check_results("sis_extract", findings, day)
            raise blocked("sis_extract", day, findings)
        index = snapshot_index(snapshot, raw, config)
        if freshness is not None:
            index["freshness"] = freshness.summary()
        yield dg.MaterializeResult(
            value=index,
            metadata={
                "source_kind": config.kind,
                "source_attempts": attempts,
                **({"mapping": snapshot.mapping} if snapshot.mapping else {}),
                **_queries_metadata(snapshot.queries),
                "files": dg.MetadataValue.md(
                    "| file | bytes | sha256 |\n|---|---|---|\n"
                    + "\n".join(f"| {f.path} | {f.size} | `{f.sha256}` |" for f in files)
                ),
                "bytes": sum(f.size for f in files),
                "sha256": files[0].sha256 if len(files) == 1 else "(per file)",
                "snapshot": dg.MetadataValue.path(str(snapshot.open_path)),
                **_freshness_metadata(freshness),
                **findings_metadata(findings),
            },
        )
        yield from check_results("sis_extract", findings, day)
        crashpoint("sis_extract:end")

    return sis_extract


def snapshot_index(snapshot: Snapshot, raw, config: SourceConfig) -> dict:
    return {
        "open": snapshot.open_path.relative_to(raw).as_posix(),
        "kind": config.kind,
        "mapping": snapshot.mapping,
        "queries": snapshot.queries,
        "files": [f.__dict__ for f in snapshot.files],
    }


def _freshness(context, pipeline: PipelineResource, config, url: str, snapshot, day: str):
    """The export's freshness (sources/freshness.py) for an export at a configured URL, its
    version taken from the sha256s of the copy just made; None for a database or the bundled
    sample, or when its listing cannot be read now (logged: the snapshot is what matters)."""
    if not pipeline.watches_export():
        return None
    try:
        remote = storage_options(config, url)
        with sftp_errors(url):
            seen = look(url, remote)
            version = snapshot_version(snapshot.files, seen)
            return observe(
                url, state_path(pipeline.layout.base), remote, version=version, seen=seen
            )
    except (OSError, SourceConfigError, SourceUnavailable) as exc:
        context.log.warning(f"the export's age could not be read for {day}: {exc}")
        return None


def _freshness_metadata(freshness) -> dict:
    if freshness is None:
        return {}
    summary = freshness.summary()
    return {
        "export_version": summary["version"],
        "export_unchanged_days": summary["unchanged_days"],
        **(
            {
                "export_age_hours": summary["age_hours"],
                "export_modified": dg.MetadataValue.timestamp(freshness.modified),
            }
            if freshness.modified is not None
            else {}
        ),
    }


def _queries_metadata(queries: list[dict]) -> dict:
    if not queries:
        return {}
    rows = "\n".join(
        f"| {q['table']} | {q['rows']} | `{' '.join(q['query'].split())}` |" for q in queries
    )
    return {
        "queries": dg.MetadataValue.md("| table | rows | query |\n|---|---|---|\n" + rows),
        "source_rows": sum(q["rows"] for q in queries),
    }


def _snapshot_with_retries(
    context: dg.AssetExecutionContext,
    pipeline: PipelineResource,
    config: SourceConfig,
    url: str,
    day: str,
) -> tuple[Snapshot, int]:
    """The snapshot and the attempts it took. A source that cannot be reached now
    (SourceUnavailable: a network failure, a database that is down) is tried again in this
    step, ``source_retries`` more times, ``source_retry_seconds`` apart; a refused login or
    host key, a bad query or configuration (SourceConfigError) fails at once. In-process
    rather than Dagster's RetryRequested: only the snapshot is redone (not the leftover sweep
    or a new step process), each wait and attempt is logged, and one retry layer means the
    attempts never multiply (the same reasoning as delivery/sftp.py)."""
    attempts = 1 + max(0, pipeline.source_retries)

    def log_retry(state: tenacity.RetryCallState) -> None:
        context.log.warning(
            f"the source is unreachable (attempt {state.attempt_number} of {attempts}), "
            f"retrying in {state.upcoming_sleep:g} s: {state.outcome.exception()}"
        )

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_fixed(pipeline.source_retry_seconds),
        retry=tenacity.retry_if_exception_type(SourceUnavailable),
        before_sleep=log_retry,
        reraise=True,
    )
    raw, options = pipeline.layout.raw_dir(day), pipeline.options(day)
    for attempt in retrying:
        with attempt:
            snapshot = take_snapshot(config, url, raw, options, context.log.info)
    return snapshot, attempt.retry_state.attempt_number
