"""DESIGN.md's layering: the domain core imports no Dagster (the CLI and the tests use it
without a Dagster instance, and it can move to another orchestrator)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import naviance_pipeline

CORE_PACKAGES = ("oneroster", "sis", "delivery", "reporting")
CORE_MODULES = ("sources", "settings", "districts", "storage", "retention", "alerts")


def _core_modules() -> list[str]:
    names = [f"naviance_pipeline.{m}" for m in CORE_MODULES]
    for package in CORE_PACKAGES:
        module = __import__(f"naviance_pipeline.{package}", fromlist=["_"])
        names += [
            f"{module.__name__}.{info.name}" for info in pkgutil.iter_modules(module.__path__)
        ]
    return names


def test_the_core_imports_no_dagster():
    modules = _core_modules()
    assert "naviance_pipeline.sis.convert" in modules and "naviance_pipeline.sources" in modules
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
