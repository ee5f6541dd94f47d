"""The rule registry (``oneroster/rules.py``): every rule fully registered, every code the
package reports registered and every registered code reported, and the generated catalogue
``docs/rules.md`` current."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import naviance_pipeline
from naviance_pipeline.defs.checks import ASSET_FAMILIES, CHECK_NAMES, check_specs
from naviance_pipeline.oneroster import rules
from naviance_pipeline.oneroster.findings import RULES, finding
from naviance_pipeline.oneroster.predicates import PREDICATES
from naviance_pipeline.oneroster.spec import FILES, Column, output_header

PACKAGE = Path(naviance_pipeline.__file__).parent
CATALOGUE = PACKAGE.parent / "docs" / "rules.md"
REGENERATE = "python -m naviance_pipeline.oneroster.rules --markdown > docs/rules.md"
CODE = re.compile(r"""["']([A-Z]+-[A-Z]+(?:-[A-Z]+)*)["']""")


def _source(dotted: str) -> str:
    """The source text of the module a registry entry's ``by`` names (``module.function`` or
    ``module``, within naviance_pipeline); the function must exist."""
    try:
        module = importlib.import_module(f"naviance_pipeline.{dotted}")
    except ModuleNotFoundError:
        where, _, function = dotted.rpartition(".")
        module = importlib.import_module(f"naviance_pipeline.{where}")
        assert callable(getattr(module, function, None)), f"{dotted} is not a function"
    return Path(module.__file__).read_text()


def _emitted() -> dict[str, set[str]]:
    """Every rule-code literal in the package's source, with the modules that hold it (the
    registry itself left out)."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if path == PACKAGE / "oneroster" / "rules.py":
            continue
        for code in CODE.findall(path.read_text()):
            found.setdefault(code, set()).add(str(path.relative_to(PACKAGE)))
    return found


@pytest.mark.parametrize("rule", rules.REGISTRY, ids=lambda r: r.code)
def test_every_rule_is_fully_registered(rule):
    assert rule.severity in ("E", "W", "R")
    assert rule.summary.strip() and rule.message.strip()
    checks = {spec.name for asset in ASSET_FAMILIES for spec in check_specs(asset)}
    assert rule.family.check in checks, f"{rule.code}: no Dagster check reports its family"
    # Either a check of the Pandera models (where, and which predicate) or who reports it.
    assert (rule.on is None) == (rule.check is None) != (rule.by is None)
    if rule.on is not None:
        assert rule.check in PREDICATES
        assert rule.on.describe(), f"{rule.code} selects no column of any file"
    else:
        assert rule.code in CODE.findall(_source(rule.by)), f"{rule.by} never reports it"
    finding(rule.code, "a finding of the rule")  # findings know it


def test_codes_are_declared_once_and_are_what_findings_know():
    codes = [r.code for r in rules.REGISTRY]
    assert len(codes) == len(set(codes))
    assert {r.code: r.severity for r in rules.REGISTRY} == RULES
    with pytest.raises(KeyError):
        finding("USR-NOT-A-RULE", "no such rule")


def test_every_code_the_package_reports_is_registered_and_every_registered_code_reported():
    emitted = _emitted()
    unregistered = {c: sorted(where) for c, where in emitted.items() if c not in RULES}
    assert not unregistered, f"rule codes used but not in rules.REGISTRY: {unregistered}"
    checked = {r.code for r in rules.REGISTRY if r.on is not None}  # by the Pandera models
    never = [r.code for r in rules.REGISTRY if r.code not in emitted and r.code not in checked]
    assert not never, f"registered but never reported: {never}"


def test_every_model_check_comes_from_the_registry():
    for file, spec in FILES.items():
        known = {c.name: c for c in spec.columns}
        for name in output_header(spec, include_staff=True):
            for rule in rules.column_rules(file, known.get(name, Column(name))):
                assert rule.on is not None and rule.check in PREDICATES


def test_dagster_checks_and_report_families_are_the_registrys():
    assert {prefix: fam.check for prefix, fam in rules.FAMILIES.items()} == CHECK_NAMES
    families = {f for fams in ASSET_FAMILIES.values() for f in fams}
    assert families == set(rules.FAMILIES)
    assert {rules.family(r.code) for r in rules.REGISTRY} == set(rules.FAMILIES)


def test_the_rule_catalogue_is_generated_from_the_registry():
    text = CATALOGUE.read_text() if CATALOGUE.exists() else ""
    assert text == rules.markdown(), f"docs/rules.md is stale; regenerate it: {REGENERATE}"
    for r in rules.REGISTRY:
        assert f"| {r.code} | {r.severity} |" in text
    assert "../shared" not in text


def test_the_rules_command_prints_the_catalogue(capsys):
    from naviance_pipeline.cli import main

    assert main(["rules", "--markdown"]) == 0
    assert capsys.readouterr().out == rules.markdown()
    assert main(["rules"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == [r.code for r in rules.REGISTRY]
