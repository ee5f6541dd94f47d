"""OneRoster 1.2 bulk exports read as the OneRoster 1.1 files the package is made from.

A 1.2 export differs from 1.1, for the files the package needs, in three ways:

- ``users.csv`` has no ``role`` and no ``orgSourcedIds``: ``roles.csv`` holds one row per role
  a user has in an org (``roleType`` ``primary`` or ``secondary``). A user's 1.1 role is the
  role of their primary row; their orgSourcedIds are every org they hold a role in, the
  primary one first, then in roles.csv order, each once. 1.2's administrator roles
  (``districtAdministrator``, ``siteAdministrator``, ``systemAdministrator``, ``principal``)
  are 1.1's ``administrator``; a primary role 1.1 has no equivalent for (``counselor``, an
  ``ext:`` role) is not guessed: the user is left out (USR-ROLE-UNMAPPED). A user with no primary
  role, or more than one, is USR-ROLE-PRIMARY.
- ``users.csv``'s new columns (``userMasterIdentifier``, ``resourceSourcedIds``,
  ``preferred*`` names, ``primaryOrgSourcedId``, ``pronouns``) are read (their header is
  checked) but never sent: 1.1 has no place for them.
- ``demographics.csv``'s ``sex`` may be ``other`` or ``unspecified``, which 1.1 lacks: such a
  value is DEM-SEX-UNMAPPED and written blank, never guessed.

Everything else (orgs.csv, ``metadata.*`` columns, every other rule) is read as in 1.1. The
translated users frame keeps users.csv's line numbers; a finding about the role or the orgs of
a user is moved (:meth:`Relocation.apply`) to the roles.csv line and column it came from.
Nothing here loops over rows in Python but the few rows a finding names.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from naviance_pipeline.oneroster.csvread import Table, read_table
from naviance_pipeline.oneroster.findings import Finding, finding, shown, shown_id
from naviance_pipeline.oneroster.kernels.arrays import arrow, strings
from naviance_pipeline.oneroster.kernels.lists import join_list
from naviance_pipeline.oneroster.rules_common import SOURCED_ID, many_findings, summary_finding
from naviance_pipeline.oneroster.spec import (
    DEMOGRAPHICS,
    DROPPED_STATUSES,
    ONEROSTER_V11_FILES,
    USERS,
    Column,
    FileSpec,
)

V11 = "1.1"
V12 = "1.2"
ROLES_FILE = "roles.csv"

# The OneRoster 1.2 CSV file set: others are SRC-EXTRA-FILE.
ONEROSTER_V12_FILES = (
    *ONEROSTER_V11_FILES,
    "lineItemLearningObjectiveIds.csv",
    "lineItemScoreScales.csv",
    "resultLearningObjectiveIds.csv",
    "resultScoreScales.csv",
    ROLES_FILE,
    "scoreScales.csv",
    "userProfiles.csv",
    "userResources.csv",
)

# users.csv of 1.2: 1.1's columns but role and orgSourcedIds, then 1.2's own (never sent).
NOT_SENT = (
    Column("userMasterIdentifier", pii=True),
    Column("resourceSourcedIds", kind="ids"),
    Column("preferredGivenName", pii=True),
    Column("preferredMiddleName", pii=True),
    Column("preferredFamilyName", pii=True),
    Column("primaryOrgSourcedId", kind="id"),
    Column("pronouns", pii=True),
)
FROM_ROLES = ("orgSourcedIds", "role")
USERS_V12 = FileSpec(
    USERS.name,
    (*(c for c in USERS.columns if c.name not in FROM_ROLES), *NOT_SENT),
    aliases=dict(USERS.aliases),
)
_ID_ALIASES = {"sourceID": "sourcedId", "userSourceId": "userSourcedId"}
ROLES = FileSpec(
    ROLES_FILE,
    (
        Column("sourcedId", required=True, kind="id"),
        Column("status"),
        Column("dateLastModified"),
        Column("userSourcedId", required=True, kind="id"),
        Column("roleType", required=True),
        Column("role", required=True),
        Column("beginDate"),
        Column("endDate"),
        Column("orgSourcedId", required=True, kind="id"),
        Column("userProfileSourcedId", kind="id"),
    ),
    aliases={**_ID_ALIASES, "orgSourceId": "orgSourcedId"},
)

# 1.2's administrator roles are 1.1's administrator (lower case: matched ignoring case).
ADMINISTRATOR_ROLES = (
    "districtadministrator",
    "siteadministrator",
    "systemadministrator",
    "principal",
)
NO_V11_ROLE = ("counselor",)  # and every ext: role
SEXES_V12_ONLY = ("other", "unspecified")
PRIMARY = "primary"
_NEEDED_ROLE_COLUMNS = frozenset({"userSourcedId", "roleType", "role"})


def read_v12(
    files: dict | object, spec: FileSpec, *, only: list[str] | None = None
) -> tuple[Table, Relocation | None]:
    """The 1.2 source file of ``spec`` (USERS, DEMOGRAPHICS or ORGS) read as its 1.1 table,
    and, for users, where the findings about a user's role and orgs belong in roles.csv."""
    if spec is USERS:
        users = read_table(files.get(USERS.name), USERS_V12, only=only)
        roles = read_table(files.get(ROLES_FILE), ROLES) if only is None else None
        return translate_users(users, roles)
    table = read_table(files.get(spec.name), spec, only=only)
    if spec is DEMOGRAPHICS and only is None:
        table.findings.extend(blank_v12_sexes(table.frame))
    return table, None


