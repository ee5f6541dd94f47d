"""The three stages that turn a source into output frames: orgs, users, demographics.

Each stage reads its source file leniently (``csvread``), repairs what is certain
(``repair``), drops deleted rows (BULK-STATUS), selects the rows the package needs, validates
every row with the file's Pandera model (``schemas``) plus the cross-file rules (``rules_*``),
lowers findings about rows left out to warnings, and returns the output frame: exactly the
output header, sorted by sourcedId, RangeIndex, pyarrow-backed strings, blank = "".

Rows with an error are still written when they can be (errors block delivery anyway), so the
frames keep their shape; rows that cannot be written at all (role outside v1.1, blank sourcedId,
a repeated sourcedId after its first occurrence) are left out.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import pandas as pd

from naviance_pipeline.oneroster import rules_demographics as rd
from naviance_pipeline.oneroster import rules_orgs as ro
from naviance_pipeline.oneroster import rules_users as ru
from naviance_pipeline.oneroster import schemas
from naviance_pipeline.oneroster.classyear import class_years
from naviance_pipeline.oneroster.csvread import read_table
from naviance_pipeline.oneroster.findings import (
    Finding,
    fold_same_row,
    sort_findings,
    with_consequences,
)
from naviance_pipeline.oneroster.kernels.arrays import blank, choose, is_in
from naviance_pipeline.oneroster.kernels.columns import detach_accessors, output_frame
from naviance_pipeline.oneroster.kernels.parallel import PARALLEL_ROWS
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.repair import repair
from naviance_pipeline.oneroster.rules import CAUSES
from naviance_pipeline.oneroster.rules_common import SOURCED_ID, at_most_warnings, bulk_status
from naviance_pipeline.oneroster.source import Source
from naviance_pipeline.oneroster.spec import (
    CLASS_YEAR_COLUMN,
    DEMOGRAPHICS,
    ORGS,
    ROLES_STAFF,
    STRING,
    TITLE_COLUMN,
    USERS,
    FileSpec,
    user_output_header,
)
from naviance_pipeline.oneroster.v12 import V12, Relocation, read_v12

T = TypeVar("T")


@dataclass
class StageResult:
    """One stage's output frame, its findings (severities adjusted) and row counts."""

    frame: pd.DataFrame
    findings: list[Finding]
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class _Read:
    """A source file read and repaired, with its deleted rows marked. Only the repaired frame
    is kept (not the table read), so a column the repair replaced is freed at once."""

    frame: pd.DataFrame
    dropped: np.ndarray
    findings: list[Finding]
    absent: frozenset[str]  # spec columns not in the source header
    present: bool  # False when the file is not in the source
    relocation: Relocation | None = None  # a 1.2 export's users: role findings to roles.csv


def _read(source: Source, spec: FileSpec, columns: list[str] | None = None) -> _Read:
    """Read, repair and mark deleted rows of one source file. With ``columns``, only those are
    read, without the cell checks: another stage's file, whose findings that stage reports."""
    relocation = None
    if source.version == V12:
        table, relocation = read_v12(source.files, spec, only=columns)
    else:
        table = read_table(source.files.get(spec.name), spec, only=columns)
    frame, repairs = repair(table.frame, spec)
    dropped, bulk = bulk_status(frame, spec)
    findings = [*table.findings, *repairs, *bulk]
    return _Read(frame, dropped.to_numpy(bool), findings, table.absent, table.present, relocation)


def _validated_beside(
    read: _Read,
    candidates: pd.DataFrame,
    spec: FileSpec,
    options: Options,
    beside: Callable[[], T],
) -> tuple[list[Finding], T]:
    """The read's findings and the validation's of ``candidates``, and what ``beside`` returns.

    For a large file both are computed at once: ``beside`` (rules that only read) on this
    thread while the validation runs on another (its checks are mostly Arrow kernels, which
    release the GIL); users stage about 0.05 s less at 1 M users."""
    if len(candidates) < PARALLEL_ROWS:
        validated = schemas.validate(candidates, spec, options, skip_columns=read.absent)
        return [*read.findings, *validated], beside()
    with ThreadPoolExecutor(1) as side:
        validating = side.submit(
            schemas.validate, candidates, spec, options, skip_columns=read.absent
        )
        other = beside()
        return [*read.findings, *validating.result()], other


def _candidates(frame: pd.DataFrame, header: list[str], spec: FileSpec) -> pd.DataFrame:
    """Every source row shaped as output (header columns, blanks applied), index = line."""
    empty = blank(frame.index)  # one column object shared by every blank column
    always_blank = spec.written_blank
    return pd.DataFrame(
        {c: empty if c in always_blank or c not in frame.columns else frame[c] for c in header},
        index=frame.index,
    )


