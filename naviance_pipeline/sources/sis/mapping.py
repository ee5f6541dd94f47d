"""The mapping of a SIS export or database to OneRoster v1.1: a YAML file, validated on load.

A mapping says, for every output column of ``orgs.csv``, ``users.csv`` and
``demographics.csv``, where its value comes from. ``load_mapping`` takes a preset name
(:data:`PRESETS`, the files in ``sis/presets/``) or the path of a YAML file, checks all of it at
once and raises one :class:`MappingError` listing every problem, each naming the file and the
key path (``powerschool.yaml: users[1].columns.grades.map: no value map named 'grade_codes'``).

The YAML is read without type guessing: every scalar is text exactly as written (``01`` stays
``01``, ``true`` stays ``true``, ``-1`` stays ``-1``), so no value needs quotes to stay text
(YAML's own syntax still needs them around text starting with ``{``, ``%`` or ``"``, or holding
``: ``). A key given twice in one mapping is an error.

Format (``mapping_version: 1``)::

    mapping_version: 1            # required, "1"
    description: ...              # optional, free text
    tables:                       # required: where rows come from, by table name; every
                                  # table is read by orgs or users
      students:                   # a name of letters, digits and "_", unique ignoring case
                                  # (SQL snapshots store <name>.csv)
        file: students.csv        # the file in the export folder/ZIP (at its root, or in
                                  # one enclosing folder); needed for a CSV export
        query: SELECT ...         # the SQL query giving the same columns; needed for a SQL
                                  # source (alias columns in double quotes: PostgreSQL folds
                                  # unquoted names to lower case)
        encoding: utf-8           # optional (default utf-8; a BOM is dropped); cp1252 for
                                  # exports saved by Windows programs. The export file's
                                  # only: a SQL source's result sets are always UTF-8
    orgs:                         # required; from a table, from constant rows, or both
      table: schools              # a table under tables:, one org per row
      columns: {<column of orgs.csv>: <value>, ...}   # with table: sourcedId, name, type needed
      rows:                       # constant orgs, written after the table's
        - {sourcedId: "0", name: District Office, type: district}
      id_prefix: ""               # put before every org id (sourcedId, parentSourcedId, and
                                  # the users' orgSourcedIds)
    users:                        # required: one entry per table of people, written in order
      - table: students
        id_prefix: ""             # put before this table's sourcedIds: give staff tables
                                  # another prefix than students ("T-") so ids never collide
        columns: {<column of users.csv, or metadata.<name>>: <value>, ...}
                                  # sourcedId, enabledUser, orgSourcedIds, role, username,
                                  # givenName and familyName are required
        demographics:             # optional: one demographics.csv row per row of the table,
                                  # keyed by the user's sourcedId
          <column of demographics.csv>: <value>
          races: {column: Race, separator: ",", codes: {W: white, B: blackOrAfricanAmerican}}
    value_maps:                   # optional: named code tables, source code -> output value
      grade: {"0": KG, K: KG, "9": "09"}

A ``<value>`` is a mapping with exactly one of:

- ``column: Name`` - the value of that source column (surrounding spaces trimmed);
- ``constant: text`` - the same text on every row;
- ``template: "{First} {Last}"`` - text joining source columns named in braces (``{{`` and
  ``}}`` for literal braces); blank when every column it names is blank;

and, with ``column`` only:

- ``map: name`` - translate through ``value_maps.name``; only coded columns take one (grades,
  enabledUser, role, sex, type and the race/ethnicity flags), and every value of the map must be
  a valid value of the column. A blank value stays blank; a non-blank value the map does not
  list is reported with the column's rule code (USR-GRADE, USR-ENABLED, USR-ROLE, DEM-SEX,
  ORG-TYPE, DEM-FLAG) at its source file, line and column, and written unchanged, so the
  validation stages reject it too;
- ``date_format: "%m/%d/%Y"`` - birthDate only: parse with this strptime format and write
  ``YYYY-MM-DD``; a value already ``YYYY-MM-DD`` (a SQL ``DATE`` column) is kept as it is; a
  value that does not match is XLS-DATE-FORMAT (a matching but impossible
  date DEM-BIRTHDATE) and is written unchanged.

``races`` (demographics only) reads one column of race codes separated by ``separator``
(default ``,``); ``codes`` says which race flag each code sets. A row with codes gets every
race flag ``true`` or ``false`` and ``demographicRaceTwoOrMoreRaces`` ``true`` for two or more
different races; a blank cell leaves all six blank. A code not in ``codes`` is DEM-FLAG, and the
cell is written into ``demographicRaceTwoOrMoreRaces`` so the demographics stage rejects the
row too. ``races`` and the individual race flags are not mapped together.

Columns that are always blank in the package (status, dateLastModified, password) cannot be
mapped; a demographics row's sourcedId is always its user's. Output columns come from
``oneroster/spec.py``; ``users.csv`` gets the spec header plus the ``metadata.*`` columns mapped.
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import PurePosixPath
from typing import Any

import fsspec
import yaml

from naviance_pipeline.oneroster.rules import column_rules
from naviance_pipeline.oneroster.source import redact_url
from naviance_pipeline.oneroster.spec import (
    BOOLEANS,
    CEDS_GRADES,
    FileSpec,
)

MAPPING_VERSION = "1"
RACES = "races"  # the demographics key that sets the race flags from codes
METADATA = "metadata."
DEFAULT_SEPARATOR = ","
GRADE_RULE = "USR-GRADE"
DATE_RULE = "XLS-DATE-FORMAT"
IMPOSSIBLE_DATE_RULE = "DEM-BIRTHDATE"

_PRESETS_DIR = resources.files("naviance_pipeline.sources.sis") / "presets"
PRESETS: tuple[str, ...] = tuple(
    sorted(p.name.removesuffix(".yaml") for p in _PRESETS_DIR.iterdir() if p.name.endswith(".yaml"))
)


class MappingError(ValueError):
    """A mapping that cannot be used: every problem, one per line, each naming the mapping
    file and key path (and for a source that does not fit it, the file and column)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class TableSource:
    """Where one table's rows come from: an export file, a SQL query, or either."""

    name: str
    file: str | None
    query: str | None
    encoding: str = "utf-8"


