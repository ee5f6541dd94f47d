"""The product documents itself, inside the repository: the contract's generated tables match
``spec.py``, every relative link of the Markdown pages leads to a file (and heading) that
exists, and nothing of the product points outside the repository."""

from __future__ import annotations

import dataclasses
import fnmatch
import re
import subprocess
import sys
from pathlib import Path

import pytest

from naviance_pipeline.oneroster import contract_doc, spec

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "docs" / "contract.md"
PAGES = sorted([*ROOT.glob("*.md"), *(ROOT / "docs").glob("*.md")])
# What a clone of the repository holds: the code, its documentation and deployment files.
PRODUCT = ("naviance_pipeline", "docs", "deploy", "benchmarks")
PRODUCT_FILES = ("README.md", "DEPLOYMENT.md", "BENCHMARKS.md", "pyproject.toml", "Makefile")
# Places that exist only on the machine the product was written on, never in a clone.
OUTSIDE = (
    "../shared",
    "/work/",
    "DESIGN.md",
    "naviance-oneroster.md",
    "notes/",
    "notes, section",
    "spec/rules.md",
)
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def test_the_contract_tables_are_generated_from_spec():
    stale = contract_doc.stale_blocks(CONTRACT.read_text(encoding="utf-8"))
    assert not stale, (
        f"docs/contract.md: the generated blocks {stale} no longer match spec.py; "
        f"regenerate them with: {contract_doc.COMMAND}"
    )


def test_a_changed_spec_makes_the_contract_stale(monkeypatch):
    """The check above can fail: a column made optional shows as a stale users.csv table."""
    text = CONTRACT.read_text(encoding="utf-8")
    columns = tuple(
        dataclasses.replace(c, required=False) if c.name == "username" else c
        for c in spec.USERS.columns
    )
    monkeypatch.setattr(spec, "USERS", spec.FileSpec("users.csv", columns, spec.USERS.aliases))
    monkeypatch.setitem(spec.FILES, "users.csv", spec.USERS)
    assert contract_doc.stale_blocks(text) == ["columns users.csv"]


def test_every_column_of_every_file_is_on_the_contract_page_in_order():
    text = CONTRACT.read_text(encoding="utf-8")
    for name, file in spec.FILES.items():
        block = re.search(
            rf"<!-- generated: columns {re.escape(name)} -->\n(.*?)<!-- end generated -->",
            text,
            re.S,
        )
        assert block, name
        listed = re.findall(r"^\| \d+ \| `([^`]+)` \|", block[1], re.M)
        assert listed == spec.output_header(file, include_staff=True)


def test_always_blank_columns_are_listed_as_such():
    """Guardians and passwords are never sent; bulk files carry no status or date."""
    assert contract_doc.always_blank(spec.USERS) == {
        "status",
        "dateLastModified",
        "agentSourcedIds",
        "password",
    }
    text = CONTRACT.read_text(encoding="utf-8")
    for file in spec.FILES.values():
        for column in contract_doc.always_blank(file):
            assert re.search(rf"\| `{column}` \|[^\n]*\| always blank \|", text), column


def test_the_check_command_names_the_command_that_regenerates(tmp_path):
    page = tmp_path / "contract.md"
    page.write_text(
        CONTRACT.read_text(encoding="utf-8").replace("| `sourcedId` |", "| `sourceId` |", 1),
        encoding="utf-8",
    )
    run = [sys.executable, "-m", "naviance_pipeline.oneroster.contract_doc"]
    checked = subprocess.run([*run, "--check", str(page)], capture_output=True, text=True, cwd=ROOT)
    assert checked.returncode == 1
    assert contract_doc.COMMAND in checked.stderr
    subprocess.run([*run, "--write", str(page)], check=True, cwd=ROOT)
    assert page.read_text(encoding="utf-8") == CONTRACT.read_text(encoding="utf-8")


