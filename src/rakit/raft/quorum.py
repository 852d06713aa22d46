"""Majority quorum maths, as two pure functions.

Rules:

1. A quorum is a strict majority of ``voters``: ``len(voters) // 2 + 1``.
2. ``committed_index`` is the largest index that a quorum has: sort the
   voters' match indexes in descending order and take the one at position
   ``len(voters) // 2``.  A voter missing from ``match`` counts as 0.
3. ``vote_result`` is "won" once a quorum granted, "lost" once a quorum can
   no longer grant (too many rejections), else "pending".  A voter missing
   from ``votes`` has not answered yet; entries for non-voters are ignored.

An empty voter set commits nothing and wins nothing ("lost"): it cannot
happen in a running cluster, and refusing is the safe answer.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Literal

VoteResult = Literal["won", "lost", "pending"]


def quorum_size(voters: Collection[str]) -> int:
    return len(voters) // 2 + 1


def committed_index(match: Mapping[str, int], voters: Collection[str]) -> int:
    """The largest index stored by a majority of ``voters``."""
    if not voters:
        return 0
    indexes = sorted((match.get(v, 0) for v in voters), reverse=True)
    return indexes[len(indexes) // 2]


def vote_result(votes: Mapping[str, bool], voters: Collection[str]) -> VoteResult:
    if not voters:
        return "lost"
    granted = sum(1 for v in voters if votes.get(v) is True)
    missing = sum(1 for v in voters if v not in votes)
    need = quorum_size(voters)
    if granted >= need:
        return "won"
    if granted + missing >= need:
        return "pending"
    return "lost"
