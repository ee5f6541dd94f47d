"""``oneroster``: a OneRoster v1.1 or v1.2 CSV export (ClassLink and others), a folder or ZIP at any
fsspec URL (an ``sftp://`` one from a pinned server), copied byte for byte."""

from __future__ import annotations

from pathlib import Path

from naviance_pipeline.operations.storage import snapshot_source
from naviance_pipeline.sources.kinds import SourceKind
from naviance_pipeline.sources.snapshot import SAMPLE_SIZE, Snapshot, generated


def capture(config, url, staging, options, say, remote) -> Snapshot:
    say("copying the OneRoster export")
    open_path, files = snapshot_source(url, staging, remote)
    return Snapshot(open_path, files)


def sample(_mapping: str, sample_zip: Path) -> str:
    from naviance_pipeline.oneroster.sample import write_sample_district

    return generated(sample_zip, lambda tmp: write_sample_district(tmp, **SAMPLE_SIZE))


KIND = SourceKind(
    name="oneroster",
    source_help="a OneRoster v1.1 or v1.2 CSV folder or ZIP (path or fsspec URL)",
    mapped=False,
    secrets=("source_password", "source_sftp_known_hosts"),  # at an sftp:// URL
    system_name=lambda _mapping: "ClassLink",
    capture=capture,
    sample=sample,
)
