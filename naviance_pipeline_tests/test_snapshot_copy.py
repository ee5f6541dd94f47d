"""snapshot_source copies a source byte for byte and owner-only, and records each file's size
and sha256: a local file or folder (copied by the kernel) and an fsspec URL (in chunks)."""

from __future__ import annotations

import hashlib
import stat

import fsspec
import pytest
from upath import UPath

from naviance_pipeline.operations.storage import snapshot_source

PAYLOAD = bytes(range(256)) * 40_000 + b"tail"  # ~10 MB, not a multiple of the chunk size


def _checked(dest: UPath, files, expected: dict[str, bytes]) -> None:
    assert {f.path: (f.size, f.sha256) for f in files} == {
        rel: (len(data), hashlib.sha256(data).hexdigest()) for rel, data in expected.items()
    }
    for rel, data in expected.items():
        copied = dest / rel
        assert copied.read_bytes() == data
        assert stat.S_IMODE(copied.stat().st_mode) == 0o600


def test_a_local_file_is_copied_byte_for_byte_with_its_size_and_sha256(tmp_path):
    source = tmp_path / "export.zip"
    source.write_bytes(PAYLOAD)
    dest = UPath(tmp_path / "raw")

    opened, files = snapshot_source(str(source), dest)

    assert opened == dest / "export.zip"
    _checked(dest, files, {"export.zip": PAYLOAD})


def test_a_local_folder_is_copied_file_by_file(tmp_path):
    folder = tmp_path / "export"
    (folder / "sub").mkdir(parents=True)
    (folder / "users.csv").write_bytes(PAYLOAD)
    (folder / "sub" / "orgs.csv").write_bytes(b"sourcedId\r\ns1\r\n")
    dest = UPath(tmp_path / "raw")

    opened, files = snapshot_source(str(folder), dest)

    assert opened == dest / "source"
    _checked(
        dest,
        files,
        {"source/users.csv": PAYLOAD, "source/sub/orgs.csv": b"sourcedId\r\ns1\r\n"},
    )


def test_a_source_on_another_file_system_is_copied_in_chunks(tmp_path):
    memory = fsspec.filesystem("memory")
    memory.pipe("/district/export.zip", PAYLOAD)
    dest = UPath(tmp_path / "raw")
    try:
        _, files = snapshot_source("memory://district/export.zip", dest)
    finally:
        memory.rm("/district", recursive=True)
    _checked(dest, files, {"export.zip": PAYLOAD})


def test_a_missing_source_is_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        snapshot_source(str(tmp_path / "nowhere.zip"), UPath(tmp_path / "raw"))