@dataclass(frozen=True)
class ValueSource:
    """Where one output column's value comes from. ``key`` is its key path in the mapping."""

    key: str
    target: str
    column: str | None = None
    constant: str | None = None
    template: str | None = None
    map: str | None = None
    date_format: str | None = None
    separator: str = DEFAULT_SEPARATOR  # races only
    codes: Mapping[str, str] = field(default_factory=dict)  # races only: code -> race flag

    @property
    def reads(self) -> list[tuple[str, str]]:
        """(source column, key path naming it) for every source column this value reads."""
        if self.column is not None:
            return [(self.column, f"{self.key}.column")]
        if self.template is not None:
            return [(name, f"{self.key}.template") for name in template_fields(self.template)]
        return []


@dataclass(frozen=True)
class OrgsMapping:
    table: str | None
    columns: Mapping[str, ValueSource]
    rows: tuple[Mapping[str, str], ...]
    id_prefix: str = ""


@dataclass(frozen=True)
class UsersMapping:
    """One table of people: its users.csv columns and, optionally, its demographics."""

    key: str  # "users[0]"
    table: str
    columns: Mapping[str, ValueSource]
    demographics: Mapping[str, ValueSource]  # empty: no demographics rows from this table
    id_prefix: str = ""


@dataclass(frozen=True)
class SisMapping:
    ref: str  # what was loaded: a preset name or a path
    text: str  # the YAML text as loaded (stored in the snapshot)
    tables: Mapping[str, TableSource]
    orgs: OrgsMapping
    users: tuple[UsersMapping, ...]
    value_maps: Mapping[str, Mapping[str, str]]
    label: str = "mapping.yaml"  # the file name messages give
    description: str = ""

    def sources(self, table: str) -> Iterator[ValueSource]:
        """Every value that reads rows of ``table``, in mapping order."""
        if self.orgs.table == table:
            yield from self.orgs.columns.values()
        for entry in self.users:
            if entry.table == table:
                yield from entry.columns.values()
                yield from entry.demographics.values()

    def columns_read(self, table: str) -> list[str]:
        """The source columns the mapping reads from ``table``, in order of first use."""
        return list(self._readers(table))

    def header_problems(self, table: str, header: Sequence[str], file: str) -> list[str]:
        """One problem per column the mapping reads from ``table`` that ``header`` (the
        file's or the query's column names) lacks, naming the mapping keys and the column."""
        if not any(name.strip() for name in header):
            return [f"{self.label}: tables.{table}: {file} has no header row (it is empty)"]
        present = {name.strip() for name in header}
        folded = {name.lower(): name for name in present}
        problems = []
        for column, keys in self._readers(table).items():
            if column in present:
                continue
            hint = ""
            if column.lower() in folded:
                hint = (
                    f" (it has '{folded[column.lower()]}': column names must match exactly, "
                    "letter case included)"
                )
            problems.append(
                f"{self.label}: {', '.join(keys)}: column '{column}' is not in {file}{hint}"
            )
        return problems

    def file_label(self, table: str) -> str:
        """The file findings name for ``table``: its export file, else ``<table>.csv`` (the
        name of its result set in a SQL snapshot)."""
        return self.tables[table].file or f"{table}.csv"

    def _readers(self, table: str) -> dict[str, list[str]]:
        readers: dict[str, list[str]] = {}
        for source in self.sources(table):
            for column, key in source.reads:
                readers.setdefault(column, []).append(key)
        return readers


