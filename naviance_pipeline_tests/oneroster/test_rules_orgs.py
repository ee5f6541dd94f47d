"""Org rules through ``build_orgs`` from CSV bytes, and the parent-graph functions."""

from __future__ import annotations

import numpy as np

from naviance_pipeline.oneroster.findings import ERROR, WARNING
from naviance_pipeline.oneroster.rules_orgs import NO_PARENT, on_cycle, with_ancestors
from naviance_pipeline_tests.oneroster.factories import (
    errors,
    line,
    of_rule,
    one,
    org,
    orgs_stage,
    person,
    source,
    student,
)


def orgs_of(orgs: list[dict], users: list[dict]):
    return orgs_stage(source(orgs, users))


def test_written_orgs_are_those_users_need_plus_ancestors():
    orgs = [
        org("state", "state"),
        org("d1", "district", "state"),
        org("s1", "school", "d1"),
        org("s2", "school", "d1"),  # no user
        org("d2", "district"),  # no user
    ]
    result = orgs_of(orgs, [student("u1", orgs="s1"), person("g1", "guardian", orgs="s2")])

    assert result.frame["sourcedId"].tolist() == ["d1", "s1", "state"]
    assert result.counts == {"read": 5, "dropped_status": 0, "dropped_unneeded": 2, "written": 3}


def test_org_name_blank_on_a_written_org_is_an_error():
    result = orgs_of([org("s1", name="")], [student("u1")])
    one(result.findings, "ORG-NAME", line=line(0), sourced_id="s1", severity=ERROR)


def test_unneeded_department_with_blank_name_gives_only_warnings():
    orgs = [org("s1"), org("dep", "department", "s1", name="")]
    result = orgs_of(orgs, [student("u1")])

    one(result.findings, "ORG-NAME", line=line(1), sourced_id="dep", severity=WARNING)
    assert errors(result.findings) == []
    assert result.frame["sourcedId"].tolist() == ["s1"]


def test_org_type_outside_v11_is_an_error():
    result = orgs_of([org("s1"), org("c1", "campus")], [student("u1", orgs="s1,c1")])
    one(result.findings, "ORG-TYPE", line=line(1), sourced_id="c1", severity=ERROR, value="campus")
    assert of_rule(result.findings, "ORG-TYPE-NAVIANCE") == []  # ORG-TYPE says it already


def test_org_type_naviance_for_a_written_department():
    result = orgs_of([org("s1"), org("dep", "department", "s1")], [student("u1", orgs="s1,dep")])
    one(result.findings, "ORG-TYPE-NAVIANCE", line=line(1), sourced_id="dep", severity=ERROR)


def test_org_type_naviance_for_a_written_ancestor():
    result = orgs_of([org("st", "state"), org("s1", "school", "st")], [student("u1")])
    one(result.findings, "ORG-TYPE-NAVIANCE", line=line(0), sourced_id="st", severity=ERROR)


def test_org_parent_naming_an_unknown_org():
    result = orgs_of([org("s1", "school", "ghost")], [student("u1")])
    one(result.findings, "ORG-PARENT", line=line(0), sourced_id="s1", severity=ERROR, value="ghost")


def test_org_parent_naming_a_deleted_org():
    orgs = [org("d1", "district", status="tobedeleted"), org("s1", "school", "d1")]
    result = orgs_of(orgs, [student("u1")])
    one(result.findings, "ORG-PARENT", line=line(1), sourced_id="s1", severity=ERROR)
    assert result.frame["sourcedId"].tolist() == ["s1"]
    assert result.counts["dropped_status"] == 1


def test_org_cycle_reports_each_org_on_the_cycle():
    orgs = [org("a", "district", "b"), org("b", "district", "a"), org("s1", "school", "a")]
    result = orgs_of(orgs, [student("u1")])

    found = of_rule(result.findings, "ORG-CYCLE")
    assert [(f.line, f.sourcedId, f.severity) for f in found] == [
        (line(0), "a", ERROR),
        (line(1), "b", ERROR),
    ]
    assert result.frame["sourcedId"].tolist() == ["a", "b", "s1"]


def test_org_that_is_its_own_parent_is_a_cycle():
    result = orgs_of([org("s1", "school", "s1")], [student("u1")])
    one(result.findings, "ORG-CYCLE", line=line(0), sourced_id="s1", severity=ERROR)


def test_cycle_among_unneeded_orgs_is_only_a_warning():
    orgs = [org("s1"), org("x", "district", "y"), org("y", "district", "x")]
    result = orgs_of(orgs, [student("u1")])
    assert {f.severity for f in of_rule(result.findings, "ORG-CYCLE")} == {WARNING}
    assert errors(result.findings) == []


def test_org_no_school_when_users_belong_only_to_a_district():
    result = orgs_of([org("d1", "district"), org("s1")], [student("u1", orgs="d1")])
    one(result.findings, "ORG-NO-SCHOOL", line=None, sourced_id=None, severity=ERROR)


def test_id_duplicate_in_orgs_reports_every_occurrence():
    result = orgs_of([org("s1"), org("s1", name="Again")], [student("u1")])
    found = of_rule(result.findings, "ID-DUPLICATE")
    assert [(f.line, f.sourcedId, f.severity) for f in found] == [
        (line(0), "s1", ERROR),
        (line(1), "s1", ERROR),
    ]
    assert result.frame["name"].tolist() == ["Org s1"]


def test_users_left_out_do_not_make_their_orgs_needed():
    users = [
        student("u1", orgs="s1"),
        student("u2", orgs="s2", status="tobedeleted"),
        person("t1", "teacher", orgs="s3"),
    ]
    result = orgs_of([org("s1"), org("s2"), org("s3")], users)
    assert result.frame["sourcedId"].tolist() == ["s1"]


# ---- the parent graph --------------------------------------------------------------------------


def test_long_chain_needs_no_recursion():
    n = 50_000
    parent = np.arange(1, n + 1)
    parent[-1] = NO_PARENT  # 0 -> 1 -> ... -> n-1
    start = np.zeros(n, dtype=bool)
    start[0] = True
    assert with_ancestors(parent, start).all()
    assert not on_cycle(parent).any()


def test_cycle_detection_marks_only_cycle_members():
    # 0 -> 1 -> 2 -> 1 (cycle 1, 2); 3 -> 0 (a tail into it); 4 alone
    parent = np.array([1, 2, 1, 0, NO_PARENT])
    assert on_cycle(parent).tolist() == [False, True, True, False, False]
    start = np.array([False, False, False, True, False])
    assert with_ancestors(parent, start).tolist() == [True, True, True, True, False]
