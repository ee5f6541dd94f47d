"""Shared fixtures: a tiny sample district and settings rooted in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from naviance_pipeline.oneroster.sample import write_sample_district
from naviance_pipeline.operations.settings import Settings
from naviance_pipeline_tests import skips
from naviance_pipeline_tests.local_servers import smtp_server, webhook_server  # noqa: F401
from naviance_pipeline_tests.sshd_server import sftp_server_fixture

# One real loopback OpenSSH server per test session (skips when sshd cannot run here).
sftp_server = pytest.fixture(scope="session", name="sftp_server")(sftp_server_fixture)


def pytest_configure(config: pytest.Config) -> None:
    skips.register(config)  # NAVIANCE_FAIL_ON_SKIP=1 (.ci/run): a skipped test fails the run
    # Also belongs in pyproject's markers list (kept here so the marker is known either way).
    config.addinivalue_line(
        "markers",
        "integration: starts PostgreSQL, Redis, a Celery worker and a Dagster daemon "
        "(root, postgresql and redis-server packages)",
    )


TINY_STUDENTS = 60
TINY_SCHOOLS = 3


@pytest.fixture(scope="session")
def tiny_district(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small ClassLink-style export (ZIP), generated once per test session."""
    out = tmp_path_factory.mktemp("sample") / "district.zip"
    write_sample_district(str(out), students=TINY_STUDENTS, schools=TINY_SCHOOLS, seed=11)
    return out


def make_settings(home: Path, source: str | Path, **overrides) -> Settings:
    return Settings.in_folder(home, source, **overrides)


@pytest.fixture
def settings(tmp_path: Path, tiny_district: Path) -> Settings:
    return make_settings(tmp_path, tiny_district)


@pytest.fixture(autouse=True)
def _forget_closed_dagster_instances():
    """Dagster 1.13 keeps the last instance's state storage in a context variable; when test
    instances close out of order it can outlive its instance and break the next definitions
    load ("Attempted to resolve undefined DagsterInstance weakref"). Clear it between tests."""
    yield
    from dagster._core.storage.defs_state.base import _current_storage

    _current_storage.set(None)
