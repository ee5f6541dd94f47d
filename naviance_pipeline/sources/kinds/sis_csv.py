"""``sis-csv``: the SIS's own CSV exports (a folder or ZIP at any fsspec URL) and a mapping
(``sis/mapping.py``): the export bytes are copied as exported, checked against the mapping,
then converted to a OneRoster folder."""

from __future__ import annotations

from pathlib import Path

from naviance_pipeline.oneroster.source import redact_url
from naviance_pipeline.operations.storage import SnapshotFile, snapshot_source
from naviance_pipeline.sources.kinds import SourceKind
from naviance_pipeline.sources.snapshot import (
    DEFAULT_MAPPING,
    SAMPLE_SIZE,
    Snapshot,
    SourceConfigError,
    generated,
    mapped_snapshot,
    no_sample,
)

EXPORT = "export"  # the export as exported, inside the snapshot


def capture(config, url, staging, options, say, remote) -> Snapshot:
    def read(mapping):
        say(f"copying the SIS export and checking it against the mapping {config.mapping_ref!r}")
        tables, files = _export_tables(mapping, url, staging / EXPORT, options, remote)
        return tables, files, []

    return mapped_snapshot(config, staging, options, say, read)


def _export_tables(mapping, url: str, dest, options, remote: dict):
    from naviance_pipeline.sources.sis.export import read_export
    from naviance_pipeline.sources.sis.mapping import MappingError

    open_path, files = snapshot_source(url, dest, remote)
    files = [SnapshotFile(f"{EXPORT}/{f.path}", f.size, f.sha256) for f in files]
    try:
        return read_export(str(open_path), mapping, options), files
    except MappingError as exc:
        # Named as configured, not as the snapshot copy being checked.
        problems = str(exc).replace(str(open_path), redact_url(url))
        raise SourceConfigError(
            f"the export does not fit the mapping {mapping.ref!r}:\n{problems}"
        ) from exc


def sample(mapping: str, sample_zip: Path) -> str:
    from naviance_pipeline.sources.sis.sample_export import SHAPES, write_sample_export

    if mapping not in SHAPES:
        raise no_sample(KIND.name, mapping, ", ".join(SHAPES))
    path = sample_zip.parent / f"sample-{mapping}-export.zip"
    return generated(path, lambda tmp: write_sample_export(tmp, mapping, **SAMPLE_SIZE))


KIND = SourceKind(
    name="sis-csv",
    source_help="the SIS export folder or ZIP",
    mapped=True,
    secrets=("source_password", "source_sftp_known_hosts"),  # at an sftp:// URL
    system_name=lambda mapping: "PowerSchool" if mapping in ("", DEFAULT_MAPPING) else "SIS",
    capture=capture,
    sample=sample,
)
