"""Majority maths (raft/quorum.py), checked exhaustively against naive versions."""

from __future__ import annotations

import itertools

import pytest

from rakit.raft.quorum import committed_index, quorum_size, vote_result

VOTER_SETS = [["a"], ["a", "b"], ["a", "b", "c"], ["a", "b", "c", "d"], ["a", "b", "c", "d", "e"]]


def naive_committed(match: dict[str, int], voters: list[str]) -> int:
    best = 0
    for candidate in range(0, max(match.values(), default=0) + 1):
        if sum(1 for v in voters if match.get(v, 0) >= candidate) > len(voters) // 2:
            best = candidate
    return best


def test_quorum_size_is_strict_majority() -> None:
    assert [quorum_size(v) for v in VOTER_SETS] == [1, 2, 2, 3, 3]


def test_committed_index_examples() -> None:
    assert committed_index({"a": 5, "b": 4, "c": 1}, ["a", "b", "c"]) == 4
    assert committed_index({"a": 5}, ["a", "b", "c"]) == 0  # missing voters count as 0
    assert committed_index({"a": 7, "b": 7, "z": 99}, ["a", "b", "c"]) == 7  # non-voter ignored
    assert committed_index({"a": 9, "b": 3, "c": 5, "d": 4}, ["a", "b", "c", "d"]) == 4
    assert committed_index({}, []) == 0


@pytest.mark.parametrize("voters", VOTER_SETS, ids=len)
def test_committed_index_matches_naive_exhaustively(voters: list[str]) -> None:
    for values in itertools.product(range(4), repeat=len(voters)):
        match = dict(zip(voters, values))
        assert committed_index(match, voters) == naive_committed(match, voters), match


def naive_vote(votes: dict[str, bool], voters: list[str]) -> str:
    q = len(voters) // 2 + 1
    yes = [v for v in voters if votes.get(v) is True]
    undecided = [v for v in voters if v not in votes]
    if len(yes) >= q:
        return "won"
    return "pending" if len(yes) + len(undecided) >= q else "lost"


@pytest.mark.parametrize("voters", VOTER_SETS, ids=len)
def test_vote_result_matches_naive_exhaustively(voters: list[str]) -> None:
    for answers in itertools.product([True, False, None], repeat=len(voters)):
        votes = {v: a for v, a in zip(voters, answers) if a is not None}
        assert vote_result(votes, voters) == naive_vote(votes, voters), votes


def test_vote_result_examples() -> None:
    three = ["a", "b", "c"]
    assert vote_result({"a": True}, three) == "pending"
    assert vote_result({"a": True, "b": True}, three) == "won"
    assert vote_result({"a": True, "b": False}, three) == "pending"
    assert vote_result({"a": False, "b": False}, three) == "lost"
    assert vote_result({"a": True, "x": True, "y": True}, three) == "pending"  # non-voters ignored
    assert vote_result({"a": True}, ["a"]) == "won"
    assert vote_result({}, []) == "lost"
