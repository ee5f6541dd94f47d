"""Validation of a mapping document (parsed YAML, every scalar text) into a ``SisMapping``.

Every problem is collected, not just the first, each naming the mapping file and the key path
(``powerschool.yaml: users[1].columns.grades.map: no value map named 'grade_codes'``); the
format itself is documented in ``mapping.py``.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from naviance_pipeline.oneroster.spec import (
    DEMOGRAPHICS,
    ORGS,
    RACE_FLAGS,
    TWO_OR_MORE,
    USERS,
    FileSpec,
)
from naviance_pipeline.sources.sis.mapping import (
    DEFAULT_SEPARATOR,
    MAPPING_VERSION,
    METADATA,
    RACES,
    OrgsMapping,
    SisMapping,
    TableSource,
    UsersMapping,
    ValueSource,
    coded,
    template_fields,
)

_TOP_KEYS = ("mapping_version", "description", "tables", "orgs", "users", "value_maps")
_TABLE_KEYS = ("file", "query", "encoding")
_ORGS_KEYS = ("table", "columns", "rows", "id_prefix")
_USER_KEYS = ("table", "id_prefix", "columns", "demographics")
_SOURCES = ("column", "constant", "template")
_VALUE_KEYS = (*_SOURCES, "map", "date_format")
_RACE_KEYS = ("column", "separator", "codes")
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PREFIX = re.compile(r"[A-Za-z0-9._/@-]*")  # the sourcedId charset (ID-CHARSET)
_METADATA_NAME = re.compile(r"metadata\.[A-Za-z0-9_.-]+")
_LINE_BREAK = re.compile(r"[\r\n]")
_SAMPLE_DATE = datetime(2010, 3, 24)  # day, month and year all differ: a format must keep all


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class MappingCheck:
    """Walks a parsed mapping document, collecting every problem and building the mapping."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.problems: list[str] = []
        self.value_maps: dict[str, dict[str, str]] = {}
        self._checked_maps: set[tuple[str, str, str]] = set()

    def add(self, path: str, message: str) -> None:
        self.problems.append(f"{self.label}: {path or 'top level'}: {message}")

    # -- shapes --

    def mapping(
        self, node: Any, path: str, keys: Sequence[str] | None, required: Sequence[str] = ()
    ) -> dict | None:
        """``node`` when it is a mapping (reporting keys outside ``keys`` and missing
        ``required`` ones), else None after reporting it."""
        if not isinstance(node, dict):
            self.add(path, "must be a mapping (key: value lines)")
            return None
        for key in node:
            if keys is not None and key not in keys:
                self.add(_join(path, key), f"unknown key (expected one of: {', '.join(keys)})")
        for key in required:
            if key not in node:
                self.add(path, f"'{key}' is missing")
        return node

    def text(
        self, node: Any, path: str, *, blank_ok: bool = False, multiline: bool = False
    ) -> str | None:
        if not isinstance(node, str):
            self.add(path, "must be text, not a list or a mapping")
            return None
        if not blank_ok and not node.strip():
            self.add(path, "must not be blank")
            return None
        if not multiline and _LINE_BREAK.search(node):
            self.add(path, "must not hold a line break")
            return None
        return node

    # -- the document --

    def document(self, doc: Any, ref: str, text: str) -> SisMapping | None:
        top = self.mapping(doc, "", _TOP_KEYS, required=("mapping_version", "tables", "orgs"))
        if top is None:
            return None
        if "users" not in top:
            self.add("", "'users' is missing")
        version = top.get("mapping_version")
        if version is not None and version != MAPPING_VERSION:
            self.add("mapping_version", f"must be {MAPPING_VERSION}")
        description = top.get("description", "")
        if not isinstance(description, str):
            self.add("description", "must be text")
            description = ""
        self.value_maps = self.maps(top.get("value_maps", {}))
        tables = self.tables(top.get("tables"))
        orgs = self.orgs(top.get("orgs"), tables)
        users = self.users(top.get("users"), tables)
        if tables is None or orgs is None or users is None:
            return None
        self.unused_tables(tables, orgs, users)
        self.prefix_collisions(users)
        return SisMapping(ref, text, tables, orgs, users, self.value_maps, self.label, description)

    def maps(self, node: Any) -> dict[str, dict[str, str]]:
        maps = self.mapping(node, "value_maps", None)
        out: dict[str, dict[str, str]] = {}
        for name, codes in (maps or {}).items():
            path = f"value_maps.{name}"
            table = self.mapping(codes, path, None)
            if table is None:
                continue
            if not table:
                self.add(path, "is empty")
            values = {code: self.text(value, f"{path}.{code}") for code, value in table.items()}
            out[name] = {code: value for code, value in values.items() if value is not None}
        return out

    def tables(self, node: Any) -> dict[str, TableSource] | None:
        tables = self.mapping(node, "tables", None)
        if tables is None:
            return None
        if not tables:
            self.add("tables", "names no table")
        out = {}
        folded: dict[str, str] = {}
        for name, spec in tables.items():
            path = f"tables.{name}"
            if not _TABLE_NAME.fullmatch(name):
                self.add(path, "a table name holds only letters, digits and '_'")
            elif name.lower() in folded:  # SQL snapshots store <name>.csv: keep files apart
                self.add(path, f"differs from tables.{folded[name.lower()]} only by letter case")
            folded.setdefault(name.lower(), name)
            entry = self.mapping(spec, path, _TABLE_KEYS)
            if entry is None:
                continue
            if "file" not in entry and "query" not in entry:
                self.add(path, "has neither file nor query")
            file = self.file(entry.get("file"), f"{path}.file")
            query = None
            if "query" in entry:
                query = self.text(entry["query"], f"{path}.query", multiline=True)
            encoding = self.encoding(entry.get("encoding", "utf-8"), f"{path}.encoding")
            out[name] = TableSource(name, file, query, encoding or "utf-8")
        return out

    def file(self, node: Any, path: str) -> str | None:
        if node is None:
            return None
        name = self.text(node, path)
        if name is None:
            return None
        parts = name.split("/")
        if name.startswith("/") or "\\" in name or ".." in parts or "" in parts:
            self.add(path, "must be a relative file name inside the export, like students.csv")
            return None
        return name

    def encoding(self, node: Any, path: str) -> str | None:
        name = self.text(node, path)
        if name is None:
            return None
        try:
            codecs.lookup(name)
        except LookupError:
            self.add(path, f"'{name}' is not a known text encoding (e.g. utf-8, cp1252)")
            return None
        return name

    def known_table(self, node: Any, path: str, tables: Mapping[str, TableSource]) -> str | None:
        name = self.text(node, path)
        if name is not None and name not in tables:
            self.add(path, f"no table named '{name}' under tables")
            return None
        return name

    def prefix(self, node: Any, path: str) -> str:
        prefix = self.text(node, path, blank_ok=True)
        if prefix is None:
            return ""
        if not _PREFIX.fullmatch(prefix):
            self.add(path, "may only hold the sourcedId characters A-Z a-z 0-9 . - _ / @")
            return ""
        return prefix

    # -- orgs --

    def orgs(self, node: Any, tables: Mapping[str, TableSource] | None) -> OrgsMapping | None:
        orgs = self.mapping(node, "orgs", _ORGS_KEYS)
        if orgs is None:
            return None
        if "table" not in orgs and "rows" not in orgs:
            self.add("orgs", "needs a table, constant rows, or both")
        table = None
        columns: dict[str, ValueSource] = {}
        if "table" in orgs:
            table = self.known_table(orgs["table"], "orgs.table", tables or {})
            if "columns" not in orgs:
                self.add("orgs", "'columns' is missing (it says how the table's rows map)")
            else:
                columns = self.columns(orgs["columns"], "orgs.columns", ORGS, ORGS.required)
        elif "columns" in orgs:
            self.add("orgs.columns", "columns read a table: add orgs.table, or give rows")
        rows = self.org_rows(orgs.get("rows", []))
        return OrgsMapping(table, columns, rows, self.prefix(orgs.get("id_prefix", ""), "orgs"))

    def org_rows(self, node: Any) -> tuple[dict[str, str], ...]:
        if not isinstance(node, list):
            self.add("orgs.rows", "must be a list of orgs")
            return ()
        out = []
        for i, row in enumerate(node):
            path = f"orgs.rows[{i}]"
            entry = self.mapping(row, path, None, required=ORGS.required)
            if entry is None:
                continue
            values = {}
            for column, value in entry.items():
                if self.output_column(column, _join(path, column), ORGS):
                    constant = self.text(value, _join(path, column))
                    if constant is not None and self.valid_constant(
                        constant, _join(path, column), ORGS, column
                    ):
                        values[column] = constant
            out.append(values)
        return tuple(out)

    # -- users --

    def users(self, node: Any, tables: Mapping[str, TableSource] | None) -> tuple | None:
        if node is None:
            return None
        if not isinstance(node, list) or not node:
            self.add("users", "must be a list with one entry per table of people")
            return None
        out = []
        for i, item in enumerate(node):
            path = f"users[{i}]"
            entry = self.mapping(item, path, _USER_KEYS, required=("table", "columns"))
            if entry is None:
                continue
            table = self.known_table(entry.get("table"), f"{path}.table", tables or {})
            columns = self.columns(entry.get("columns"), f"{path}.columns", USERS, USERS.required)
            demographics = {}
            if "demographics" in entry:
                demographics = self.columns(
                    entry["demographics"], f"{path}.demographics", DEMOGRAPHICS, ()
                )
            prefix = self.prefix(entry.get("id_prefix", ""), f"{path}.id_prefix")
            if table is not None:
                out.append(UsersMapping(path, table, columns, demographics, prefix))
        return tuple(out)

    # -- columns and values --

    def columns(
        self, node: Any, path: str, spec: FileSpec, required: Sequence[str]
    ) -> dict[str, ValueSource]:
        columns = self.mapping(node, path, None)
        if columns is None:
            return {}
        missing = [c for c in required if c not in columns]
        if missing:
            self.add(path, f"required column(s) not mapped: {', '.join(missing)}")
        out = {}
        for column, value in columns.items():
            key = _join(path, column)
            if self.output_column(column, key, spec):
                source = self.value(value, key, spec, column)
                if source is not None:
                    out[column] = source
        if RACES in out:
            for flag in (*RACE_FLAGS, TWO_OR_MORE):
                if flag in out:
                    self.add(_join(path, flag), "races sets the race flags already: map one")
        return out

    def output_column(self, column: str, key: str, spec: FileSpec) -> bool:
        """Whether ``column`` may be mapped in ``spec``, reporting why not."""
        if spec is USERS and column.startswith(METADATA):
            if not _METADATA_NAME.fullmatch(column):
                self.add(key, "a metadata column is named metadata.<letters, digits, _ . ->")
                return False
            return True
        if spec is DEMOGRAPHICS and column == RACES:
            return True
        if column not in spec.header:
            extra = " or metadata.<name>" if spec is USERS else ""
            self.add(key, f"'{column}' is not a column of {spec.name} (one of the spec{extra})")
            return False
        if spec.column(column).kind == "blank":
            self.add(key, f"{column} is always written blank and cannot be mapped")
            return False
        if spec is DEMOGRAPHICS and column == "sourcedId":
            self.add(key, "a demographics row takes its user's sourcedId: remove this key")
            return False
        return True

    def value(self, node: Any, key: str, spec: FileSpec, target: str) -> ValueSource | None:
        if target == RACES:
            return self.races(node, key)
        entry = self.mapping(node, key, _VALUE_KEYS)
        if entry is None:
            return None
        given = [k for k in _SOURCES if k in entry]
        if len(given) != 1:
            found = f" (it has {' and '.join(given)})" if given else ""
            self.add(key, f"needs exactly one of column, constant or template{found}")
            return None
        kind = given[0]
        value = self.text(entry[kind], f"{key}.{kind}")
        if value is None:
            return None
        if kind == "template" and not self.valid_template(value, f"{key}.template"):
            return None
        if kind == "constant" and not self.valid_constant(value, f"{key}.constant", spec, target):
            return None
        map_name = self.value_map(entry, key, kind, spec, target)
        date_format = self.date_format(entry, key, kind, spec, target)
        return ValueSource(key, target, **{kind: value}, map=map_name, date_format=date_format)

    def valid_template(self, template: str, key: str) -> bool:
        try:
            fields = template_fields(template)
        except ValueError as e:
            self.add(key, f"not a valid template: {e}")
            return False
        if not fields:
            self.add(key, "names no column in braces: use constant for fixed text")
            return False
        return True

    def valid_constant(self, value: str, key: str, spec: FileSpec, target: str) -> bool:
        code = coded(spec, target)
        if code is not None and value not in code[1]:
            self.add(key, f"'{value}' is not a valid {target} (one of: {' '.join(code[1])})")
            return False
        return True

    def value_map(
        self, entry: dict, key: str, kind: str, spec: FileSpec, target: str
    ) -> str | None:
        if "map" not in entry:
            return None
        path = f"{key}.map"
        name = self.text(entry["map"], path)
        if name is None:
            return None
        code = coded(spec, target)
        if kind != "column":
            self.add(path, "a value map translates a column: use column with map")
            return None
        if code is None:
            self.add(
                path,
                "only coded columns take a value map (grades, enabledUser, role, sex, type, "
                "the race and ethnicity flags)",
            )
            return None
        if name not in self.value_maps:
            self.add(path, f"no value map named '{name}'")
            return None
        if (name, spec.name, target) not in self._checked_maps:
            self._checked_maps.add((name, spec.name, target))
            for source, value in self.value_maps[name].items():
                if value not in code[1]:
                    self.add(
                        f"value_maps.{name}.{source}",
                        f"'{value}' is not a valid {target} (one of: {' '.join(code[1])}); "
                        f"the map is used by {key}",
                    )
        return name

    def date_format(
        self, entry: dict, key: str, kind: str, spec: FileSpec, target: str
    ) -> str | None:
        if "date_format" not in entry:
            return None
        path = f"{key}.date_format"
        fmt = self.text(entry["date_format"], path)
        if fmt is None:
            return None
        if kind != "column":
            self.add(path, "a date format parses a column: use column with date_format")
            return None
        if target.startswith(METADATA) or spec.column(target).kind != "date":
            self.add(path, "only birthDate takes a date format")
            return None
        try:
            parsed = datetime.strptime(_SAMPLE_DATE.strftime(fmt), fmt)
        except ValueError as e:
            self.add(path, f"'{fmt}' is not a strptime date format ({e})")
            return None
        if parsed.date() != _SAMPLE_DATE.date():
            self.add(path, f"'{fmt}' must hold a day, a month and a year, like %m/%d/%Y")
            return None
        return fmt

    def races(self, node: Any, key: str) -> ValueSource | None:
        entry = self.mapping(node, key, _RACE_KEYS, required=("column", "codes"))
        if entry is None or "column" not in entry or "codes" not in entry:
            return None
        column = self.text(entry["column"], f"{key}.column")
        separator = self.text(entry.get("separator", DEFAULT_SEPARATOR), f"{key}.separator")
        codes = self.mapping(entry["codes"], f"{key}.codes", None)
        if codes is None:
            return None
        if not codes:
            self.add(f"{key}.codes", "is empty")
        valid = {}
        for code, flag in codes.items():
            path = f"{key}.codes.{code}"
            flag = self.text(flag, path)
            if flag is not None and flag not in RACE_FLAGS:
                self.add(path, f"'{flag}' is not a race flag (one of: {' '.join(RACE_FLAGS)})")
            elif flag is not None:
                valid[code] = flag
        if column is None or separator is None or len(valid) != len(codes):
            return None
        return ValueSource(key, RACES, column=column, separator=separator, codes=valid)

    # -- across entries --

    def unused_tables(
        self, tables: Mapping[str, TableSource], orgs: OrgsMapping, users: tuple
    ) -> None:
        used = {orgs.table, *(entry.table for entry in users)}
        for name in tables:
            if name not in used:
                self.add(f"tables.{name}", "is not read by orgs or users: remove it")

    def prefix_collisions(self, users: tuple[UsersMapping, ...]) -> None:
        """Students and staff sharing an id prefix could share sourcedIds."""
        for i, entry in enumerate(users):
            for earlier in users[:i]:
                if entry.id_prefix == earlier.id_prefix and _students(entry) != _students(earlier):
                    self.add(
                        f"{entry.key}.id_prefix",
                        f"is the same as {earlier.key}.id_prefix ('{entry.id_prefix}'), but one "
                        "table holds students and the other does not: give the staff table "
                        "its own prefix (such as 'T-') so student and staff ids never collide",
                    )
                    break


def _students(entry: UsersMapping) -> bool:
    role = entry.columns.get("role")
    return role is not None and role.constant == "student"