# ---- loading ------------------------------------------------------------------------------------


def load_mapping(ref: str) -> SisMapping:
    """Load and validate a mapping: a preset name (:data:`PRESETS`) or the path (or fsspec
    URL) of a YAML file. Raises MappingError listing every problem."""
    if ref in PRESETS:
        text = (_PRESETS_DIR / f"{ref}.yaml").read_text(encoding="utf-8")
        return parse_mapping(text, ref=ref, label=f"{ref}.yaml")
    shown = redact_url(ref)
    label = PurePosixPath(shown).name or shown
    try:
        with fsspec.open(ref, "rt", encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise MappingError(
            [f"{shown}: no such mapping file, and not a preset ({', '.join(PRESETS)})"]
        ) from None
    except UnicodeDecodeError:
        raise MappingError([f"{label}: the mapping file is not UTF-8 text"]) from None
    except (OSError, ValueError) as e:
        raise MappingError([f"{shown}: the mapping file cannot be read ({e})"]) from None
    return parse_mapping(text, ref=ref, label=label)


def parse_mapping(text: str, *, ref: str = "", label: str = "mapping.yaml") -> SisMapping:
    """Validate mapping YAML ``text`` (as :func:`load_mapping` does for a file)."""
    try:
        document = yaml.load(text, Loader=_TextLoader)  # a BaseLoader: builds text only
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise MappingError([f"{label}: {where}not valid YAML: {e.problem or e}"]) from None
    except yaml.YAMLError as e:
        raise MappingError([f"{label}: not valid YAML: {e}"]) from None
    from naviance_pipeline.sources.sis.mapping_checks import MappingCheck

    check = MappingCheck(label)
    mapping = check.document(document, ref or label, text)
    if check.problems or mapping is None:
        raise MappingError(check.problems)
    return mapping


class _TextLoader(yaml.BaseLoader):
    """Every scalar as text, exactly as written; a key repeated in one mapping is an error
    (PyYAML would silently keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str):
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be plain text", key_node.start_mark
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def template_fields(template: str) -> list[str]:
    """The column names a template reads, in order (ValueError for a malformed template)."""
    return [name for _, name in template_parts(template) if name is not None]


def template_parts(template: str) -> list[tuple[str, str | None]]:
    """A template as (literal text, column name or None) pairs; ValueError when a brace is
    unbalanced or a field holds more than a column name (a conversion or format spec)."""
    parts = []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        if name is not None and (spec or conversion or not name):
            raise ValueError("only a column name may stand in braces, as in {First_Name}")
        parts.append((literal, name))
    return parts


def coded(spec: FileSpec, column: str) -> tuple[str, tuple[str, ...]] | None:
    """(rule code, valid values) of an output column with a fixed set of values, else None.
    The rule code is what an unmapped source value is reported as."""
    if column.startswith(METADATA) or column == RACES:
        return None
    col = spec.column(column)
    if col.kind == "bool":
        return column_rules(spec.name, col)[0].code, BOOLEANS
    if col.kind == "enum":
        return column_rules(spec.name, col)[0].code, col.allowed
    if col.kind == "grade":
        return GRADE_RULE, CEDS_GRADES
    return None
