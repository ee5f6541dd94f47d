"""The folders show the layers: the Dagster shell lives in ``defs/``; the domain packages beside
it import no Dagster (the CLI and the tests use them without a Dagster instance, and they could
move to another orchestrator); only the entry points sit at the top."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import naviance_pipeline

SHELL = "defs"
DOMAIN_PACKAGES = ("oneroster", "sources", "delivery", "reporting", "operations")
ENTRY_POINTS = ("cli", "definitions", "runner")


def _walk(package: str) -> list[str]:
    module = __import__(f"naviance_pipeline.{package}", fromlist=["_"])
    return [module.__name__] + [
        info.name for info in pkgutil.walk_packages(module.__path__, module.__name__ + ".")
    ]


def test_the_top_holds_only_entry_points_and_layer_packages():
    top = {info.name: info.ispkg for info in pkgutil.iter_modules(naviance_pipeline.__path__)}
    assert sorted(n for n, pkg in top.items() if not pkg) == sorted(ENTRY_POINTS)
    assert sorted(n for n, pkg in top.items() if pkg) == sorted((SHELL, *DOMAIN_PACKAGES))


def test_the_domain_imports_no_dagster():
    modules = [name for package in DOMAIN_PACKAGES for name in _walk(package)]
    assert "naviance_pipeline.sources.sis.convert" in modules
    assert "naviance_pipeline.operations.settings" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'dagster' or m.startswith('dagster.')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=naviance_pipeline.__path__[0] + "/..",
    )
    assert done.stdout.strip() == "[]"


def test_the_shell_is_where_dagster_is_imported():
    """A mutation check for the test above: the shell's modules do import Dagster."""
    code = (
        "import importlib, sys\n"
        "importlib.import_module('naviance_pipeline.defs.checks')\n"
        "print('dagster' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"
