"""The Naviance OneRoster v1.1 profile as data: the one table that drives everything.

Headers, Pandera schemas, the lenient reader and the strict writer all read the column tables
below; nothing else in the code spells a column list. Section numbers refer to the package
contract, docs/contract.md, whose column tables are generated from this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

ZIP_NAME = "NavianceOneRoster.zip"
MAX_PACKAGE_BYTES = 1_000_000_000  # PKG-SIZE error threshold (section 2)
WARN_PACKAGE_BYTES = 800_000_000  # PKG-SIZE warning threshold
MAX_VALUE_LENGTH = 255  # CSV-TOO-LONG
# Every value is text (section 3): frames hold Arrow-backed strings, never numbers or dates.
STRING = pd.StringDtype("pyarrow")

ORG_TYPES_V11 = ("school", "district", "department", "local", "state", "national")
ORG_TYPES_NAVIANCE = ("school", "district")
ROLES_V11 = (
    "administrator",
    "aide",
    "guardian",
    "parent",
    "proctor",
    "relative",
    "student",
    "teacher",
)
ROLES_STAFF = ("teacher", "administrator")
ROLES_NOT_TAKEN = ("aide", "guardian", "parent", "proctor", "relative")
CEDS_GRADES = (
    "IT", "PR", "PK", "TK", "KG",
    "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12",
    "13", "PS", "UG", "Other",
)  # fmt: skip
NUMERIC_GRADES = {"KG": 0, **{f"{g:02d}": g for g in range(1, 13)}}
SEXES = ("male", "female")
BOOLEANS = ("true", "false")
DROPPED_STATUSES = ("tobedeleted", "inactive")

# Section 8: where a supplied graduation year is read from, first present wins.
CLASS_YEAR_SOURCES = ("metadata.classYear", "metadata.yearOfGraduation", "metadata.graduationYear")
CLASS_YEAR_COLUMN = "metadata.classYear"
TITLE_COLUMN = "metadata.title"
DEFAULT_ROLLOVER = (7, 15)  # month, day: 15 July

# The OneRoster v1.1 CSV file set (section 10): others are SRC-EXTRA-FILE.
ONEROSTER_V11_FILES = (
    "manifest.csv",
    "academicSessions.csv",
    "categories.csv",
    "classes.csv",
    "classResources.csv",
    "courses.csv",
    "courseResources.csv",
    "demographics.csv",
    "enrollments.csv",
    "lineItems.csv",
    "orgs.csv",
    "resources.csv",
    "results.csv",
    "users.csv",
)


@dataclass(frozen=True)
class Column:
    """One spec column.

    ``kind`` names the value family the rules apply: ``id`` (a sourcedId), ``ids`` (a list of
    sourcedIds), ``text``, ``enum`` (exact tokens in ``allowed``), ``bool``, ``date``,
    ``grade``, ``userids``, ``email``, ``blank`` (a column that must be blank). ``output``
    says what the package holds: the value (``"value"``), or ``"blank"``: always written
    blank whatever the source holds (a column of kind ``blank`` always is).
    """

    name: str
    required: bool = False
    pii: bool = False
    kind: str = "text"
    allowed: tuple[str, ...] = ()
    output: str = "value"

    @property
    def written_blank(self) -> bool:
        return self.kind == "blank" or self.output == "blank"


@dataclass(frozen=True)
class FileSpec:
    """One output CSV file: its name and its columns in spec order."""

    name: str
    columns: tuple[Column, ...]
    aliases: dict[str, str] = field(default_factory=dict)  # Naviance misspelling -> spec name

    @property
    def header(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def pii(self) -> frozenset[str]:
        return frozenset(c.name for c in self.columns if c.pii)

    @property
    def written_blank(self) -> tuple[str, ...]:
        """Columns written blank whatever the source holds (bulk status and dates; passwords
        and guardians are never sent)."""
        return tuple(c.name for c in self.columns if c.written_blank)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


_BULK = (Column("status", kind="blank"), Column("dateLastModified", kind="blank"))
_SOURCED_ID = Column("sourcedId", required=True, kind="id")

ORGS = FileSpec(
    "orgs.csv",
    (
        _SOURCED_ID,
        *_BULK,
        Column("name", required=True),
        Column("type", required=True, kind="enum", allowed=ORG_TYPES_V11),
        Column("identifier"),
        Column("parentSourcedId", kind="id"),
    ),
    aliases={"sourceID": "sourcedId", "parentSourceId": "parentSourcedId"},
)

USERS = FileSpec(
    "users.csv",
    (
        _SOURCED_ID,
        *_BULK,
        Column("enabledUser", required=True, kind="bool"),
        Column("orgSourcedIds", required=True, kind="ids"),
        Column("role", required=True, kind="enum", allowed=ROLES_V11),
        Column("username", required=True, pii=True),
        Column("userIds", pii=True, kind="userids"),
        Column("givenName", required=True, pii=True),
        Column("familyName", required=True, pii=True),
        Column("middleName", pii=True),
        Column("identifier", pii=True),
        Column("email", pii=True, kind="email"),
        Column("sms", pii=True),
        Column("phone", pii=True),
        Column("agentSourcedIds", kind="ids", output="blank"),
        Column("grades", kind="grade"),
        Column("password", pii=True, kind="blank"),
    ),
    aliases={"sourceID": "sourcedId", "agentSourceIds": "agentSourcedIds"},
)

RACE_FLAGS = (
    "americanIndianOrAlaskaNative",
    "asian",
    "blackOrAfricanAmerican",
    "nativeHawaiianOrOtherPacificIslander",
    "white",
)
TWO_OR_MORE = "demographicRaceTwoOrMoreRaces"
ETHNICITY = "hispanicOrLatinoEthnicity"

DEMOGRAPHICS = FileSpec(
    "demographics.csv",
    (
        _SOURCED_ID,
        *_BULK,
        Column("birthDate", pii=True, kind="date"),
        Column("sex", kind="enum", allowed=SEXES),
        *(Column(name, kind="bool") for name in (*RACE_FLAGS, TWO_OR_MORE, ETHNICITY)),
        Column("countryOfBirthCode"),
        Column("stateOfBirthAbbreviation"),
        Column("cityOfBirth", pii=True),
        Column("publicSchoolResidenceStatus"),
    ),
    aliases={"sourceID": "sourcedId", "demogrphicRaceTwoOrMoreRaces": TWO_OR_MORE},
)

FILES: dict[str, FileSpec] = {s.name: s for s in (ORGS, USERS, DEMOGRAPHICS)}

# Output extension columns (section 6), appended after the spec columns of users.csv.
USER_EXTENSIONS = (CLASS_YEAR_COLUMN,)
USER_EXTENSIONS_WITH_STAFF = (CLASS_YEAR_COLUMN, TITLE_COLUMN)

# Section 4: the manifest rows, in order. None means "filled from configuration".
MANIFEST_HEADER = ("propertyName", "value")
MANIFEST_ROWS: tuple[tuple[str, str | None], ...] = (
    ("manifest.version", "1.0"),
    ("oneroster.version", "1.1"),
    ("file.academicSessions", "absent"),
    ("file.categories", "absent"),
    ("file.classes", "absent"),
    ("file.classResources", "absent"),
    ("file.courses", "absent"),
    ("file.courseResources", "absent"),
    ("file.demographics", "bulk"),
    ("file.enrollments", "absent"),
    ("file.lineItems", "absent"),
    ("file.orgs", "bulk"),
    ("file.resources", "absent"),
    ("file.results", "absent"),
    ("file.users", "bulk"),
    ("source.systemName", None),
    ("source.systemCode", None),
)
PACKAGE_ENTRIES = ("manifest.csv", "orgs.csv", "users.csv", "demographics.csv")

# Columns whose values are never printed in a finding, across all files.
PII_COLUMNS = frozenset().union(*(s.pii for s in FILES.values()))


def user_output_header(include_staff: bool) -> list[str]:
    """users.csv header: spec columns, then the configured extension columns."""
    ext = USER_EXTENSIONS_WITH_STAFF if include_staff else USER_EXTENSIONS
    return [*USERS.header, *ext]


def output_header(spec: FileSpec, include_staff: bool = False) -> list[str]:
    return user_output_header(include_staff) if spec is USERS else spec.header
