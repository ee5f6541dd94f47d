"""Bounded thread parallelism: the one helper the core uses to overlap work on threads.

Threads help here, despite the GIL, because the work handed to them spends its time in code
that releases it: Arrow compute kernels (``take``, ``filter``, casts, string kernels), numpy
reductions over large arrays, zlib/ISA-L deflate and inflate, and hashlib. Two threads keep
both of the machine's cores busy; more would only add memory (each result in flight is a
column or a chunk) and contention.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Below this many rows, work is not worth handing to threads (the hand-off costs more).
PARALLEL_ROWS = 100_000


def bounded_map(
    work: Callable[[T], R], items: Iterable[T], *, width: int = 2, threaded: bool = True
) -> Iterator[R]:
    """``work(item)`` for each item, the results in order, with at most ``width`` calls under
    way at once on threads while the caller's thread produces the next item.

    ``items`` is read lazily, one item ahead of the calls under way: producing an item (a CSV
    chunk) overlaps the work on the ones before it, and at most ``width + 1`` items are held
    at once (columns taken from a frame one by one are freed as they are done). ``width=1``
    keeps the calls in order, one after another (a digest fed chunk by chunk). The results
    come out as they are consumed, so a caller that folds them holds few at a time.
    ``threaded=False`` (small inputs) runs everything on the caller's thread, with no thread
    started. An exception in ``work`` is raised where its result is taken, once the calls
    under way have finished.
    """
    if not threaded:
        yield from map(work, items)
        return
    with ThreadPoolExecutor(width) as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            if len(pending) == width:
                yield pending.popleft().result()
            pending.append(pool.submit(work, item))
            del item  # held by its call only, so that it can be freed once done
        while pending:
            yield pending.popleft().result()


def side_by_side(*functions: Callable[[], R]) -> list[R]:
    """Each of ``functions`` called on its own thread (``bounded_map``), their results in
    order: e.g. counting a file's line breaks while Arrow parses it."""
    return list(bounded_map(_call, functions, width=len(functions)))


def _call(function: Callable[[], R]) -> R:
    return function()
