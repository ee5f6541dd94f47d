"""``sis_extract``: an immutable, byte-for-byte snapshot of the district's source for the date."""

import dagster as dg

from naviance_pipeline.assets.common import (
    SNAPSHOT_INDEX,
    findings_metadata,
    partition_of,
    store_findings,
)
from naviance_pipeline.checks import check_results, check_specs
from naviance_pipeline.oneroster.source import SourceUnreadable, open_source, redact_url
from naviance_pipeline.resources import PipelineResource
from naviance_pipeline.storage import ensure_private_dir, snapshot_source, write_private_json


def build_extract_asset(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name="sis_extract",
        group_name="extract",
        kinds={"csv", "zip"},
        partitions_def=partitions_def,
        check_specs=check_specs("sis_extract"),
    )
    def sis_extract(
        context: dg.AssetExecutionContext, pipeline: PipelineResource
    ) -> dg.MaterializeResult:
        """Snapshot of the configured source (a OneRoster ZIP or folder at any fsspec URL),
        copied byte for byte under the data root for this date, with the size and sha256 of
        every file. Every later stage of the date reads this snapshot, never the live source,
        so any stage can be re-run alone. Its check reports the source-package rules (SRC-*).
        """
        day, pipeline, _ = partition_of(context, pipeline)
        source_url = pipeline.resolved_source()
        raw = pipeline.layout.raw_dir(day)
        # Everything of the district lives below one owner-only folder.
        ensure_private_dir(pipeline.layout.base)
        try:
            open_path, files = snapshot_source(source_url, raw)
        except FileNotFoundError as exc:
            # Named without credentials a URL may carry (user:password@, ?token=).
            raise dg.Failure(
                f"SRC-UNREADABLE: the source {redact_url(source_url)} does not exist"
            ) from exc
        write_private_json(
            raw / SNAPSHOT_INDEX,
            {"open": open_path.relative_to(raw).as_posix(), "files": [f.__dict__ for f in files]},
        )
        try:
            findings = open_source(str(open_path), pipeline.options(day)).findings
        except SourceUnreadable as exc:
            findings = [exc.finding]
        store_findings(pipeline, day, "sis_extract", findings)
        context.log.info(f"snapshot of {len(files)} file(s), {sum(f.size for f in files)} bytes")
        return dg.MaterializeResult(
            metadata={
                "files": dg.MetadataValue.md(
                    "| file | bytes | sha256 |\n|---|---|---|\n"
                    + "\n".join(f"| {f.path} | {f.size} | `{f.sha256}` |" for f in files)
                ),
                "bytes": sum(f.size for f in files),
                "sha256": files[0].sha256 if len(files) == 1 else "(per file)",
                "snapshot": dg.MetadataValue.path(str(open_path)),
                **findings_metadata(findings),
            },
            check_results=check_results("sis_extract", findings),
        )

    return sis_extract