def _finish(
    read: _Read,
    candidates: pd.DataFrame,
    keep: np.ndarray,
    left_out: np.ndarray,
    findings: list[Finding],
    counts: dict[str, int],
) -> StageResult:
    findings = at_most_warnings(findings, read.frame.index[left_out])
    rows_read = len(read.frame)
    # Every rule has run: drop the source columns (in place, so no reference keeps them) and
    # let the output take the candidates' columns one by one, so that each source column is
    # freed as its output copy is made rather than all at the end.
    detach_accessors(read.frame)
    read.frame.drop(columns=list(read.frame.columns), inplace=True)
    frame = output_frame(candidates, keep, list(candidates.columns), consume=True)
    return StageResult(
        frame, sort_findings(findings), {"read": rows_read, **counts, "written": len(frame)}
    )


def writable_orgs(source: Source) -> pd.DataFrame:
    """The orgs a package can hold: the sourcedId and type of every org row of the source that
    is not deleted and has a sourcedId (its first occurrence), sorted by sourcedId.

    The users stage checks org references against these. The orgs stage writes every one of
    them that a written user references (plus ancestors), so a written user's org id is in the
    package's orgs.csv exactly when it is here. Read without cell checks: orgs.csv's findings
    are the orgs stage's to report."""
    read = _read(source, ORGS, [SOURCED_ID, "status", "type"])
    return output_frame(read.frame, ~read.dropped, [SOURCED_ID, "type"])


def build_orgs(source: Source, users: pd.DataFrame, options: Options) -> StageResult:
    """orgs.csv: the orgs that ``users`` (the users stage's frame: the users written; only its
    orgSourcedIds column is read) belong to, plus their ancestors."""
    read = _read(source, ORGS)
    frame = read.frame
    kept = ~read.dropped
    parent, dangling = ro.parent_positions(frame, kept)
    needed = kept & is_in(frame[SOURCED_ID], ro.referenced_org_ids(users))
    written = ro.with_ancestors(parent, needed)

    candidates = _candidates(frame, ORGS.header, ORGS)
    findings = read.findings + schemas.validate(candidates, ORGS, options, skip_columns=read.absent)
    rules = ro.org_findings(frame, parent, dangling, written)
    if not (read.present and USERS.name in source.files):  # SRC-MISSING-FILE says it already
        rules = [f for f in rules if f.rule != "ORG-NO-SCHOOL"]
    counts = {
        "dropped_status": int(read.dropped.sum()),
        "dropped_unneeded": int((kept & ~written).sum()),
    }
    return _finish(read, candidates, written, ~written, findings + rules, counts)


def build_users(source: Source, options: Options) -> StageResult:
    """users.csv: students (and staff when included), with class year and title; their org
    references checked against the source's writable orgs (``writable_orgs``)."""
    read = _read(source, USERS)
    frame = read.frame
    selection = ru.select_users(frame, read.dropped, options)
    years = class_years(frame, selection.students, options)

    header = user_output_header(options.include_staff)
    candidates = _candidates(frame, header, USERS)
    candidates[CLASS_YEAR_COLUMN] = years.values
    if options.include_staff:
        # Staff titles come from the configured source column; students get none.
        if options.title_column in frame.columns:
            title = choose(selection.staff, frame[options.title_column], "")
        else:
            title = blank(frame.index)
        candidates[TITLE_COLUMN] = title

    written = selection.written
    validated, rules = _validated_beside(
        read,
        candidates,
        USERS,
        options,
        lambda: [
            *ru.role_findings(frame, selection),
            *ru.org_reference_findings(frame, written, writable_orgs(source)),
            *ru.agent_findings(frame, written),
            *ru.password_findings(frame),
            *ru.title_findings(frame, selection, options),
        ],
    )
    findings = [*validated, *rules, *ru.class_year_findings(candidates, years)]
    candidates["grades"] = years.grades  # one grade per student (USR-GRADE-MULTI)
    # Before _finish frees the frame: who is left out with a finding saying why.
    left_out = ru.left_out_users(frame, read.dropped, selection.bad_role)
    result = _finish(
        read,
        candidates,
        written,
        selection.left_out,
        findings,
        {
            "dropped_status": int(selection.dropped_status.sum()),
            "dropped_role": int(selection.not_taken.sum()),
            "dropped_staff": int(selection.staff_excluded.sum()),
            "invalid_role": int(selection.bad_role.sum()),
        },
    )
    if read.relocation is not None:
        result.findings = sort_findings(read.relocation.apply(result.findings))
    out = result.frame
    result.counts.update(
        disabled=int((out["enabledUser"] == "false").sum()),
        students=int((out["role"] == "student").sum()),
        staff=int(out["role"].isin(ROLES_STAFF).sum()),
    )
    result.findings = _user_consequences(
        fold_same_row(result.findings, "USR-CLASSYEAR"), source, left_out, out
    )
    return result