# -- users ------------------------------------------------------------------------------------


@dataclass
class Relocation:
    """Where each users row's roles are in roles.csv: rows ``starts[k]:starts[k + 1]`` of the
    sorted roles (``lines``, ``ids``, ``orgs``) are those of the user at users position
    ``k``, primary first; ``key[r]`` is that position for users row ``r`` (a repeated
    sourcedId shares its first occurrence's roles); ``no_primary``: users rows already
    reported as having no primary role."""

    user_lines: np.ndarray
    key: np.ndarray
    starts: np.ndarray
    lines: np.ndarray
    ids: pa.Array
    orgs: pa.Array
    no_primary: np.ndarray

    def apply(self, findings: list[Finding]) -> list[Finding]:
        """Findings about users.csv's translated ``role``/``orgSourcedIds`` moved to the
        roles.csv line and column they came from; those about a user USR-ROLE-PRIMARY already
        names (no primary role: nothing to point at) left out."""
        out = []
        for f in findings:
            if f.file != USERS.name or f.column not in FROM_ROLES or f.line is None:
                out.append(f)
                continue
            row = int(np.searchsorted(self.user_lines, f.line))
            if row >= len(self.user_lines) or self.user_lines[row] != f.line:
                out.append(f)
                continue
            if self.no_primary[row]:
                continue
            k = self.key[row]
            lo, hi = int(self.starts[k]), int(self.starts[k + 1])
            at = lo
            if f.column == "orgSourcedIds" and f.value:  # an unknown org: its own row
                orgs = self.orgs.slice(lo, hi - lo).to_pylist()
                first = f.value.split(",")[0]
                at = lo + orgs.index(first) if first in orgs else lo
            column = "role" if f.column == "role" else "orgSourcedId"
            line = int(self.lines[at])
            message = f.message.replace(f"line {f.line})", f"{USERS.name} line {f.line})")
            out.append(
                replace(
                    f,
                    file=ROLES_FILE,
                    line=line,
                    column=column,
                    sourcedId=shown_id(self.ids[at].as_py()),
                    message=message,
                )
            )
        return out


