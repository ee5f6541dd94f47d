"""A folder on this machine (the default outbox): a plain path or a ``file://`` URL. No
secrets; uploads to folders are not serialized across runs (each target has its own lock)."""

from __future__ import annotations

from urllib.parse import unquote

from naviance_pipeline.delivery.targets import TargetKind


def build(parts, url: str, _credentials=None, _retry=None):
    from naviance_pipeline.delivery.local import LocalFolderTarget

    if not parts.scheme:
        return LocalFolderTarget(url)
    if parts.netloc not in ("", "localhost"):
        raise ValueError("a file:// target must be on this machine (file:///folder)")
    return LocalFolderTarget(unquote(parts.path))


TARGET = TargetKind(
    name="folder",
    schemes=("", "file"),
    url_help="file:///folder or a folder path",
    build=build,
    example="file:///var/lib/naviance/outbox",
)
