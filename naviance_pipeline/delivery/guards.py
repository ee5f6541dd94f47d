"""Guards against mass change (rules GRD-*), compared with the last delivered package.

A student missing from tonight's file is deactivated in Naviance, so a package that would
deactivate many students, empty a school, or replace newer data is held back until a person
looks. An operator can override a named guard for one partition; the override is recorded in
the delivery receipt and the finding stays visible as a warning.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from naviance_pipeline.oneroster.findings import WARNING, Finding, as_warning, finding
from naviance_pipeline.oneroster.kernels.arrays import arrow
from naviance_pipeline.oneroster.kernels.lists import split_list

GUARD_RULES = (
    "GRD-STUDENT-DROP",
    "GRD-SCHOOL-VANISHED",
    "GRD-DISABLED-JUMP",
    "GRD-EMPTY",
    "GRD-ID-CHURN",
    "GRD-STALE-PARTITION",
)
# How many absent sourcedIds a GRD-ID-CHURN message lists (enough to look them up).
FIRST_IDS = 5


@dataclass(frozen=True)
class GuardLimits:
    student_drop: float = 0.10  # share of active students that may disappear
    disabled_jump_points: float = 5.0  # rise of the disabled share, in percentage points
    id_churn: float = 0.10  # share of the last delivery's active students absent by sourcedId


def summarize_package(orgs: pd.DataFrame, users: pd.DataFrame, partition: str) -> dict:
    """Counts the guards compare: active/disabled students, active students per school."""
    students = (users["role"] == "student").to_numpy(bool)
    active = students & (users["enabledUser"] == "true").to_numpy(bool)
    schools = orgs.loc[(orgs["type"] == "school").to_numpy(bool), "sourcedId"].astype(str)
    # Active students per distinct orgSourcedIds cell first (a few thousand cells for a million
    # students), then only those cells are split into org ids, each weighted by its count.
    cells = pc.value_counts(arrow(users["orgSourcedIds"]).filter(pa.array(active)))
    tokens, rows = split_list(pd.Series(pd.arrays.ArrowStringArray(cells.field("values"))))
    weights = cells.field("counts").to_numpy()[rows]
    school = pc.is_in(tokens, pa.array(schools, tokens.type)).to_numpy(zero_copy_only=False)
    counted = pa.table({"school": tokens.filter(school), "n": weights[school]})
    summed = counted.group_by("school").aggregate([("n", "sum")])
    per_school = dict(zip(summed["school"].to_pylist(), summed["n_sum"].to_pylist(), strict=True))
    n_students, n_active = int(students.sum()), int(active.sum())
    return {
        "partition": partition,
        "students": n_students,
        "active_students": n_active,
        "disabled_students": n_students - n_active,
        "schools": {school: int(per_school.get(school, 0)) for school in sorted(schools)},
    }


def _disabled_share(summary: dict) -> float:
    total = summary["students"]
    return 100.0 * summary["disabled_students"] / total if total else 0.0


def evaluate_guards(
    current: dict,
    last: dict | None,
    *,
    newest_delivered: str | None,
    limits: GuardLimits = GuardLimits(),
    overrides: Iterable[str] = (),
    students: pa.Table | None = None,
    last_students: pa.Table | None = None,
    identity: list[Finding] | None = None,
) -> list[Finding]:
    """GRD findings for ``current`` against the ``last`` delivered summary (None: first delivery).

    ``newest_delivered`` is the newest partition already delivered to the same target.
    ``students``/``last_students`` (facts.student_table of each package) feed the identity
    guard; without both it is not evaluated. ``identity``: its findings computed earlier
    against the same ``last`` (identity_findings), instead. An overridden guard's finding is
    kept but lowered to a warning that says it was overridden.
    """
    found: list[Finding] = []
    if current["active_students"] == 0:
        found.append(finding("GRD-EMPTY", "the package holds no active students"))
    if newest_delivered and current["partition"] < newest_delivered:
        found.append(
            finding(
                "GRD-STALE-PARTITION",
                f"partition {current['partition']} is older than {newest_delivered}, already "
                "delivered to this target; delivering it would replace newer data",
                value=current["partition"],
            )
        )
    if last:
        found.extend(_compare(current, last, limits))
        if identity is not None:
            found.extend(identity)
        elif students is not None and last_students is not None:
            found.extend(identity_findings(students, last_students, last["partition"], limits))
    overridden = set(overrides)
    return [_overridden(f) if f.rule in overridden and f.severity != WARNING else f for f in found]


def _compare(current: dict, last: dict, limits: GuardLimits) -> list[Finding]:
    found = []
    before, now = last["active_students"], current["active_students"]
    if before and (before - now) / before > limits.student_drop:
        found.append(
            finding(
                "GRD-STUDENT-DROP",
                f"active students fell from {before} to {now} "
                f"({(before - now) / before:.1%}) since the delivery of {last['partition']}; "
                f"the limit is {limits.student_drop:.0%}",
                value=str(now),
            )
        )
    for school, count in sorted(last["schools"].items()):
        if count > 0 and current["schools"].get(school, 0) == 0:
            found.append(
                finding(
                    "GRD-SCHOOL-VANISHED",
                    f"school {school} had {count} active students on {last['partition']} "
                    "and has none now",
                    file="orgs.csv",
                    sourced_id=school,
                )
            )
    jump = _disabled_share(current) - _disabled_share(last)
    if jump > limits.disabled_jump_points:
        found.append(
            finding(
                "GRD-DISABLED-JUMP",
                f"the share of disabled students rose by {jump:.1f} points since "
                f"{last['partition']} (limit {limits.disabled_jump_points:g})",
                value=f"{_disabled_share(current):.1f}%",
            )
        )
    return found


def identity_findings(
    current: pa.Table, last: pa.Table, last_partition: str, limits: GuardLimits
) -> list[Finding]:
    """GRD-ID-CHURN: the last delivery's active students absent by sourcedId, whatever the
    count; those found again by username, identifier or e-mail under a new sourcedId are
    counted apart (a re-keyed export or SIS migration)."""
    before = last.filter(last["active"])
    if before.num_rows == 0 or current["sourcedId"].equals(last["sourcedId"]):
        return []  # (the same students, in the same order: the common night, at no cost)
    absent = before.filter(pc.invert(pc.is_in(before["sourcedId"], current["sourcedId"])))
    share = absent.num_rows / before.num_rows
    if share <= limits.id_churn:
        return []
    arrived = current.filter(pc.invert(pc.is_in(current["sourcedId"], last["sourcedId"])))
    again = pa.array(np.zeros(absent.num_rows, bool))
    for key in ("username", "identifier", "email"):
        values, known = (pc.utf8_lower(pc.utf8_trim_whitespace(t[key])) for t in (absent, arrived))
        found = pc.and_(pc.is_in(values, known.filter(pc.not_equal(known, ""))), values != "")
        again = pc.or_(again, found)
    recognised = pc.sum(again).as_py() or 0
    first = ", ".join(absent["sourcedId"].slice(0, FIRST_IDS).to_pylist())
    message = (
        f"{absent.num_rows} of the {before.num_rows} active students delivered on "
        f"{last_partition} ({share:.1%}) are absent by sourcedId; the limit is "
        f"{limits.id_churn:.0%}. "
    )
    if recognised:
        message += (
            f"{recognised} of them appear under new sourcedIds with the same username, "
            "identifier or e-mail: a SIS migration or a re-keyed export? Naviance would "
            "deactivate them and create them again, cut off from their history. "
        )
    message += f"First absent sourcedIds: {first}"
    return [finding("GRD-ID-CHURN", message, value=f"{share:.1%}")]


def _overridden(f: Finding) -> Finding:
    lowered = as_warning(f)
    return Finding(**{**lowered.__dict__, "message": f"{f.message} (overridden by an operator)"})


def parse_overrides(text: str | Iterable[str] | None) -> list[str]:
    """``"GRD-STUDENT-DROP, GRD-EMPTY"`` -> codes; refuses unknown codes so a typo never
    silently leaves a guard on (or off)."""
    if text is None:
        return []
    parts = text.split(",") if isinstance(text, str) else list(text)
    codes = [p.strip().upper() for p in parts if p.strip()]
    unknown = [c for c in codes if c not in GUARD_RULES]
    if unknown:
        raise ValueError(f"unknown guard(s) {unknown}; known: {', '.join(GUARD_RULES)}")
    return codes
