"""Memory a stage frees goes back: no reference cycle keeps a validated frame alive, and
``release_memory`` collects cycles that outlived the young generations."""

from __future__ import annotations

import gc
import weakref

from naviance_pipeline.oneroster import schemas
from naviance_pipeline.oneroster.spec import USERS
from naviance_pipeline.oneroster.stages import build_users
from naviance_pipeline.operations.storage import release_memory
from naviance_pipeline_tests.oneroster.factories import (
    OPTIONS,
    district_orgs,
    source,
    student,
)


def test_a_validated_frame_dies_by_refcount():
    users = [student(f"u{i}", email=f"u{i}@example.org") for i in range(5)]
    frame = build_users(source(district_orgs(), users), OPTIONS).frame
    # The checks read columns through .str and Pandera attaches its accessor to the frame.
    assert schemas.validate(frame, USERS, OPTIONS) == []
    column = frame["username"]
    column.str.lower()  # a column asked for .str after validation too
    gone = weakref.ref(frame)
    del column
    gc.disable()
    try:
        del frame
        assert gone() is None, "a reference cycle keeps the validated frame alive"
    finally:
        gc.enable()


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_release_memory_collects_cycles_older_than_the_young_generations():
    node = _Node()
    gone = weakref.ref(node)
    gc.collect()  # node survives (it is referenced) and moves to the oldest generation
    del node
    gc.collect(1)
    assert gone() is not None  # the young generations alone do not reach it
    release_memory(above_bytes=0)  # "still above the threshold": the full collection runs
    assert gone() is None
