"""The whole pipeline delivering to a real OpenSSH server on loopback. The guards against the
same server are in ``test_delivery_guards.py`` (parametrized over both targets)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import dagster as dg
import pytest

from naviance_pipeline.oneroster.spec import ZIP_NAME
from naviance_pipeline.operations.storage import DataLayout
from naviance_pipeline_tests.conftest import make_settings
from naviance_pipeline_tests.pipeline_helpers import failed_checks, run_job

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
    # The upload took the host's one upload slot (a file under the data root, outside every
    # district), and the asset shows what it waited for it, as the receipt records it.
    (done,) = [json.loads(p.read_text()) for p in layout.base.joinpath("receipts").rglob("*.json")]
    assert meta["upload_wait_seconds"].value == done["upload_wait_seconds"]
    slots = Path(settings.data_root, "locks", "hosts")
    assert [p.name.rsplit(".", 2)[1:] for p in slots.iterdir()] == [["0", "lock"]]
