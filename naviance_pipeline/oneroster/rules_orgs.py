"""Cross-row rules of orgs.csv: which orgs are written (those output users belong to and their
ancestors), dangling parents, cycles, Naviance's org types, and whether a school remains.

The parent graph is walked with pointer doubling on numpy arrays (``log2(n)`` vectorised steps),
so a long parent chain or a cycle costs no recursion and no per-org Python loop.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from naviance_pipeline.oneroster.findings import Finding, finding
from naviance_pipeline.oneroster.kernels.lists import split_list
from naviance_pipeline.oneroster.rules import BY_CODE
from naviance_pipeline.oneroster.rules_common import SOURCED_ID, row_findings
from naviance_pipeline.oneroster.spec import ORG_TYPES_NAVIANCE, ORG_TYPES_V11, ORGS

NO_PARENT = -1


def referenced_org_ids(users: pd.DataFrame) -> pd.Index:
    """The distinct org sourcedIds that ``users`` list in orgSourcedIds."""
    tokens, _ = split_list(users["orgSourcedIds"])
    return pd.Index(pc.unique(tokens).to_pylist())


def parent_positions(frame: pd.DataFrame, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(parent, dangling)`` for each row of an orgs frame.

    ``parent[i]`` is the row position of row ``i``'s parent (the first ``kept`` row with that
    sourcedId), ``NO_PARENT`` when the parent is blank or unknown; ``dangling`` marks kept rows
    whose parentSourcedId names no kept org (ORG-PARENT).
    """
    kept = np.asarray(kept, dtype=bool)
    ids = frame[SOURCED_ID].to_numpy(dtype=object)
    first = kept & ~frame[SOURCED_ID].duplicated(keep="first").to_numpy(bool)
    targets = np.flatnonzero(first)
    where = pd.Index(ids[targets]).get_indexer(frame["parentSourcedId"].to_numpy(dtype=object))
    parent = np.where(where >= 0, targets[np.maximum(where, 0)], NO_PARENT)
    parent[~kept] = NO_PARENT
    named = (frame["parentSourcedId"] != "").to_numpy(bool)
    return parent, kept & named & (parent == NO_PARENT)


def _pointers(parent: np.ndarray) -> np.ndarray:
    """Parent pointers over ``n + 1`` nodes where node ``n`` is a sink standing for "no parent"."""
    n = len(parent)
    return np.append(np.where(parent == NO_PARENT, n, parent), n)


def with_ancestors(parent: np.ndarray, start: np.ndarray) -> np.ndarray:
    """``start`` plus every ancestor of a ``start`` row (cycles are fine)."""
    step = _pointers(parent)  # after round j: 2**j steps up
    reach = np.append(np.asarray(start, dtype=bool), False)
    while True:
        grown = reach.copy()
        grown[step[reach]] = True
        # Closed under a jump of 2**j with every node within 2**j steps reached: done.
        if np.array_equal(grown, reach):
            return reach[:-1]
        reach, step = grown, step[step]


def on_cycle(parent: np.ndarray) -> np.ndarray:
    """Rows that are their own ancestor."""
    n = len(parent)
    step = _pointers(parent)
    for _ in range(max(1, int(n).bit_length())):
        step = step[step]  # 2**bit_length(n) > n steps up: every chain has ended or is cycling
    cycling = np.zeros(n + 1, dtype=bool)
    cycling[step[:-1]] = True
    return cycling[:-1]


def org_findings(
    frame: pd.DataFrame, parent: np.ndarray, dangling: np.ndarray, written: np.ndarray
) -> list[Finding]:
    """ORG-PARENT, ORG-CYCLE and ORG-TYPE-NAVIANCE on rows; ORG-NO-SCHOOL file-level.

    ORG-TYPE-NAVIANCE is only for valid v1.1 types: an invalid type is ORG-TYPE already.
    Severities are the rules' own; the caller lowers those of orgs not written.
    """
    org_type = frame["type"]
    findings = row_findings(
        frame,
        dangling,
        "ORG-PARENT",
        ORGS,
        "parentSourcedId",
        BY_CODE["ORG-PARENT"].message,
    )
    findings += row_findings(
        frame,
        on_cycle(parent),
        "ORG-CYCLE",
        ORGS,
        "parentSourcedId",
        BY_CODE["ORG-CYCLE"].message,
    )
    odd_type = (org_type.isin(ORG_TYPES_V11) & ~org_type.isin(ORG_TYPES_NAVIANCE)).to_numpy(bool)
    findings += row_findings(
        frame,
        written & odd_type,
        "ORG-TYPE-NAVIANCE",
        ORGS,
        "type",
        BY_CODE["ORG-TYPE-NAVIANCE"].message,
    )
    if not (written & (org_type == "school").to_numpy(bool)).any():
        findings.append(
            finding(
                "ORG-NO-SCHOOL",
                BY_CODE["ORG-NO-SCHOOL"].message,
                file=ORGS.name,
                column="type",
            )
        )
    return findings
