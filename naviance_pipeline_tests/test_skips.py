"""The fail-on-skip plugin (``skips.py``), run on throw-away test files in a pytest of their own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from naviance_pipeline_tests.skips import FAIL_ON_SKIP_ENV

REPO = Path(__file__).resolve().parents[1]

PASSING = "def test_passes():\n    assert True\n"
SKIPPING = {
    "a test": "import pytest\n\ndef test_skips():\n    pytest.skip('no sshd here')\n",
    "a fixture": (
        "import pytest\n\n@pytest.fixture\ndef server():\n    pytest.skip('no sshd here')\n\n"
        "def test_uses(server):\n    assert server\n"
    ),
    "a marker": (
        "import pytest\n\n@pytest.mark.skipif(True, reason='no sshd here')\n"
        "def test_marked():\n    assert False\n"
    ),
    "a module": "import pytest\n\npytest.skip('no sshd here', allow_module_level=True)\n",
    "an expected failure": (
        "import pytest\n\n@pytest.mark.xfail(reason='no sshd here')\ndef test_x():\n"
        "    assert False\n"
    ),
}


def _pytest(folder: Path, fail_on_skip: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != FAIL_ON_SKIP_ENV}
    env["PYTHONPATH"] = str(REPO)
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only this plugin: a faster start
    if fail_on_skip is not None:
        env[FAIL_ON_SKIP_ENV] = fail_on_skip
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "naviance_pipeline_tests.skips", "-p",
         "no:cacheprovider", "-q", "--rootdir", str(folder), str(folder)],
        capture_output=True, text=True, env=env, cwd=folder, timeout=120,
    )  # fmt: skip


def _folder(tmp_path: Path, skipping: str | None) -> Path:
    (tmp_path / "test_a.py").write_text(PASSING)
    if skipping is not None:
        (tmp_path / "test_b.py").write_text(SKIPPING[skipping])
    return tmp_path


@pytest.mark.parametrize("skipping", SKIPPING)
def test_a_skip_fails_the_run_when_asked(tmp_path, skipping):
    proc = _pytest(_folder(tmp_path, skipping), "1")
    assert proc.returncode == 1, proc.stdout
    assert f"skipped: fails the run ({FAIL_ON_SKIP_ENV}=1)" in proc.stdout
    assert "test_b.py" in proc.stdout and "no sshd here" in proc.stdout


@pytest.mark.parametrize("value", [None, "", "0"])
def test_a_skip_is_only_reported_otherwise(tmp_path, value):
    proc = _pytest(_folder(tmp_path, "a test"), value)
    assert proc.returncode == 0, proc.stdout
    assert "1 passed, 1 skipped" in proc.stdout


def test_a_run_without_skips_still_passes_when_asked(tmp_path):
    proc = _pytest(_folder(tmp_path, None), "1")
    assert proc.returncode == 0, proc.stdout
    assert "fails the run" not in proc.stdout


def test_a_failing_run_keeps_its_failure(tmp_path):
    (tmp_path / "test_c.py").write_text("def test_fails():\n    assert False\n")
    proc = _pytest(_folder(tmp_path, "a test"), "1")
    assert proc.returncode == 1, proc.stdout
    assert "1 failed" in proc.stdout