def translate_users(users: Table, roles: Table | None) -> tuple[Table, Relocation | None]:
    """users.csv of 1.2 with role and orgSourcedIds from roles.csv, as the 1.1 users table."""
    frame = users.frame
    findings = list(users.findings)
    n = len(frame)
    if roles is None:  # only some columns asked for: none comes from roles.csv
        out = _as_v11(frame, pd.Series("", index=frame.index, dtype=frame[SOURCED_ID].dtype))
        return _table(users, out, findings), None
    findings.extend(roles.findings)
    sids = arrow(frame[SOURCED_ID])
    if n < 2 or pc.all(pc.greater(sids[1:], sids[:-1])).as_py():
        key = np.arange(n)  # sorted, no id twice (the usual export): each row is its own
    else:
        key = _first_positions(sids, sids)
    r = roles.frame
    status = pc.utf8_lower(arrow(r["status"]))
    live = ~pc.is_in(status, value_set=pa.array(DROPPED_STATUSES, status.type)).to_numpy(
        zero_copy_only=False
    )
    owner = _first_positions(arrow(r["userSourcedId"]), sids)
    take = np.flatnonzero(live & (owner >= 0))
    owner = owner[take]
    primary = pc.equal(pc.utf8_lower(arrow(r["roleType"]).take(take)), PRIMARY).to_numpy(
        zero_copy_only=False
    )
    order = np.lexsort((take, ~primary, owner))  # by user, primary first, then line
    rows, owner, primary = take[order], owner[order], primary[order]
    lines = r.index.to_numpy()[rows]
    orgs = arrow(r["orgSourcedId"]).take(pa.array(rows))
    role_ids = arrow(r[SOURCED_ID]).take(pa.array(rows))
    starts = np.searchsorted(owner, np.arange(n + 1))
    first = starts[:-1][starts[:-1] < starts[1:]]  # each user's first (primary) role row
    has_primary = np.zeros(n, dtype=bool)
    has_primary[owner[first]] = primary[first]
    role = np.full(n, -1)
    role[owner[first]] = rows[first]
    role_text = pa.nulls(n, pa.large_string()).fill_null("")
    if has_primary.any():
        picked = _v11_roles(arrow(r["role"]).take(pa.array(np.maximum(role, 0))))
        role_text = pc.if_else(pa.array(has_primary), picked, role_text)
    # Each org once per user (its first row: the primary one, else the earliest).
    encoded = pc.dictionary_encode(orgs)
    pair = owner * len(encoded.dictionary) + encoded.indices.to_numpy(zero_copy_only=False)
    once = np.zeros(len(pair), dtype=bool)
    once[np.unique(pair, return_index=True)[1]] = True  # the first of each (user, org)
    once &= pc.not_equal(orgs, "").to_numpy(zero_copy_only=False)
    org_text = join_list(n, orgs.filter(pa.array(once)), owner[once])

    per_row = pa.array(key)
    role_col = strings(role_text.take(per_row), frame.index)
    out = _as_v11(frame, role_col, strings(org_text.take(per_row), frame.index))
    no_primary = ~has_primary[key]
    findings += _primary_findings(frame, no_primary, owner, primary, lines, role_ids, roles)
    unmatched = _no_v11_role(role_col)
    for name in sorted(set(role_col[unmatched].tolist())):
        where = pa.array(np.flatnonzero((role_col == name).to_numpy(bool) & unmatched))
        first_row = int(key[where[0].as_py()])
        at = int(starts[first_row])
        findings.append(_left_out(name, len(where), int(lines[at]), role_ids[at].as_py(), "role"))
    relocation = Relocation(frame.index.to_numpy(), key, starts, lines, role_ids, orgs, no_primary)
    if unmatched.any():
        out = out[~unmatched]
        relocation.user_lines = relocation.user_lines[~unmatched]
        relocation.key = relocation.key[~unmatched]
        relocation.no_primary = relocation.no_primary[~unmatched]
    return _table(users, out, findings), relocation


def _first_positions(values: pa.Array, pool: pa.Array) -> np.ndarray:
    """For each value, the position of its first occurrence in ``pool`` (-1: not there)."""
    found = pc.index_in(values, value_set=pool)
    return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _v11_roles(role: pa.Array) -> pa.Array:
    """1.2's administrator roles as ``administrator``; every other role as it is."""
    admin = pc.is_in(pc.utf8_lower(role), value_set=pa.array(ADMINISTRATOR_ROLES, role.type))
    return pc.if_else(admin, "administrator", role)


def _no_v11_role(role: pd.Series) -> np.ndarray:
    values = pc.utf8_lower(arrow(role))
    unmatched = pc.or_(
        pc.is_in(values, value_set=pa.array(NO_V11_ROLE, values.type)),
        pc.starts_with(values, "ext:"),
    )
    return unmatched.to_numpy(zero_copy_only=False)


