"""One test per rule of ``rakit.raft.readonly`` (and of ``ConfHistory`` in ``rakit.raft.membership``)."""

from __future__ import annotations

from rakit.raft.membership import ConfHistory, conf_of
from rakit.raft.messages import ENTRY_CONF, ConfChange, ConfEntry, ConfState, Entry, ReadState, encode_conf_entry
from rakit.raft.readonly import ReadOnly

VOTERS = ["a", "b", "c"]


def test_rule_1_a_held_read_is_taken_once() -> None:
    reads = ReadOnly()
    reads.hold(7)
    assert reads.knows(7) and reads.take_held() == [7] and reads.take_held() == []


def test_rule_2_a_read_waits_for_a_quorum_of_acks_and_the_leader_counts() -> None:
    reads = ReadOnly()
    reads.start(1, 5, "a")
    assert reads.heartbeat_due and reads.latest_ctx() == 1
    assert reads.ack(1, "z", VOTERS) == []  # not a voter: no quorum yet
    assert reads.ack(1, "b", VOTERS) == [ReadState(1, 5)]
    assert not reads.knows(1)


def test_rule_3_confirming_a_read_confirms_the_earlier_ones_in_order() -> None:
    reads = ReadOnly()
    for ctx, index in ((1, 5), (2, 6), (3, 7)):
        reads.start(ctx, index, "a")
    assert reads.latest_ctx() == 3
    assert reads.ack(2, "c", VOTERS) == [ReadState(1, 5), ReadState(2, 6)]
    assert list(reads.pending) == [3]


def test_rule_4_reset_drops_everything() -> None:
    reads = ReadOnly()
    reads.hold(1)
    reads.start(2, 3, "a")
    reads.reset()
    assert not reads.knows(1) and not reads.knows(2) and not reads.heartbeat_due


def conf_entry(index: int, conf: ConfState) -> Entry:
    change = ConfChange("add_learner", "d", "http://d")
    return Entry(1, index, ENTRY_CONF, encode_conf_entry(ConfEntry(change, conf)))


def test_conf_history_undoes_a_truncated_conf_entry_and_applies_new_ones() -> None:
    base = ConfState.of(VOTERS)
    with_d = ConfState(voters=tuple(VOTERS), learners=("d",))
    history = ConfHistory(base, [Entry(1, 1), conf_entry(2, with_d)])
    assert history.current == with_d and history.latest_index == 2 and history.before_latest == base
    assert history.replaced_from([Entry(2, 2)]) and history.current == base
    assert history.at(5) == base and conf_of(Entry(2, 2)) is None


def test_conf_history_compaction_keeps_what_is_in_force() -> None:
    base = ConfState.of(VOTERS)
    with_d = ConfState(voters=tuple(VOTERS), learners=("d",))
    history = ConfHistory(base, [conf_entry(2, with_d)])
    history.compacted(3, history.at(3))
    assert history.base == with_d and history.confs == [] and history.current == with_d
