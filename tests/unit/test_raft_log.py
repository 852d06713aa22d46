"""The in-memory log view (raft/log.py): append, conflicts, stability, compaction."""

from __future__ import annotations

import pytest

from rakit.raft.log import LogCorrupt, RaftLog
from rakit.raft.messages import Entry, Snapshot, SnapshotMeta


def ents(*terms: int, start: int = 1) -> list[Entry]:
    return [Entry(t, start + i, data=f"{start + i}".encode()) for i, t in enumerate(terms)]


def snap(index: int, term: int) -> Snapshot:
    return Snapshot(SnapshotMeta(index, term, ["a", "b", "c"]), b"state")


def fresh(*terms: int) -> RaftLog:
    """A log holding ``terms`` with nothing persisted yet."""
    log = RaftLog()
    log.append(ents(*terms))
    return log


def test_empty_log_has_term_zero_at_index_zero() -> None:
    log = RaftLog()
    assert (log.first_index, log.last_index, log.last_term) == (1, 0, 0)
    assert log.term_at(0) == 0
    assert log.term_at(1) is None


def test_term_at_is_known_from_snapshot_index_to_last() -> None:
    log = RaftLog(snap(5, 2), ents(2, 3, start=6))
    assert log.term_at(4) is None  # compacted
    assert log.term_at(5) == 2  # the snapshot's own index
    assert log.term_at(7) == 3
    assert log.term_at(8) is None  # beyond the end
    assert (log.first_index, log.last_index, log.last_term) == (6, 7, 3)


def test_restart_state_counts_as_stable_and_clamps_commit() -> None:
    log = RaftLog(snap(5, 2), ents(2, 3, start=6), committed=99)
    assert log.stable_index == 7
    assert log.committed == 7
    assert log.applied == 5
    assert log.unstable_entries() == []


def test_restart_rejects_gaps() -> None:
    with pytest.raises(LogCorrupt):
        RaftLog(snap(5, 2), ents(2, start=7))


def test_maybe_append_rejects_on_prev_mismatch_paper_5_3() -> None:
    """§5.3: if the log has no entry at prevLogIndex with prevLogTerm, reply false."""
    log = fresh(1, 1, 2)
    assert log.maybe_append(3, 1, 0, ents(3, start=4)) is None  # wrong term
    assert log.maybe_append(5, 2, 0, []) is None  # past the end
    assert log.last_index == 3


def test_maybe_append_appends_and_commits_to_min_of_leader_commit_and_last_new() -> None:
    log = fresh(1, 1)
    assert log.maybe_append(2, 1, 10, ents(2, 2, start=3)) == 4
    assert log.committed == 4  # min(10, last new index 4)
    assert log.maybe_append(4, 2, 3, []) == 4
    assert log.committed == 4  # commit never goes back


def test_conflict_truncates_suffix_and_lowers_stable_index_paper_5_3() -> None:
    """§5.3: if an existing entry conflicts with a new one, delete it and all that follow."""
    log = fresh(1, 1, 1, 1)
    log.stable_to(4)
    assert log.maybe_append(2, 1, 0, ents(3, 3, start=3)) == 4
    assert [e.term for e in log.slice(1, 5)] == [1, 1, 3, 3]
    assert log.stable_index == 2
    assert [(e.index, e.term) for e in log.unstable_entries()] == [(3, 3), (4, 3)]


def test_delayed_shorter_append_does_not_drop_matching_suffix() -> None:
    log = fresh(1, 1, 1, 1, 1)
    assert log.maybe_append(1, 1, 0, ents(1, 1, start=2)) == 3
    assert log.last_index == 5


def test_truncating_a_committed_entry_fails_loudly() -> None:
    log = fresh(1, 1, 1)
    log.commit_to(3)
    with pytest.raises(LogCorrupt):
        log.maybe_append(1, 1, 3, ents(2, start=2))


def test_commit_beyond_last_index_fails_loudly() -> None:
    with pytest.raises(LogCorrupt):
        fresh(1).commit_to(2)


def test_next_committed_hands_out_only_stable_entries_and_respects_max() -> None:
    log = fresh(1, 1, 1, 1, 1)
    log.commit_to(5)
    assert log.next_committed(10) == []  # nothing on disk yet
    log.stable_to(3)
    assert [e.index for e in log.next_committed(10)] == [1, 2, 3]
    assert [e.index for e in log.next_committed(2)] == [1, 2]
    log.applied_to(2)
    log.stable_to(5)
    assert [e.index for e in log.next_committed(10)] == [3, 4, 5]


def test_compact_drops_covered_entries_and_keeps_snapshot_term() -> None:
    log = fresh(1, 1, 2, 2, 3)
    log.stable_to(5)
    log.commit_to(4)
    log.applied_to(4)
    log.compact(snap(3, 2))
    assert (log.first_index, log.last_index) == (4, 5)
    assert log.term_at(3) == 2 and log.term_at(2) is None
    with pytest.raises(ValueError):
        log.compact(snap(5, 3))  # beyond applied
    with pytest.raises(ValueError):
        log.compact(snap(2, 1))  # not after the current snapshot


def test_restore_replaces_log_and_holds_back_applying_until_restored() -> None:
    log = fresh(1, 1, 1)
    log.stable_to(3)
    s = snap(10, 4)
    log.restore(s)
    assert (log.first_index, log.last_index, log.committed) == (11, 10, 10)
    assert log.pending_snapshot is s
    assert log.next_committed(10) == []
    log.snapshot_restored(s)
    assert log.pending_snapshot is None and log.applied == 10


def test_conflict_search_helpers() -> None:
    log = fresh(1, 1, 2, 2, 2, 4)
    assert log.find_conflict(ents(1, 2, start=2)) == 0
    assert log.find_conflict(ents(1, 3, start=2)) == 3
    assert log.find_conflict(ents(4, 5, start=6)) == 7  # new entry
    assert log.first_index_of_term_at(5) == 3
    assert log.first_index_of_term_at(6) == 6
    assert log.last_index_with_term_at_most(6, 3) == 5
    assert log.last_index_with_term_at_most(6, 1) == 2
    assert log.last_index_with_term_at_most(99, 9) == 6
    assert log.last_index_with_term_at_most(6, 0) == 0


def test_is_up_to_date_compares_last_term_then_length_paper_5_4_1() -> None:
    log = fresh(1, 2, 2)
    assert log.is_up_to_date(3, 2)
    assert log.is_up_to_date(1, 3)  # higher last term wins even if shorter
    assert not log.is_up_to_date(2, 2)
    assert not log.is_up_to_date(9, 1)


def test_entries_for_message_bounds_count_and_bytes_but_sends_oversize_alone() -> None:
    log = RaftLog()
    log.append([Entry(1, 1, data=b"x" * 100), Entry(1, 2, data=b"y"), Entry(1, 3, data=b"z")])
    assert len(log.entries_for_message(1, 10, 10)) == 1  # oversize entry goes alone
    assert len(log.entries_for_message(2, 10, 10)) == 2
    assert len(log.entries_for_message(2, 1, 10)) == 1
