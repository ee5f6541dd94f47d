"""A source at an ``sftp://`` URL, read from the real loopback sshd: only from a server whose
host key is pinned (``NAVIANCE_SOURCE_SFTP_KNOWN_HOSTS``), and every failure one clear line
(a configuration error, or an unavailable source), never a traceback."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from upath import UPath

from naviance_pipeline.cli import main
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.operations.storage import DataLayout
from naviance_pipeline.sources.snapshot import (
    KNOWN_HOSTS_ENV,
    KNOWN_HOSTS_PATH_ENV,
    PASSWORD_ENV,
    SourceConfig,
    SourceConfigError,
    SourceUnavailable,
    take_snapshot,
)
from naviance_pipeline_tests.conftest import make_settings
from naviance_pipeline_tests.pipeline_helpers import run_job
from naviance_pipeline_tests.sshd_server import SSHDServer

pytestmark = pytest.mark.sftp
DAY = "2026-11-24"
OPTIONS = Options(as_of=date(2026, 11, 24))


@pytest.fixture
def source_url(sftp_server: SSHDServer, tiny_district: Path, request) -> str:
    """The tiny district's ZIP on the server, as an sftp:// URL (user, no password)."""
    local, remote = sftp_server.make_remote_dir(request.node.name[:60])
    shutil.copyfile(tiny_district, local / "district.zip")
    # Readable by the server's user: this process writes owner-only (the pipeline's umask).
    os.chmod(local / "district.zip", 0o644)
    return f"sftp://{sftp_server.user}@{sftp_server.host}:{sftp_server.port}{remote}/district.zip"


def _snapshot(url: str, dest: Path, **config) -> None:
    return take_snapshot(SourceConfig("oneroster", url, **config), url, UPath(dest), OPTIONS)


def test_a_pinned_server_is_read_byte_for_byte(sftp_server, source_url, tiny_district, tmp_path):
    snapshot = _snapshot(
        source_url,
        tmp_path / "raw",
        password=sftp_server.password,
        known_hosts=sftp_server.known_hosts_text,
    )
    digest = hashlib.sha256(tiny_district.read_bytes()).hexdigest()
    assert [(f.path, f.sha256) for f in snapshot.files] == [("district.zip", digest)]
    assert Path(snapshot.open_path.path).read_bytes() == tiny_district.read_bytes()


def test_the_pin_may_come_from_a_known_hosts_file(sftp_server, source_url, tmp_path):
    pinned = tmp_path / "known_hosts"
    pinned.write_text(sftp_server.known_hosts_text)
    snapshot = _snapshot(
        source_url, tmp_path / "raw", password=sftp_server.password, known_hosts_path=str(pinned)
    )
    assert len(snapshot.files) == 1


def test_an_unpinned_server_is_not_read_at_all(sftp_server, source_url, tmp_path):
    with pytest.raises(SourceConfigError) as refused:
        _snapshot(source_url, tmp_path / "raw", password=sftp_server.password)
    message = str(refused.value)
    assert "no host key is pinned" in message and KNOWN_HOSTS_ENV in message
    assert sftp_server.user not in message  # the URL is shown without its user
    assert not (tmp_path / "raw").exists() and list(tmp_path.iterdir()) == []


def test_a_server_with_another_key_is_refused(sftp_server, source_url, tmp_path):
    with pytest.raises(SourceConfigError) as refused:
        _snapshot(
            source_url,
            tmp_path / "raw",
            password=sftp_server.password,
            known_hosts=sftp_server.other_known_hosts_text(),
        )
    assert "host key is not the one pinned" in str(refused.value)
    assert len(str(refused.value).splitlines()) == 1
    assert not (tmp_path / "raw").exists()


def test_a_refused_login_is_a_configuration_error(sftp_server, source_url, tmp_path):
    with pytest.raises(SourceConfigError) as refused:
        _snapshot(
            source_url,
            tmp_path / "raw",
            password="not-" + sftp_server.password,
            known_hosts=sftp_server.known_hosts_text,
        )
    message = str(refused.value)
    assert "permission denied" in message and PASSWORD_ENV in message
    assert sftp_server.password not in message


def test_a_closed_port_is_an_unavailable_source(sftp_server, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends
    line = sftp_server.known_hosts_text.replace(f":{sftp_server.port}]", f":{port}]")
    url = f"sftp://someone@127.0.0.1:{port}/upload/district.zip"
    with pytest.raises(SourceUnavailable, match=r"127\.0\.0\.1:\d+/upload/district.zip cannot"):
        _snapshot(url, tmp_path / "raw", password="x", known_hosts=line)


def test_a_missing_path_is_not_found(sftp_server, source_url, tmp_path):
    with pytest.raises(FileNotFoundError):
        _snapshot(
            source_url.replace("district.zip", "absent.zip"),
            tmp_path / "raw",
            password=sftp_server.password,
            known_hosts=sftp_server.known_hosts_text,
        )


def test_validate_reads_a_pinned_server_and_refuses_an_unpinned_one_in_one_line(
    sftp_server, source_url, monkeypatch, capsys
):
    monkeypatch.setenv(PASSWORD_ENV, sftp_server.password)
    monkeypatch.delenv(KNOWN_HOSTS_PATH_ENV, raising=False)
    monkeypatch.delenv(KNOWN_HOSTS_ENV, raising=False)
    argv = ["validate", source_url, "--as-of", DAY]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert "SRC-UNREADABLE" in out and "no host key is pinned" in out
    assert "Traceback" not in out + err

    monkeypatch.setenv(KNOWN_HOSTS_ENV, sftp_server.other_known_hosts_text())
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert "host key is not the one pinned" in out and "Traceback" not in out + err

    monkeypatch.setenv(KNOWN_HOSTS_ENV, sftp_server.known_hosts_text)
    assert main(argv) == 0, capsys.readouterr().out
    assert capsys.readouterr().out.splitlines()[-1].startswith("OK:")


def _extract(tmp_path: Path, url: str, **pipeline_config) -> dg.ExecuteInProcessResult:
    settings = make_settings(tmp_path, url)
    config = {"resources": {"pipeline": {"config": {"source_retries": 0, **pipeline_config}}}}
    with dg.DagsterInstance.ephemeral() as instance:
        return run_job(settings, DAY, instance, selection=["sis_extract"], run_config=config)


def test_the_pipeline_reads_a_pinned_server_and_fails_a_wrong_key_in_one_line(
    sftp_server, source_url, tmp_path
):
    secrets = {"source_password": sftp_server.password}
    wrong = _extract(
        tmp_path / "wrong",
        source_url,
        source_sftp_known_hosts=sftp_server.other_known_hosts_text(),
        **secrets,
    )
    assert not wrong.success
    message = wrong.get_step_failure_events()[0].step_failure_data.error.message
    assert "host key is not the one pinned" in message.splitlines()[0]
    assert "Traceback" not in message

    good = _extract(
        tmp_path / "good",
        source_url,
        source_sftp_known_hosts=sftp_server.known_hosts_text,
        **secrets,
    )
    assert good.success
    settings = make_settings(tmp_path / "good", source_url)
    raw = Path(DataLayout(settings.data_root, settings.district).raw_dir(DAY).path)
    assert (raw / "district.zip").exists()