def _declared(left_out: list[tuple[str, pd.Series]]) -> list[tuple[str, pd.Series]]:
    """The causes the registry declares for DEM-USER-REF, with their users' sourcedIds."""
    causes = CAUSES.get("DEM-USER-REF", ())
    return [(cause, ids[ids != ""]) for cause, ids in left_out if cause in causes]


def _left_out_users(source: Source) -> pd.Series:
    """The sourcedIds of the users.csv rows left out with a finding saying why (a role outside
    v1.1, deleted), read without cell checks (users.csv's findings are the users stage's)."""
    if not CAUSES.get("DEM-USER-REF"):  # reported on its own
        return pd.Series([], dtype=STRING)
    read = _read(source, USERS, [SOURCED_ID, "status", "role"])
    left_out = _declared(ru.left_out_users(read.frame, read.dropped))
    return pd.concat([ids for _, ids in left_out]) if left_out else pd.Series([], dtype=STRING)


def _user_consequences(
    findings: list[Finding],
    source: Source,
    left_out: list[tuple[str, pd.Series]],
    users: pd.DataFrame,
) -> list[Finding]:
    """``findings`` with the demographics rows the demographics stage leaves out, unreported,
    because their user was left out (``ru.left_out_users``), counted under the finding on
    that user's row (the first with its sourcedId) that says why. demographics.csv is read
    (two columns, no cell checks) only when some user was left out so."""
    left_out = _declared(left_out)
    if not any(len(ids) for _, ids in left_out):
        return findings
    read = _read(source, DEMOGRAPHICS, [SOURCED_ID, "status"])
    _, stray = rd.stray_rows(read.frame, ~read.dropped, rd.package_students(users))
    every = pd.concat([ids for _, ids in left_out])
    remaining = read.frame.loc[rd.caused_rows(read.frame, stray, every), SOURCED_ID]
    for cause, ids in left_out:  # a user left out for both: counted under the first cause
        hit = is_in(remaining, ids)
        counts = ru.first_lines(ids, remaining[hit])
        findings = with_consequences(
            findings, cause, "DEM-USER-REF", counts, cause_file=USERS.name, file=DEMOGRAPHICS.name
        )
        remaining = remaining[~hit]
    return findings


def build_demographics(source: Source, users: pd.DataFrame, options: Options) -> StageResult:
    """demographics.csv: exactly one row per student of ``users`` (the users stage's frame;
    only its sourcedId and role columns are read)."""
    read = _read(source, DEMOGRAPHICS)
    frame = read.frame
    candidates = _candidates(frame, DEMOGRAPHICS.header, DEMOGRAPHICS)

    def references() -> tuple[np.ndarray, pd.Series, list[Finding]]:
        students = rd.package_students(users)
        return students, *rd.user_ref_findings(
            frame, ~read.dropped, students, users, lambda: _left_out_users(source)
        )

    validated, (students, known, refs) = _validated_beside(
        read, candidates, DEMOGRAPHICS, options, references
    )
    kept = known & ~read.dropped
    findings = [*validated, *refs]
    result = _finish(
        read,
        candidates,
        kept,
        ~kept,
        findings,
        {
            "dropped_status": int(read.dropped.sum()),
            "dropped_user_ref": int((~known & ~read.dropped).sum()),
        },
    )
    missing, missing_findings = rd.missing_findings(
        students, result.frame[SOURCED_ID], file_has_rows=len(frame) > 0
    )
    if len(missing):
        filler = pd.DataFrame({c: "" for c in DEMOGRAPHICS.header}, index=range(len(missing)))
        filler[SOURCED_ID] = missing.to_numpy()
        both = pd.concat([result.frame, filler.astype(STRING)], ignore_index=True)
        result.frame = both.sort_values(SOURCED_ID, kind="stable").reset_index(drop=True)
    result.findings = sort_findings([*result.findings, *missing_findings])
    result.counts.update(missing=len(missing), written=len(result.frame))
    return result


def build_all(source: Source, options: Options) -> tuple[StageResult, StageResult, StageResult]:
    """All three stages: users first, then the orgs and demographics of the users written.
    Returned as (orgs, users, demographics), the package's order."""
    users = build_users(source, options)
    orgs = build_orgs(source, users.frame, options)
    return orgs, users, build_demographics(source, users.frame, options)
