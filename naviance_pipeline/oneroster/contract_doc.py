"""The generated parts of ``docs/contract.md``: the package's facts and column tables, from
``spec.py``.

The page is prose written by hand around blocks that this module writes between marker lines::

    <!-- generated: columns users.csv -->
    ...
    <!-- end generated -->

so a change to ``spec.py`` (a column, its order, whether it is required, PII or always blank,
its allowed values, the manifest rows) changes the page, and a test fails while the page is
stale. Regenerate with::

    python -m naviance_pipeline.oneroster.contract_doc --write docs/contract.md
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

from naviance_pipeline.oneroster import spec
from naviance_pipeline.oneroster.spec import Column, FileSpec

COMMAND = "python -m naviance_pipeline.oneroster.contract_doc --write docs/contract.md"
_BLOCK = re.compile(
    r"(?P<open><!-- generated: (?P<name>[^>]+?) -->\n)(?P<body>.*?)"
    r"(?P<close><!-- end generated -->)",
    re.S,
)

# What a column of each kind holds in the package (spec.Column.kind).
KIND_VALUES = {
    "id": "a sourcedId, text kept exactly as read (leading zeros stay)",
    "ids": "sourcedIds separated by commas (the field is quoted when it holds more than one)",
    "text": "text",
    "bool": "{codes}",
    "enum": "{codes}",
    "date": "`YYYY-MM-DD`, a calendar date not after the as-of date",
    "grade": "a CEDS grade code, one per student (staff may list several): {codes}",
    "userids": "`{{Type:Id}}` entries separated by commas",
    "email": "an e-mail address",
    "blank": "always blank",
}


def _codes(codes: tuple[str, ...]) -> str:
    quoted = [f"`{c}`" for c in codes]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


# Where Naviance takes fewer codes than OneRoster v1.1 allows (spec.py names both lists).
NAVIANCE_VALUES = {
    ("orgs.csv", "type"): _codes(spec.ORG_TYPES_NAVIANCE),
    ("users.csv", "role"): f"`student`; with staff included also {_codes(spec.ROLES_STAFF)}",
}
CONFIGURED_MANIFEST_VALUES = {
    "source.systemName": "the source system's configured name, never blank",
    "source.systemCode": "the configured district code, never blank",
}
# The users.csv extension columns after the spec's: (values, when the source has none).
EXTENSIONS = {
    spec.CLASS_YEAR_COLUMN: (
        "a student's four-digit class year; blank for staff",
        "derived from the grade (see Class year)",
    ),
    spec.TITLE_COLUMN: (
        "only when staff are included: a staff member's title; blank for students",
        "an error for a staff member",
    ),
}


def always_blank(file: FileSpec) -> set[str]:
    """The columns of ``file`` the package always writes blank, whatever the source holds."""
    return set(file.written_blank)


def _values(file: FileSpec, column: Column) -> str:
    if column.name in always_blank(file):
        return KIND_VALUES["blank"]
    if (file.name, column.name) in NAVIANCE_VALUES:
        return NAVIANCE_VALUES[file.name, column.name]
    codes = column.allowed
    if column.kind == "bool":
        codes = spec.BOOLEANS
    elif column.kind == "grade":
        codes = spec.CEDS_GRADES
    text = KIND_VALUES[column.kind].format(codes=_codes(codes) if codes else "")
    return text + (", or blank" if codes and not column.required else "")


def _when_blank(file: FileSpec, column: Column) -> str:
    if column.name in always_blank(file):
        return "blank, whatever the source holds"
    return "an error: no package" if column.required else "blank"


def _yes(flag: bool) -> str:
    return "yes" if flag else ""


def column_table(file: FileSpec) -> str:
    """The Markdown table of ``file``'s columns in the package's order (users.csv: then its
    extension columns)."""
    rows = [
        (c.name, _yes(c.required), _yes(c.pii), _values(file, c), _when_blank(file, c))
        for c in file.columns
    ]
    if file is spec.USERS:
        rows += [(name, "", "", *EXTENSIONS[name]) for name in spec.USER_EXTENSIONS_WITH_STAFF]
    lines = [
        "| # | Column | Required | PII | What the package holds | Source blank or column absent |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {i} | `{name}` | {required} | {pii} | {values} | {blank} |"
        for i, (name, required, pii, values, blank) in enumerate(rows, 1)
    ]
    return "\n".join(lines)


def header_line(file: FileSpec) -> str:
    """The file's header record as written (users.csv: with ``metadata.classYear``)."""
    return "```\n" + ",".join(spec.output_header(file)) + "\n```"


