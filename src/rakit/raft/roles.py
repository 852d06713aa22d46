"""A Raft node's role (thesis 3.3, with the pre-vote of 9.6).

A ``StrEnum``: each role compares equal to its name and prints as it, so
``/status``, the metrics' ``role`` label and the logs keep the same strings.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre_candidate"  # asking for pre-votes: its term has not moved yet
    CANDIDATE = "candidate"
    LEADER = "leader"
