"""What a coordination entry did, read off its (possibly nested) results.

The coordination machine answers an ``ExpireBatch`` with ``BatchResults`` and a
session's end with a ``SessionEnded`` that carries the lock table's own result
under ``attached["locks"]``; the lease keepers and the services want the flat
facts: which holds were granted, which ended, which waits left.  Pure reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rakit.statemachines import locks as L
from rakit.statemachines.coordination import BatchResults
from rakit.statemachines.sessions import SessionEnded


def flatten(result: Any) -> Iterator[Any]:
    """``result`` and every result nested in it, outermost first."""
    yield result
    if isinstance(result, BatchResults):
        for inner in result.results:
            yield from flatten(inner)
    elif isinstance(result, SessionEnded):
        for inner in result.attached.values():
            yield from flatten(inner)


def lock_results(result: Any) -> Iterator[Any]:
    """The lock table's results in ``result`` (itself, or nested in a coordination result)."""
    for inner in flatten(result):
        if type(inner) in L.RESULT_TYPES:
            yield inner