def aliases_table() -> str:
    rows = [
        f"| {name} | `{source}` | `{target}` |"
        for name, file in spec.FILES.items()
        for source, target in file.aliases.items()
    ]
    return "\n".join(["| File | Source header | Read as |", "|---|---|---|", *rows])


def manifest_table() -> str:
    name, value = spec.MANIFEST_HEADER
    rows = [
        f"| `{prop}` | {f'`{v}`' if v is not None else CONFIGURED_MANIFEST_VALUES[prop]} |"
        for prop, v in spec.MANIFEST_ROWS
    ]
    return "\n".join([f"| {name} | {value} |", "|---|---|", *rows])


def zip_facts() -> str:
    return "\n".join(
        [
            f"- Name: `{spec.ZIP_NAME}`, exactly that spelling and case.",
            "- Entries, in this order, at the root of the ZIP and nothing else: "
            + ", ".join(f"`{e}`" for e in spec.PACKAGE_ENTRIES)
            + ".",
            f"- Size: at most {spec.MAX_PACKAGE_BYTES:,} bytes (an error above it); "
            f"a warning above {spec.WARN_PACKAGE_BYTES:,} bytes.",
            f"- Longest value expected: {spec.MAX_VALUE_LENGTH} characters (a longer one is "
            "reported as a warning and written as it is).",
        ]
    )


def sections() -> dict[str, Callable[[], str]]:
    """Every generated block of the page, by the name in its marker."""
    blocks: dict[str, Callable[[], str]] = {
        "zip": zip_facts,
        "manifest": manifest_table,
        "aliases": aliases_table,
    }
    for name, file in spec.FILES.items():
        blocks[f"header {name}"] = lambda file=file: header_line(file)
        blocks[f"columns {name}"] = lambda file=file: column_table(file)
    return blocks


def render(text: str) -> str:
    """``text`` with every generated block rewritten. ValueError for a marker naming no
    block, or a block of ``sections()`` the page does not hold."""
    blocks = sections()
    found: set[str] = set()

    def fill(match: re.Match) -> str:
        name = match["name"].strip()
        if name not in blocks:
            raise ValueError(f"unknown generated block {name!r} (known: {sorted(blocks)})")
        found.add(name)
        return f"{match['open']}{blocks[name]()}\n{match['close']}"

    rendered = _BLOCK.sub(fill, text)
    missing = sorted(set(blocks) - found)
    if missing:
        raise ValueError(f"the page has no generated block for: {missing}")
    return rendered


def stale_blocks(text: str) -> list[str]:
    """The names of the generated blocks of ``text`` that differ from what ``render`` writes."""
    current = {m["name"].strip(): m["body"] for m in _BLOCK.finditer(text)}
    fresh = {m["name"].strip(): m["body"] for m in _BLOCK.finditer(render(text))}
    return sorted(name for name, body in fresh.items() if current.get(name) != body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m naviance_pipeline.oneroster.contract_doc",
        description="Rewrite (--write) or check (--check) the generated blocks of the contract.",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", metavar="PAGE", type=Path)
    action.add_argument("--check", metavar="PAGE", type=Path)
    args = parser.parse_args(argv)
    page = args.write or args.check
    text = page.read_text(encoding="utf-8")
    if args.write:
        page.write_text(render(text), encoding="utf-8")
        return 0
    stale = stale_blocks(text)
    if stale:
        print(f"{page}: stale generated blocks {stale}; run: {COMMAND}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
