"""What the project installs: the lock file, the core install without the extras, the declared
dependencies, and Dagster's project CLI (`dg`) on this project."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "naviance_pipeline"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]

# What only an extra installs: the core install must import and run without any of them.
EXTRA_ONLY = (
    "psycopg",
    "psycopg2",
    "celery",
    "redis",
    "kombu",
    "dagster_postgres",
)

_BLOCKER = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Blocker())
sys.argv = sys.argv[1:]
exec(compile(sys.argv[1], "<check>", "exec"))
"""


def _without_extras(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter in which the extras' modules cannot be imported."""
    return subprocess.run(
        [sys.executable, "-c", _BLOCKER, ",".join(EXTRA_ONLY), code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def _name(requirement: str) -> str:
    """A requirement's distribution name, normalized (PEP 503)."""
    name = re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_core_install_runs_without_celery_redis_or_postgresql_drivers(tmp_path):
    """The definitions load, the CLI answers and a SQLite source is read with every extra's
    module unimportable: `make run` installs the core alone."""
    done = _without_extras(
        "from naviance_pipeline.definitions import build_definitions\n"
        "defs = build_definitions()\n"
        "keys = defs.resolve_asset_graph().get_all_asset_keys()\n"
        "print(sorted(k.to_user_string() for k in keys))\n",
        env={"NAVIANCE_HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "naviance_delivery" in done.stdout and "sis_extract" in done.stdout


def test_a_postgresql_source_without_its_driver_names_the_extra(tmp_path):
    done = _without_extras(
        "from naviance_pipeline.sources.sis.sql import _engine\n"
        "from sqlalchemy.engine import make_url\n"
        "try:\n"
        "    _engine(make_url('postgresql://reader@db.example.org/sis'), 'the SIS', 5)\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "naviance_pipeline[postgres]" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_postgresql_delivery_locks_without_their_driver_name_the_extra(tmp_path):
    done = _without_extras(
        "from naviance_pipeline.delivery.errors import DeliveryError\n"
        "from naviance_pipeline.delivery.lock import host_slots, locks_backend\n"
        "from naviance_pipeline.operations.storage import DataLayout\n"
        "locks = locks_backend('postgresql://locker@db.example.org/locks')\n"
        f"lock = host_slots(DataLayout({str(tmp_path)!r}, 'd1'), 'sftp.example.org', 1)\n"
        "try:\n"
        "    locks.open(lock)\n"
        "except DeliveryError as exc:\n"
        "    print(exc)\n"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "naviance_pipeline[postgres]" in done.stdout and "NAVIANCE_LOCKS_URL" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_the_celery_run_launcher_without_its_extra_names_the_extra(tmp_path):
    done = _without_extras(
        "try:\n"
        "    import naviance_pipeline.defs.run_workers\n"
        "except ImportError as exc:\n"
        "    print(exc)\n",
        env={"NAVIANCE_HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "naviance_pipeline[deploy]" in done.stdout


def test_the_lock_file_matches_pyproject():
    """uv.lock was resolved from the dependencies pyproject.toml declares now (`make lock`)."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    (ours,) = [p for p in lock["package"] if p["name"] == "naviance-pipeline"]
    locked = ours["metadata"]["requires-dist"]
    locked_core = {_name(r["name"]) for r in locked if "marker" not in r}
    locked_extras: dict[str, set[str]] = {}
    for r in locked:
        if "marker" in r:
            extra = re.search(r"extra == '([^']+)'", r["marker"]).group(1)
            locked_extras.setdefault(extra, set()).add(_name(r["name"]))
    assert locked_core == {_name(d) for d in PROJECT["dependencies"]}
    declared_extras = {
        extra: {_name(d) for d in deps} for extra, deps in PROJECT["optional-dependencies"].items()
    }
    assert locked_extras == declared_extras
    # And every locked requirement carries the same bounds as pyproject.
    specifiers = {_name(r["name"]): r.get("specifier", "") for r in locked}
    for requirement in PROJECT["dependencies"]:
        bounds = re.findall(r"[<>=!~]=?[\w.*]+", requirement.split(";")[0])
        assert set(bounds) == set(specifiers[_name(requirement)].split(",")) - {""}, requirement


def test_every_core_dependency_has_an_upper_bound():
    """A nightly job must not pick up a new major (or, for pandera, minor) release unseen."""
    unbounded = [d for d in PROJECT["dependencies"] if "<" not in d]
    assert unbounded == []


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level modules the package imports from outside itself, with the files importing them."""
    stdlib = set(sys.stdlib_module_names)
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in stdlib and top != "naviance_pipeline":
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_imported_library_is_declared():
    """A library the code imports by name is a declared dependency (core or an extra), not one
    that happens to come with another (numpy with pandas): its bound is then ours to keep."""
    declared = {_name(d) for d in PROJECT["dependencies"]}
    for deps in PROJECT["optional-dependencies"].values():
        declared |= {_name(d) for d in deps}
    distributions = metadata.packages_distributions()
    undeclared = {}
    for module, files in _third_party_imports().items():
        names = {_name(n) for n in distributions.get(module, [module])}
        if not names & declared:
            undeclared[module] = sorted(files)
    assert undeclared == {}


def test_the_private_pandera_module_the_schemas_import_still_exists():
    """schemas.py imports pandera.backends.pandas.builtin_checks to register the built-in checks
    (not public API): pyproject pins pandera to the minor release this was checked on."""
    import pandera
    import pandera.backends.pandas.builtin_checks

    (pin,) = [d for d in PROJECT["dependencies"] if _name(d) == "pandera"]
    low, high = re.findall(r"[<>]=?([\d.]+)", pin)
    assert pandera.__version__.startswith(low.rsplit(".", 1)[0] if low.count(".") > 1 else low)
    assert high.split(".")[:2] == [low.split(".")[0], str(int(low.split(".")[1]) + 1)]


def _dg(*args: str, home: Path) -> subprocess.CompletedProcess:
    dg = Path(sys.executable).with_name("dg")
    if not dg.exists():
        pytest.fail(f"dagster-dg-cli is a dev dependency but {dg} is missing")
    env = {**os.environ, "VIRTUAL_ENV": str(Path(sys.executable).parents[1])}
    env["NAVIANCE_HOME"] = str(home)
    env.pop("DAGSTER_HOME", None)
    return subprocess.run(
        [str(dg), *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300
    )


def test_dg_check_defs_passes(tmp_path):
    done = _dg("check", "defs", home=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "All definitions loaded successfully" in done.stdout + done.stderr


def test_dg_list_defs_names_the_seven_assets(tmp_path):
    done = _dg("list", "defs", "--json", home=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    listed = json.loads(done.stdout)
    keys = {a["asset_key"] for a in listed["assets"]}
    assert {
        "sis_extract",
        "orgs",
        "users",
        "demographics",
        "manifest",
        "naviance_package",
        "naviance_delivery",
    } <= keys
    assert listed["jobs"] and listed["schedules"]
