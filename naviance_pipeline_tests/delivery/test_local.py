"""Local folder delivery: same atomic temp-then-rename sequence as SFTP, owner-only files."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from naviance_pipeline.delivery.local import LocalFolderTarget
from naviance_pipeline.delivery.target import DeliveryError, Target, target_from_url

NAME = "NavianceOneRoster.zip"


def _package(path: Path, size: int, fill: bytes) -> str:
    data = (fill * (size // len(fill) + 1))[:size]
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_delivers_exact_bytes_owner_only_into_a_new_folder(tmp_path):
    sha = _package(tmp_path / "pkg.zip", 300_001, b"new package ")
    outbox = tmp_path / "outbox" / "naviance"
    calls = []

    result = LocalFolderTarget(outbox).deliver(
        str(tmp_path / "pkg.zip"), name=NAME, token="run-1", on_attempt=lambda *a: calls.append(a)
    )

    assert hashlib.sha256((outbox / NAME).read_bytes()).hexdigest() == sha == result.sha256
    assert _mode(outbox / NAME) == 0o600 and _mode(outbox) == 0o700
    assert (result.bytes, result.attempts, result.rename) == (300_001, 1, "os.replace")
    assert result.target == outbox.as_uri() and result.remote_path == str(outbox / NAME)
    assert result.started_at <= result.ended_at and result.ended_at.endswith("+00:00")
    assert calls == [(1, None)]
    assert os.listdir(outbox) == [NAME]


def test_existing_file_replaced_atomically_for_a_concurrent_reader(tmp_path, concurrent_reader):
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    old_sha = _package(outbox / NAME, 2 * 2**20, b"old")
    os.chmod(outbox / NAME, 0o644)
    new_sha = _package(tmp_path / "pkg.zip", 32 * 2**20, b"new!")

    with concurrent_reader(outbox / NAME) as reader:
        LocalFolderTarget(outbox).deliver(str(tmp_path / "pkg.zip"), name=NAME, token="run-2")

    assert set(reader.hashes) <= {old_sha, new_sha}
    assert reader.hashes[0] == old_sha and reader.hashes[-1] == new_sha
    assert _mode(outbox / NAME) == 0o600  # the new file, not the old one's mode
    assert os.listdir(outbox) == [NAME]


def test_stale_partial_of_ours_removed_foreign_files_kept(tmp_path):
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    leftovers = (f".{NAME}.old-run.part", "other.part", ".Other.zip.x.part", f"{NAME}.part")
    for leftover in (*leftovers, f".{NAME}.2026-11-20.bak"):
        (outbox / leftover).write_bytes(b"leftover")
    _package(tmp_path / "pkg.zip", 1000, b"x")

    LocalFolderTarget(outbox).deliver(str(tmp_path / "pkg.zip"), name=NAME, token="run-3")

    assert sorted(os.listdir(outbox)) == sorted(
        [".Other.zip.x.part", f".{NAME}.2026-11-20.bak", NAME, f"{NAME}.part", "other.part"]
    )


def test_failed_rename_leaves_no_partial_and_reports_one_attempt(tmp_path):
    outbox = tmp_path / "outbox"
    (outbox / NAME).mkdir(parents=True)  # a folder in the way: os.replace must fail
    (outbox / NAME / "keep").write_bytes(b"")
    _package(tmp_path / "pkg.zip", 1000, b"x")
    calls = []

    with pytest.raises(DeliveryError) as caught:
        LocalFolderTarget(outbox).deliver(
            str(tmp_path / "pkg.zip"),
            name=NAME,
            token="run-4",
            on_attempt=lambda *a: calls.append(a),
        )

    assert caught.value.attempts == 1 and calls == [(1, caught.value)]
    assert os.listdir(outbox) == [NAME]


def test_missing_source_file_is_a_delivery_error(tmp_path):
    with pytest.raises(DeliveryError, match="failed"):
        LocalFolderTarget(tmp_path / "outbox").deliver(
            str(tmp_path / "absent.zip"), name=NAME, token="run-5"
        )
    assert os.listdir(tmp_path / "outbox") == []


@pytest.mark.parametrize(
    ("name", "token"), [(NAME, "a/b"), ("../x.zip", "t"), (NAME, ""), ("", "t")]
)
def test_name_and_token_must_be_plain_file_name_parts(tmp_path, name, token):
    (tmp_path / "pkg.zip").write_bytes(b"x")
    with pytest.raises(ValueError, match="plain file-name part"):
        LocalFolderTarget(tmp_path / "outbox").deliver(
            str(tmp_path / "pkg.zip"), name=name, token=token
        )


def test_paths_and_file_urls_make_local_targets(tmp_path):
    by_path = target_from_url(str(tmp_path / "outbox"))
    by_url = target_from_url((tmp_path / "out box").as_uri())

    assert isinstance(by_path, LocalFolderTarget) and isinstance(by_path, Target)
    assert by_path.describe() == (tmp_path / "outbox").as_uri()
    assert isinstance(by_url, LocalFolderTarget) and by_url.folder == tmp_path / "out box"


def test_file_url_on_another_host_is_refused():
    with pytest.raises(ValueError, match="must be on this machine"):
        target_from_url("file://fileserver/outbox")