def _primary_findings(
    frame: pd.DataFrame,
    no_primary: np.ndarray,
    owner: np.ndarray,
    primary: np.ndarray,
    lines: np.ndarray,
    role_ids: pa.Array,
    roles: Table,
) -> list[Finding]:
    """USR-ROLE-PRIMARY: users with no primary role (on users.csv), and every primary role
    row of a user after their first (on roles.csv)."""
    out: list[Finding] = []
    # Not when roles.csv is absent, empty or lacks the columns (SRC-MISSING-FILE, CSV-EMPTY,
    # CSV-HEADER-MISSING say so once): one finding a user would bury them.
    if roles.present and len(roles.frame) and not roles.absent & _NEEDED_ROLE_COLUMNS:
        rows = np.flatnonzero(no_primary)
        out += many_findings(
            "USR-ROLE-PRIMARY",
            f"no row of {ROLES_FILE} gives this user a primary role (roleType primary), so "
            "their role and school are not known",
            file=USERS.name,
            column=SOURCED_ID,
            lines=frame.index[rows].tolist(),
            ids=arrow(frame[SOURCED_ID]).take(pa.array(rows)),
            values=[None] * len(rows),
        )
    again = primary & np.concatenate(([False], (owner[1:] == owner[:-1]) & primary[:-1]))
    at = np.flatnonzero(again)
    out += many_findings(
        "USR-ROLE-PRIMARY",
        "this user already has a primary role on an earlier line; a user has exactly one",
        file=ROLES_FILE,
        column="roleType",
        lines=lines[at].tolist(),
        ids=role_ids.take(pa.array(at)),
        values=[PRIMARY] * len(at),
    )
    return out


def _left_out(role: str, count: int, line: int, sid: str | None, column: str) -> Finding:
    rows = "1 user" if count == 1 else f"{count} users"
    return finding(
        "USR-ROLE-UNMAPPED",
        # `ext:` roles are free text: the message shows the role as a finding's value is shown.
        f"users whose primary role is {shown(role, column)} left out: OneRoster 1.1 has no "
        "such role "
        f"({rows}, the first on line {line})",
        file=ROLES_FILE,
        line=line,
        column=column,
        sourced_id=sid,
        value=role,
    )


def _as_v11(frame: pd.DataFrame, role: pd.Series, orgs: pd.Series | None = None) -> pd.DataFrame:
    """The 1.2 users frame as 1.1's: its columns in 1.1 order, the roles' two added, 1.2's
    own dropped, then the ``metadata.*`` columns."""
    added = {"role": role, "orgSourcedIds": role if orgs is None else orgs}
    not_sent = {c.name for c in NOT_SENT}
    columns = {c: added[c] if c in added else frame[c] for c in USERS.header}
    columns.update((c, frame[c]) for c in frame.columns if c not in columns and c not in not_sent)
    return pd.DataFrame(columns, index=frame.index)


def _table(users: Table, frame: pd.DataFrame, findings: list[Finding]) -> Table:
    not_sent = {c.name for c in NOT_SENT}
    return Table(USERS, frame, findings, frozenset(users.absent - not_sent), users.present)


# -- demographics -----------------------------------------------------------------------------


def blank_v12_sexes(frame: pd.DataFrame) -> list[Finding]:
    """DEM-SEX-UNMAPPED once per 1.2-only sex value (count and first line); the values are blanked
    in ``frame`` (1.1 has no value for them, and none is guessed)."""
    sex = arrow(frame["sex"])
    lower = pc.utf8_lower(sex)
    only_v12 = pc.is_in(lower, value_set=pa.array(SEXES_V12_ONLY, lower.type))
    if not pc.any(only_v12).as_py():
        return []
    findings = []
    for value in SEXES_V12_ONLY:
        mask = pc.equal(lower, value).to_numpy(zero_copy_only=False)
        findings += summary_finding(
            frame,
            mask,
            "DEM-SEX-UNMAPPED",
            DEMOGRAPHICS,
            "sex",
            f"sex '{value}' is a OneRoster 1.2 value that 1.1 does not have: written blank, "
            "not guessed",
        )
    frame["sex"] = strings(pc.if_else(only_v12, "", sex), frame.index)
    return findings