def test_a_marker_naming_no_block_is_refused():
    text = CONTRACT.read_text(encoding="utf-8") + "<!-- generated: columns x.csv -->\n"
    with pytest.raises(ValueError, match=r"x\.csv"):
        contract_doc.render(text + "<!-- end generated -->\n")


def _slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[`*_]|\[|\]\([^)]*\)", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def _links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return _LINK.findall(text)


def _broken_links(page: Path) -> list[str]:
    """The relative links of ``page`` that lead to no file, or to no heading of a page."""
    broken = []
    for link in _links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", link):  # https:, mailto:
            continue
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        missing_anchor = anchor and target.suffix == ".md" and anchor not in _anchors(target)
        if not target.exists() or missing_anchor:
            broken.append(link)
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_that_exists(page):
    broken = _broken_links(page)
    assert not broken, f"{page.relative_to(ROOT)}: links to nothing: {broken}"


def test_the_link_check_sees_links_and_finds_broken_ones(tmp_path):
    """A mutation check for the test above: the pages do link to each other and to headings,
    and a link to a missing file or heading is found."""
    links = {link for page in PAGES for link in _links(page)}
    assert {"docs/contract.md", "docs/architecture.md", "#sources"} <= links
    assert _slug("8. Class year") == "8-class-year"
    assert _slug("Delivery, guards and receipts") == "delivery-guards-and-receipts"
    (tmp_path / "there.md").write_text("# A `heading`, here\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md) [ok](there.md#a-heading-here) [ok](https://dagster.io) [ok](#top)\n"
        "# Top\n![gone](missing.png) [gone](there.md#elsewhere) [gone](#nowhere)\n"
        "```\n[in code](not-a-link.md)\n```\n",
        encoding="utf-8",
    )
    assert _broken_links(page) == ["missing.png", "there.md#elsewhere", "#nowhere"]


# Code files (``rules_*.py``) and the product's folders (``defs/assets/``), not the data
# root's (``packages/``).
_FILE_NAME = re.compile(
    r"`((?:[\w*-]+/)*[\w*-]+\.py|(?:naviance_pipeline|defs|oneroster|sources|delivery"
    r"|reporting|operations|docs|deploy|benchmarks)/(?:[\w-]+/)*)`"
)


def _named_file_exists(name: str) -> bool:
    """A file or folder the docs name in backticks: from the repository's root, from the
    package's, or the end of a path inside the package (``rules_*.py``, ``sis/``)."""
    if (ROOT / name).exists() or (ROOT / "naviance_pipeline" / name).exists():
        return True
    tail = name.rstrip("/")
    return any(
        fnmatch.fnmatch(p.relative_to(ROOT).as_posix(), f"*/{tail}")
        for folder in ("naviance_pipeline", "naviance_pipeline_tests")
        for p in (ROOT / folder).rglob("*")
    )


@pytest.mark.parametrize(
    "page", [ROOT / "README.md", *(ROOT / "docs").glob("*.md")], ids=lambda p: p.name
)
def test_every_code_file_the_docs_name_exists(page):
    """The module table and the "how to add" steps name files a newcomer will open."""
    names = set(_FILE_NAME.findall(page.read_text(encoding="utf-8")))
    assert "naviance_pipeline/defs/checks.py" in names or page.name != "architecture.md"
    missing = sorted(n for n in names if not _named_file_exists(n))
    assert not missing, f"{page.name} names files that do not exist: {missing}"


def _product_files() -> list[Path]:
    files = [ROOT / name for name in PRODUCT_FILES]
    for folder in PRODUCT:
        files += [p for p in (ROOT / folder).rglob("*") if p.is_file()]
    return [p for p in files if "__pycache__" not in p.parts and p.suffix not in (".png",)]


def test_nothing_of_the_product_points_outside_the_repository():
    files = _product_files()
    assert ROOT / "naviance_pipeline" / "oneroster" / "spec.py" in files
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if any(place in line for place in OUTSIDE)
    ]
    assert not found, "points outside the repository:\n" + "\n".join(found)
