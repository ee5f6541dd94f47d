"""Every rule, declared once: its code, severity, family, what it checks, what its findings say
and where it applies.

Everything else is derived from ``REGISTRY``: the severities (``RULES``), the Pandera checks of
the three output files (``schemas``: one check per column a rule's ``On`` selects, named by the
rule code, running the predicate its ``check`` names in ``predicates``), the Dagster check each
family reports under (``defs/checks.py``), the report's family names and the rule catalogue
``docs/rules.md`` (``python -m naviance_pipeline.oneroster.rules --markdown``).

Severity ``E`` blocks delivery, ``W`` is reported and delivery goes on, ``R`` means the value was
repaired (a warning that says what was changed). Codes are stable: reports and users' alert
rules depend on them.

A rule that checks the values of one output file alone is a Pandera check: give it ``on`` (the
columns) and ``check`` (a predicate of ``predicates``, True for acceptable values); its finding
says ``"<column>: <message>"``. Any other rule names in ``by`` the function (or module) that
reports it, with findings worded there; its ``message`` then says what those findings tell.

Adding a rule: one entry below (a single-file rule is then checked, reported under its family's
Dagster check and listed by ``naviance-pipeline schema`` with nothing else to change; give it a
predicate in ``predicates`` if none there fits), its test, and ``docs/rules.md`` regenerated.
``test_rule_registry`` fails on a rule half registered.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from naviance_pipeline.oneroster.spec import (
    CLASS_YEAR_COLUMN,
    DEMOGRAPHICS,
    FILES,
    ORGS,
    TWO_OR_MORE,
    USERS,
    Column,
    output_header,
)


@dataclass(frozen=True)
class Family:
    """A family of rules (the code's prefix) and the Dagster asset check that reports it."""

    title: str
    check: str


FAMILIES: dict[str, Family] = {
    "SRC": Family("source package", "source_package"),
    "CSV": Family("CSV syntax", "csv_syntax"),
    "XLS": Family("spreadsheet damage", "spreadsheet_damage"),
    "BULK": Family("bulk semantics", "bulk_semantics"),
    "ID": Family("identifiers", "identifiers"),
    "ORG": Family("orgs", "org_rules"),
    "USR": Family("users", "user_rules"),
    "DEM": Family("demographics", "demographic_rules"),
    "PKG": Family("package", "package_integrity"),
    "GRD": Family("guards", "delivery_guards"),
}


@dataclass(frozen=True)
class On:
    """The output columns a single-file rule checks: those of the given ``kinds`` (``spec.py``)
    or ``columns`` (names), of the given ``files`` (every file when empty), only required ones
    when ``required``. ``frame``: a check of whole rows, reported on that column."""

    kinds: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    required: bool = False
    frame: str | None = None

    def selects(self, file: str, column: Column) -> bool:
        return (
            self.frame is None
            and (not self.files or file in self.files)
            and (column.kind in self.kinds or column.name in self.columns)
            and (column.required or not self.required)
        )

    def describe(self) -> str:
        """The columns selected, file by file (files with the same columns together)."""
        files = [f for f in FILES if not self.files or f in self.files]
        if self.frame:
            return f"{', '.join(files)}: each row (reported on `{self.frame}`)"
        selected: dict[str, list[str]] = {}
        for file in files:
            spec = FILES[file]
            known = {c.name: c for c in spec.columns}
            names = [
                name
                for name in output_header(spec, include_staff=True)
                if self.selects(file, known.get(name, Column(name)))
            ]
            selected.setdefault(", ".join(f"`{n}`" for n in names), []).append(file)
        return "; ".join(f"{', '.join(fs)}: {cols}" for cols, fs in selected.items() if cols)


@dataclass(frozen=True)
class Rule:
    """One rule code. ``summary``: what the rule checks. ``message``: what its findings say (a
    check's finding is ``"<column>: <message>"``; ``{low}``, ``{high}`` and ``{as_of}`` name
    the class-year range and the as-of date). A single-file rule has ``on`` and ``check`` (the
    name of its predicate in ``predicates``); any other rule names in ``by`` the function or
    module (``module.function``, within ``naviance_pipeline``) that reports it.
    ``consequence_of``: the rules whose finding on the same row (the same user) causes this
    one (the first found, in this order); such a finding is not reported on its own but
    counted under its cause's finding (``findings.with_consequences``), and blocks nothing the
    cause does not block."""

    code: str
    severity: str
    summary: str
    message: str
    on: On | None = None
    check: str | None = None
    by: str | None = None
    consequence_of: tuple[str, ...] = ()

    @property
    def family(self) -> Family:
        return FAMILIES[family(self.code)]

    def where(self) -> str:
        return self.on.describe() if self.on else f"`{self.by}`"


def family(code: str) -> str:
    """The family prefix of a rule code: ``USR-ROLE`` -> ``USR``."""
    return code.split("-", 1)[0]


_OWN_ID = On(kinds=("id",), required=True)  # each row's own sourcedId
_BLANK_IN_BULK = "must be blank in a bulk file"
_SOURCE = "oneroster.source"
_CSVREAD = "oneroster.csvread"
_GUARDS = "delivery.guards"
_V12 = "oneroster.v12"

# One rule a block: code, severity, where it applies (``on`` and ``check``, or ``by``), what it
# checks, what its findings say. Laid out by hand (the formatter would give each eight lines).
# fmt: off
REGISTRY: tuple[Rule, ...] = (
    # ---- Source package: opening, listing and reading the manifest of the source
    Rule("SRC-UNREADABLE", "E", by=_SOURCE,
         summary="the source cannot be opened or listed (missing path, permission, not a ZIP, "
                 "corrupt ZIP)",
         message="the source cannot be opened; says why (never a file's content)"),
    Rule("SRC-UNSAFE-ENTRY", "E", by=_SOURCE,
         summary="an archive entry has an absolute path, `..`, or is a link (or a folder source "
                 "holds a link out of it, a FIFO, a device); nothing is extracted",
         message="names the entry that is refused"),
    Rule("SRC-TOO-LARGE", "E", by=_SOURCE,
         summary="an archive expands past the configured limit (default 20 GB) or ratio (zip "
                 "bomb)",
         message="names the limit that was passed"),
    Rule("SRC-NESTED", "W", by=_SOURCE,
         summary="the CSV files sit inside one folder of the archive, not at its root",
         message="names the folder the files were read from"),
    Rule("SRC-MISSING-FILE", "E", by=_SOURCE,
         summary="`orgs.csv` or `users.csv` (or a 1.2 export's `roles.csv`) is absent "
                 "(`demographics.csv` absent is DEM-MISSING)",
         message="names the missing file"),
    Rule("SRC-DUPLICATE-FILE", "E", by=_SOURCE,
         summary="a needed file is found twice (`users.csv` and `export/users.csv`, or one name "
                 "twice in a ZIP): which one is the export cannot be told",
         message="names the file found twice"),
    Rule("SRC-EXTRA-FILE", "W", by=_SOURCE,
         summary="files other than the OneRoster v1.1 (or, for 1.2, v1.2) set are present; "
                 "they are ignored",
         message="names the files ignored"),
    Rule("SRC-MANIFEST-MISSING", "E", by=_SOURCE,
         summary="no `manifest.csv` in a OneRoster source",
         message="manifest.csv is missing"),
    Rule("SRC-VERSION", "E", by=_SOURCE,
         summary="the manifest's `oneroster.version` is not `1.1` or `1.2`, or `users.csv` has "
                 "the header of another version than the source's (1.0 always); a 1.2 bulk "
                 "export is read as its 1.1 package",
         message="names the version found"),
    Rule("SRC-DELTA", "E", by=_SOURCE,
         summary="the manifest marks orgs, users or demographics (or a 1.2 export's roles) as "
                 "`delta`",
         message="names the file marked delta"),
    Rule("SRC-MANIFEST-MISMATCH", "W", by=_SOURCE,
         summary="the source manifest says `bulk` for a missing file, `absent` for a present one,"
                 " or has unknown/duplicate properties",
         message="names the manifest property"),
    Rule("SRC-STALE-EXPORT", "W", by="sources.freshness",
         summary="the SIS export has not changed for `NAVIANCE_EXPORT_UNCHANGED_DAYS` days, or "
                 "its newest file is older than `NAVIANCE_EXPORT_MAX_AGE_HOURS` (the export job "
                 "upstream may be broken); an error when `NAVIANCE_EXPORT_STALE_BLOCKS` is set",
         message="names the ages and the limits passed (never a file's content)"),
    # ---- CSV syntax: reading each file leniently
    Rule("CSV-ENCODING", "E", by=_CSVREAD,
         summary="not valid UTF-8 (the line is reported, and whether it looks like Windows-1252)",
         message="names the line and the likely encoding"),
    Rule("CSV-BOM", "R", by=_CSVREAD,
         summary="a UTF-8 byte-order mark was present and dropped",
         message="the byte-order mark was dropped"),
    Rule("CSV-PARSE", "E", by=_CSVREAD,
         summary="broken quoting, or a record with a different number of fields than the header",
         message="names the line and what is wrong with it"),
    Rule("CSV-NEWLINE-IN-VALUE", "E", by=_CSVREAD,
         summary="a value contains a carriage return or line feed",
         message="names the row and column"),
    Rule("CSV-HEADER-MISSING", "E", by=_CSVREAD,
         summary="a required column is absent (orgs: sourcedId, name, type; users: sourcedId, "
                 "enabledUser, orgSourcedIds, role, username, givenName, familyName; "
                 "demographics: sourcedId)",
         message="names the missing column"),
    Rule("CSV-HEADER-INCOMPLETE", "W", by=_CSVREAD,
         summary="an optional spec column is absent; it is written blank",
         message="names the absent columns"),
    Rule("CSV-HEADER-ALIAS", "R", by=_CSVREAD,
         summary="a known misspelling (`sourceID`, `parentSourceId`, `agentSourceIds`, "
                 "`demogrphicRaceTwoOrMoreRaces`) was read as the spec name",
         message="names the misspelling and the spec name"),
    Rule("CSV-HEADER-CASE", "E", by=_CSVREAD,
         summary="a column matches a spec name only when case is ignored",
         message="names the column and the spec name"),
    Rule("CSV-HEADER-ORDER", "W", by=_CSVREAD,
         summary="the spec columns are present in another order",
         message="the columns are read by name"),
    Rule("CSV-HEADER-DUPLICATE", "E", by=_CSVREAD,
         summary="a column name appears twice",
         message="names the column"),
    Rule("CSV-HEADER-UNKNOWN", "W", by=_CSVREAD,
         summary="a column that is neither a spec column nor `metadata.*`; it is dropped",
         message="names the column dropped"),
    Rule("CSV-EMPTY", "E", by=_CSVREAD,
         summary="a file has a header and no data rows (for demographics: see DEM-MISSING)",
         message="names the file"),
    Rule("CSV-WHITESPACE", "R", by=_CSVREAD,
         summary="leading or trailing spaces (or tabs) around a value were trimmed",
         message="once per column: the count and the first line"),
    Rule("CSV-TOO-LONG", "W", by=_CSVREAD,
         summary="a value longer than 255 characters",
         message="names the row and column"),
    Rule("CSV-CONTROL-CHARS", "R", by=_CSVREAD,
         summary="control characters (NUL, a tab inside a value, the other C0 and C1 controls, "
                 "DEL) were removed",
         message="once per column: the count and the first line"),
    # ---- Spreadsheet damage
    Rule("XLS-BOOLEAN-CASE", "R", by="oneroster.repair.repair",
         summary="`TRUE`/`FALSE`/`True`/`False` turned into `true`/`false`",
         message="values in <column> changed to the spec's exact case"),
    Rule("XLS-GRADE-PADDING", "R", by="oneroster.repair.repair",
         summary="grade `1`…`9` turned into `01`…`09`, `K` into `KG`",
         message="values in <column> zero-padded as CEDS grades (1 → 01, K → KG)"),
    Rule("XLS-ENUM-CASE", "R", by="oneroster.repair.repair",
         summary="an enumerated value in the wrong case (`Male`, `Student`, `School`, `kg`) "
                 "turned into the spec's token",
         message="values in <column> changed to the spec's (or the CEDS code's) exact case"),
    Rule("XLS-SCIENTIFIC-ID", "E", on=On(kinds=("id", "ids")), check="not_scientific",
         summary="an identifier looks like spreadsheet scientific notation (`1.23457E+11`)",
         message="identifier in spreadsheet scientific notation (like 1.23457E+11): its digits "
                 "are lost; re-export without opening the file in a spreadsheet"),
    Rule("XLS-DATE-FORMAT", "E", on=On(kinds=("date",)), check="date_shaped",
         summary="a date is not in the `YYYY-MM-DD` form (for example `3/4/2010`, `2010-03-04 "
                 "00:00:00`); a well-formed but impossible date is DEM-BIRTHDATE",
         message="not in YYYY-MM-DD form (like 3/4/2010 or 2010-03-04 00:00:00): export dates as "
                 "text"),
    Rule("XLS-LEADING-ZERO", "W", on=_OWN_ID, check="no_stripped_zeros",
         summary="identifiers of one file mix widths in a way that suggests stripped leading "
                 "zeros",
         message="all-digit id shorter than this file's zero-padded ids: a spreadsheet may have "
                 "stripped its leading zeros"),
    # ---- Bulk semantics
    Rule("BULK-STATUS", "W", on=On(columns=("status",)), check="blank",
         summary="a source row has a status; `tobedeleted`/`inactive` rows are left out and "
                 "counted, others are blanked",
         message=_BLANK_IN_BULK),
    Rule("BULK-DATE", "R", on=On(columns=("dateLastModified",)), check="blank",
         summary="a source row has a dateLastModified; it is blanked",
         message=_BLANK_IN_BULK),
    # ---- Identifiers
    Rule("ID-REQUIRED", "E", on=_OWN_ID, check="not_blank",
         summary="a blank sourcedId",
         message="blank; every row needs a unique sourcedId"),
    Rule("ID-DUPLICATE", "E", check="unique",
         on=On(kinds=("id",), files=(ORGS.name, USERS.name), required=True),
         summary="a sourcedId appears more than once in a file (every occurrence is reported)",
         message="the same sourcedId appears more than once in the file; each must be unique"),
    Rule("ID-CHARSET", "W", on=_OWN_ID, check="id_charset",
         summary="a sourcedId uses characters outside `A-Z a-z 0-9 . - _ / @` or is 256+ "
                 "characters",
         message="uses characters outside A-Z a-z 0-9 . - _ / @, or is 256+ characters long"),
    Rule("ID-CASE-COLLISION", "W", on=_OWN_ID, check="no_case_collision",
         summary="two sourcedIds differ only by letter case",
         message="differs from another sourcedId only by letter case"),
    # ---- Orgs
    Rule("ORG-NAME", "E", check="not_blank",
         on=On(kinds=("text",), files=(ORGS.name,), required=True),
         summary="blank name",
         message="blank; every org needs a name"),
    Rule("ORG-TYPE", "E", on=On(columns=("type",), files=(ORGS.name,)), check="allowed",
         summary="type not in the OneRoster v1.1 list",
         message="not a OneRoster v1.1 org type (school, district, department, local, state, "
                 "national)"),
    Rule("ORG-TYPE-NAVIANCE", "E", by="oneroster.rules_orgs.org_findings",
         summary="an org that output users belong to is not `school` or `district`",
         message="users in the package belong to this org, but Naviance takes only school and "
                 "district orgs"),
    Rule("ORG-PARENT", "E", by="oneroster.rules_orgs.org_findings",
         summary="parentSourcedId names an org that does not exist",
         message="parentSourcedId names an org that is not in orgs.csv (or is left out as "
                 "deleted)"),
    Rule("ORG-CYCLE", "E", by="oneroster.rules_orgs.org_findings",
         summary="an org is its own ancestor",
         message="this org is its own ancestor through parentSourcedId; break the cycle"),
    Rule("ORG-NO-SCHOOL", "E", by="oneroster.rules_orgs.org_findings",
         summary="no school remains in the package",
         message="no org of type school remains in the package: students must belong to a school"),
    # ---- Users
    Rule("USR-ENABLED", "E", on=On(kinds=("bool",), files=(USERS.name,)), check="boolean",
         summary="enabledUser not `true`/`false` (after repair)",
         message="must be true or false"),
    Rule("USR-ROLE", "E", on=On(columns=("role",), files=(USERS.name,)), check="allowed",
         summary="role not in the OneRoster v1.1 list",
         message="not a OneRoster v1.1 role, so the user cannot be written"),
    Rule("USR-ROLE-NAVIANCE", "W", by="oneroster.rules_users.role_findings",
         summary="a user with a role Naviance does not take (aide, guardian, parent, proctor, "
                 "relative) — left out",
         message="once per role: users with role <role> left out: Naviance does not take this "
                 "role"),
    Rule("USR-ROLE-PRIMARY", "E", by=_V12,
         summary="OneRoster 1.2: a user with no primary role in `roles.csv`, or more than one",
         message="names the users.csv line of a user with no primary role, or the roles.csv "
                 "line of a second primary role"),
    Rule("USR-ROLE-UNMAPPED", "W", by=_V12,
         summary="OneRoster 1.2: a user whose primary role has no 1.1 equivalent (`counselor`, "
                 "an `ext:` role) — left out",
         message="once per role: users whose primary role is <role> left out, with the count "
                 "and the first roles.csv line"),
    Rule("USR-REQUIRED", "E", check="not_blank",
         on=On(kinds=("text",), files=(USERS.name,), required=True),
         summary="blank username, givenName or familyName",
         message="blank; username, givenName and familyName are required"),
    Rule("USR-ORG-REF", "E", by="oneroster.rules_users.org_reference_findings",
         summary="orgSourcedIds blank, or names an org not in orgs.csv",
         message="orgSourcedIds is blank, or names orgs that are not in orgs.csv (or are left out"
                 " as deleted)"),
    Rule("USR-STUDENT-SCHOOL", "E", by="oneroster.rules_users.org_reference_findings",
         summary="a student belongs to no `school` org",
         message="this student belongs to no org of type school; add the student's school"),
    Rule("USR-AGENT-REF", "W", by="oneroster.rules_users.agent_findings",
         summary="agentSourcedIds names users not in the file; the column is blanked on output",
         message="agentSourcedIds names users that are not in users.csv; the column is written "
                 "blank"),
    Rule("USR-USERIDS", "E", on=On(kinds=("userids",)), check="userids",
         summary="userIds not a list of `{Type:Id}`",
         message="must be a comma-separated list of {Type:Id}"),
    Rule("USR-EMAIL", "W", on=On(kinds=("email",)), check="email",
         summary="email not a plausible address",
         message="does not look like an e-mail address"),
    Rule("USR-USERNAME-DUPLICATE", "W", check="unique_ignoring_case",
         on=On(columns=("username",), files=(USERS.name,)),
         summary="two users share a username (case ignored)",
         message="shared with another user (letter case ignored)"),
    Rule("USR-GRADE", "E", on=On(kinds=("grade",)), check="grades",
         summary="a grade code outside the CEDS list (after repair)",
         message="holds a code outside the CEDS list (IT PR PK TK KG 01-12 13 PS UG Other)"),
    Rule("USR-GRADE-MULTI", "W", by="oneroster.rules_users.class_year_findings",
         summary="a student has more than one grade; the highest is written (the package holds "
                 "one grade per student) and used for class year",
         message="names the grade written"),
    Rule("USR-CLASSYEAR", "E", by="oneroster.rules_users.class_year_findings",
         consequence_of=("USR-GRADE",),
         summary="an active student has no class year (no supplied year, and no numeric grade)",
         message="this active student has no class year: give a numeric grade (KG, 01-12) or the "
                 "supplied class-year column"),
    Rule("USR-CLASSYEAR-RANGE", "E", check="class_year_in_range",
         on=On(columns=(CLASS_YEAR_COLUMN,), files=(USERS.name,)),
         summary="a class year outside `E − 1` … `E + 13` (`E` the school year's end) or not four"
                 " digits",
         message="not a four-digit year from {low} to {high}"),
    Rule("USR-STAFF-TITLE", "E", by="oneroster.rules_users.title_findings",
         summary="staff are included but a teacher/administrator has no title",
         message="staff are included but this teacher/administrator has no title (or the source "
                 "has no title column)"),
    Rule("USR-NAME-CHARS", "W", check="no_name_punctuation",
         on=On(columns=("givenName", "familyName", "middleName"), files=(USERS.name,)),
         summary="a name holds quotes, commas, periods, parentheses or brackets (Naviance warns "
                 "these break National Student Clearinghouse transfers)",
         message="holds quotes, commas, periods, parentheses or brackets, which break National "
                 "Student Clearinghouse transfers"),
    Rule("USR-PASSWORD", "W", on=On(columns=("password",), files=(USERS.name,)), check="blank",
         summary="the source holds passwords; they are never written",
         message="must be blank: passwords are never sent"),
    # ---- Demographics
    Rule("DEM-MISSING", "W", by="oneroster.rules_demographics.missing_findings",
         summary="a student has no demographics row (or the file is absent/empty); a "
                 "sourcedId-only row is written",
         message="this student has no demographics row; a row holding only the sourcedId is "
                 "written"),
    Rule("DEM-USER-REF", "W", by="oneroster.rules_demographics.user_ref_findings",
         consequence_of=("USR-ROLE", "BULK-STATUS"),
         summary="a demographics row for a user who is not in the package; it is left out",
         message="no student with this sourcedId is in the package (or the user is staff); the "
                 "row is left out"),
    Rule("DEM-DUPLICATE", "E", check="unique",
         on=On(kinds=("id",), files=(DEMOGRAPHICS.name,), required=True),
         summary="two demographics rows for one user",
         message="more than one demographics row for this user; keep exactly one"),
    Rule("DEM-BIRTHDATE", "E", on=On(kinds=("date",)), check="real_date",
         summary="birthDate in `YYYY-MM-DD` form but not a real date (2010-02-30), or after the "
                 "as-of date",
         message="not a real calendar date, or after the as-of date {as_of}"),
    Rule("DEM-SEX", "E", on=On(columns=("sex",), files=(DEMOGRAPHICS.name,)), check="allowed",
         summary="sex not `male`/`female` (after repair of case)",
         message="must be male or female"),
    Rule("DEM-SEX-UNMAPPED", "W", by=_V12,
         summary="OneRoster 1.2: sex `other` or `unspecified`, which 1.1 does not have; written "
                 "blank",
         message="once per value: the value, the count and the first line; written blank, not "
                 "guessed"),
    Rule("DEM-FLAG", "E", on=On(kinds=("bool",), files=(DEMOGRAPHICS.name,)), check="boolean",
         summary="a race/ethnicity flag not `true`/`false`/blank (after repair)",
         message="must be true, false or blank"),
    Rule("DEM-RACE-CONSISTENCY", "W", check="races_agree",
         on=On(files=(DEMOGRAPHICS.name,), frame=TWO_OR_MORE),
         summary="two-or-more-races flag disagrees with the number of race flags set",
         message="disagrees with the number of race flags set to true"),
    # ---- Package
    Rule("PKG-SIZE", "E", by="oneroster.package",
         summary="the ZIP is over 1,000,000,000 bytes (a warning over 800,000,000)",
         message="names the size and the limit"),
    Rule("PKG-VERIFY", "E", by="oneroster.package",
         summary="re-reading the built ZIP does not give back the same four files, headers, row "
                 "counts and checksums",
         message="names what differs"),
    Rule("PKG-CONTRACT", "E", by="oneroster.contract.check_frame",
         summary="just before a file of the package is written, a value breaks the profile (a "
                 "control character, a blank required value, an unsorted or repeated sourcedId, a"
                 " code outside Naviance's, an impossible date); nothing is written",
         message="<file> column <column>: <n> row(s) <what is wrong>, which the package must "
                 "never hold"),
    # ---- Guards against mass change, compared with the last delivered package
    Rule("GRD-STUDENT-DROP", "E", by=_GUARDS,
         summary="active students fell by more than the configured share (default 10%)",
         message="names both counts"),
    Rule("GRD-SCHOOL-VANISHED", "E", by=_GUARDS,
         summary="a school that had active students has none now",
         message="names the school's sourcedId"),
    Rule("GRD-DISABLED-JUMP", "W", by=_GUARDS,
         summary="the share of `enabledUser=false` students rose by more than 5 points",
         message="names both shares"),
    Rule("GRD-EMPTY", "E", by=_GUARDS,
         summary="the package would hold no active students",
         message="no active student"),
    Rule("GRD-ID-CHURN", "E", by=_GUARDS,
         summary="more than the configured share (default 10%) of the last delivery's active "
                 "students are absent by sourcedId, whatever the count (a re-keyed export or SIS "
                 "migration would deactivate and re-create them)",
         message="names the share absent"),
    Rule("GRD-STALE-PARTITION", "E", by="delivery.service",
         summary="the partition is older than the newest one already delivered to the same target"
                 " (re-delivering it would replace newer data)",
         message="names both dates"),
)
# fmt: on

BY_CODE: dict[str, Rule] = {r.code: r for r in REGISTRY}
# code -> severity letter (E error, W warning, R repair reported as a warning)
RULES: dict[str, str] = {r.code: r.severity for r in REGISTRY}
# consequence code -> cause codes: a finding of the first on a row (a user) that has one of the
# others is counted under it instead of reported (a user left out for its role or deleted, its
# demographics row then unmatched; a grade outside CEDS, the class year then underivable).
CAUSES: dict[str, tuple[str, ...]] = {
    r.code: r.consequence_of for r in REGISTRY if r.consequence_of
}


def column_rules(file: str, column: Column) -> list[Rule]:
    """The single-file rules checking ``column`` of ``file``, in registry order."""
    return [r for r in REGISTRY if r.on is not None and r.on.selects(file, column)]


def frame_rules(file: str) -> list[Rule]:
    """The single-file rules checking whole rows of ``file``."""
    return [
        r
        for r in REGISTRY
        if r.on is not None and r.on.frame and (not r.on.files or file in r.on.files)
    ]


# ---- the catalogue (docs/rules.md) -------------------------------------------------------------

CATALOGUE_INTRO = """\
# Validation rules

<!-- Generated from naviance_pipeline/oneroster/rules.py; do not edit by hand. Regenerate with
     python -m naviance_pipeline.oneroster.rules --markdown > docs/rules.md -->

Every finding the pipeline reports carries one of these codes. Severity **E** (error) blocks
delivery; **W** (warning) is reported and delivery goes on; **R** (repair) means the value was
repaired, reported as a warning that says what was changed. Codes are stable: reports, alert
rules and tests depend on them.

A finding names the file, the line (the physical record in the source file, header = 1; blank
for a finding about a whole file), the column and the row's sourcedId, with a message that says
what to fix. The value is shown only for columns that are not personal data, and only when it
has the shape of a code; a finding about a row the package leaves out anyway is a warning at
most. Each family of rules reports under one Dagster asset check (named under its heading).
A finding caused by another on the same row (user) is reported once, under its cause (see
"a consequence of" below): the cause's message ends "(and 1 consequence: DEM-USER-REF in
demographics.csv)" and its JSON carries `"consequences": {"DEM-USER-REF": 1}`; it blocks
exactly as before.

Rules checked on the values of one file alone are checks of that file's Pandera model
(`naviance-pipeline schema users|orgs|demographics` prints them); their finding says
"`<column>`: " and the text under "The finding says" (`{low}` and `{high}` stand for the
school year's end − 1 and + 13, `{as_of}` for the as-of date of the run). The other rules are
reported by the function (or module) named under "Where", and their findings say what is
described there.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _counted_under(rule: Rule) -> str:
    if not rule.consequence_of:
        return ""
    causes = " or ".join(rule.consequence_of)
    return (
        f"; a consequence of {causes} on the same row (user): then counted under that finding, "
        "not reported itself"
    )


def markdown() -> str:
    """The rule catalogue, ``docs/rules.md``, generated from ``REGISTRY``."""
    out = [CATALOGUE_INTRO.rstrip("\n")]
    for prefix, fam in FAMILIES.items():
        out += [
            f"\n## {fam.title[0].upper()}{fam.title[1:]} ({prefix}) — check `{fam.check}`\n",
            "| Code | Sev | Rule | Where | The finding says |",
            "|---|---|---|---|---|",
        ]
        out += [
            f"| {r.code} | {r.severity} | {_cell(r.summary + _counted_under(r))} | "
            f"{_cell(r.where())} | {_cell(r.message)} |"
            for r in REGISTRY
            if family(r.code) == prefix
        ]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The rule registry.")
    parser.add_argument("--markdown", action="store_true", help="print docs/rules.md")
    args = parser.parse_args(argv)
    if args.markdown:
        sys.stdout.write(markdown())
    else:
        for r in REGISTRY:
            print(f"{r.code:24} {r.severity}  {r.family.check:20} {r.summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
