"""One test per rule of ``rakit.raft.turn`` and of the core's rule 18 (what may leave before the fsync)."""

from __future__ import annotations

import random

from rakit.raft.config import RaftConfig
from rakit.raft.core import RaftCore
from rakit.raft.messages import (
    AppendEntries,
    AppendEntriesResp,
    Entry,
    HardState,
    Heartbeat,
    ReadState,
    RequestVote,
    RequestVoteResp,
    Snapshot,
    SnapshotMeta,
)
from rakit.raft.ready import Ready
from rakit.raft.turn import Advance, Apply, ConfirmReads, Persist, Restore, Send, plan

CFG = RaftConfig(election_ticks=10, heartbeat_ticks=1, pre_vote=False)
BEAT = Heartbeat(term=2, src="a", dst="b", commit=0)
ACK = AppendEntriesResp(term=2, src="b", dst="a", success=True, index=1)
DISK = HardState(term=2, vote="a", commit=0)


def kinds(effects: list) -> list[str]:  # type: ignore[type-arg]
    return [type(e).__name__ for e in effects]


def test_rule_1_early_messages_go_first() -> None:
    turn = plan(Ready(messages=[BEAT], entries=[Entry(2, 1)], persisted_messages=[ACK]), DISK)
    assert kinds(turn.effects) == ["Send", "Persist", "Send", "Advance"]
    first = turn.effects[0]
    assert isinstance(first, Send) and not first.after_persist and first.messages == [BEAT]


def test_rule_2_a_commit_only_hard_state_is_carried_to_the_next_write() -> None:
    moved = HardState(term=2, vote="a", commit=5)
    turn = plan(Ready(hard_state=moved), DISK)
    assert kinds(turn.effects) == ["Advance"] and turn.carried == moved and turn.durable == DISK
    nxt = plan(Ready(entries=[Entry(2, 6)]), turn.durable, turn.carried)
    assert nxt.effects[0] == Persist(moved, [Entry(2, 6)], None)
    assert nxt.durable == moved and nxt.carried is None


def test_rule_2_a_new_term_or_vote_is_written_even_without_entries() -> None:
    for hs in (HardState(term=3, vote=None, commit=0), HardState(term=2, vote="b", commit=0)):
        turn = plan(Ready(hard_state=hs), DISK)
        assert turn.effects[0] == Persist(hs, [], None) and turn.durable == hs


def test_rule_3_persisted_messages_leave_after_the_write() -> None:
    turn = plan(Ready(entries=[Entry(2, 1)], persisted_messages=[ACK]), DISK)
    assert kinds(turn.effects) == ["Persist", "Send", "Advance"]
    send = turn.effects[1]
    assert isinstance(send, Send) and send.after_persist


def test_rule_4_restore_apply_reads_then_advance() -> None:
    snap = Snapshot(SnapshotMeta(index=3, term=2, voters=["a", "b", "c"]), b"")
    rd = Ready(snapshot=snap, committed_entries=[Entry(2, 4)], read_states=[ReadState(1, 4)])
    effects = plan(rd, DISK).effects
    assert kinds(effects) == ["Persist", "Restore", "Apply", "ConfirmReads", "Advance"]
    assert effects[1] == Restore(snap) and effects[2] == Apply([Entry(2, 4)])
    assert effects[3] == ConfirmReads([ReadState(1, 4)]) and effects[4] == Advance(rd)


def test_rule_5_an_empty_ready_only_advances() -> None:
    assert kinds(plan(Ready(), DISK).effects) == ["Advance"]


def leader() -> RaftCore:
    core = RaftCore("a", ["a", "b", "c"], config=CFG, rng=random.Random(1))
    core.campaign()
    rd = core.ready()
    core.advance(rd)
    core.step(RequestVoteResp(term=core.term, src="b", dst="a", granted=True))
    return core


def test_core_rule_18_a_candidate_sends_its_vote_requests_only_after_the_disk() -> None:
    core = RaftCore("a", ["a", "b", "c"], config=CFG, rng=random.Random(1))
    core.campaign()
    rd = core.ready()
    assert rd.messages == [] and {type(m) for m in rd.persisted_messages} == {RequestVote}


def test_core_rule_18_a_leaders_appends_leave_early_once_its_term_is_on_disk() -> None:
    core = leader()
    rd = core.ready()  # becomes leader in this Ready: term and vote unchanged since the campaign
    assert {type(m) for m in rd.messages} == {AppendEntries} and rd.persisted_messages == []
    core.advance(rd)


def test_core_rule_18_a_leaders_answers_wait_for_the_disk() -> None:
    core = leader()
    core.advance(core.ready())
    core.step(RequestVote(term=core.term, src="c", dst="a", last_index=0, last_term=0))
    rd = core.ready()
    assert [type(m) for m in rd.persisted_messages] == [RequestVoteResp]
    assert all(isinstance(m, AppendEntries | Heartbeat) for m in rd.messages)
