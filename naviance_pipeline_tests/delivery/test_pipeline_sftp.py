"""The whole pipeline delivering to a real OpenSSH server on loopback."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace

import dagster as dg
import pytest

from naviance_pipeline.oneroster.spec import ZIP_NAME
from naviance_pipeline.storage import DataLayout
from naviance_pipeline_tests.conftest import make_settings
from naviance_pipeline_tests.pipeline_helpers import failed_checks, rewrite_zip, run_job

pytestmark = pytest.mark.sftp


@pytest.fixture
def sftp_settings(tmp_path, tiny_district, sftp_server, remote_dir, monkeypatch):
    local_dir, remote = remote_dir
    monkeypatch.setenv("NAVIANCE_SFTP_PASSWORD", sftp_server.password)
    monkeypatch.setenv("NAVIANCE_SFTP_KNOWN_HOSTS", sftp_server.known_hosts_text)
    url = f"sftp://{sftp_server.user}@{sftp_server.host}:{sftp_server.port}{remote}"
    return make_settings(tmp_path, tiny_district, delivery_target=url), local_dir


def test_pipeline_delivers_to_sftp_with_password(sftp_settings):
    settings, local_dir = sftp_settings
    with dg.instance_for_test() as instance:
        result = run_job(settings, "2026-11-24", instance)
    assert result.success, failed_checks(result)
    layout = DataLayout(settings.data_root, settings.district)
    archived = layout.package_path("2026-11-24").read_bytes()
    landed = (local_dir / ZIP_NAME).read_bytes()
    assert landed == archived
    meta = result.asset_materializations_for_node("naviance_delivery")[0].metadata
    assert meta["sha256"].value == hashlib.sha256(landed).hexdigest()
    assert meta["target"].value.startswith("sftp://")
    # No secret ever reaches metadata or the receipt.
    receipt = layout.base.joinpath("receipts").rglob("*.json")
    text = "".join(p.read_text() for p in receipt)
    assert settings.delivery_target.split("@")[0].removeprefix("sftp://") in text  # the user
    assert os.environ["NAVIANCE_SFTP_PASSWORD"] not in text
    assert not [p.name for p in local_dir.iterdir() if p.name.endswith(".part")]


def test_guard_blocks_sftp_delivery_and_remote_file_stays(sftp_settings, tiny_district, tmp_path):
    settings, local_dir = sftp_settings
    with dg.instance_for_test() as instance:
        assert run_job(settings, "2026-11-23", instance).success
        before = (local_dir / ZIP_NAME).read_bytes()

        def drop_most(rows):
            header = rows[0]
            role = header.index("role")
            students = [r for r in rows[1:] if r[role] == "student"]
            keep = {id(r) for r in students[: len(students) // 2]}
            return [header, *(r for r in rows[1:] if r[role] != "student" or id(r) in keep)]

        smaller = rewrite_zip(tiny_district, tmp_path / "smaller.zip", "users.csv", drop_most)
        result = run_job(replace(settings, source_url=str(smaller)), "2026-11-24", instance)
    assert not result.success
    assert "GRD-STUDENT-DROP" in failed_checks(result)["naviance_package:delivery_guards"]
    assert (local_dir / ZIP_NAME).read_bytes() == before
