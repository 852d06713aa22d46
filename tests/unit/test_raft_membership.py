"""Membership changes, learners and leadership transfer in the pure core (core.py rules 12-17).

``Net`` steps cores in lockstep, as in test_raft_core.py, and can add nodes
with fresh (empty) state, stop them, and restart them from what they stored
-- the way the simulation harness and the driver build a core.
"""

from __future__ import annotations

import random

import msgspec
import pytest
from raft_net import ABC, CFG, Net, of_type

from rakit.errors import (
    AlreadyVoter,
    ConfChangeInProgress,
    ConfChangeRefused,
    Conflict,
    LastVoter,
    LearnerNotCaughtUp,
    MemberExists,
    NoLeader,
    NotAVoter,
    NotLeader,
    TransferInProgress,
    UnknownMember,
)
from rakit.raft.config import RaftConfig
from rakit.raft.core import RaftCore
from rakit.raft.messages import (
    ENTRY_CONF,
    AppendEntries,
    AppendEntriesResp,
    ConfChange,
    ConfEntry,
    ConfState,
    Entry,
    Heartbeat,
    InstallSnapshot,
    RequestVote,
    RequestVoteResp,
    SnapshotMeta,
    TimeoutNow,
    decode_conf_entry,
    encode_conf_entry,
)

add_learner, promote, remove = ConfChange.add_learner, ConfChange.promote, ConfChange.remove


def steady(net: Net, node: str = "a") -> RaftCore:
    leader = net.elect(node)
    net.tick(1)
    assert leader.commit_index == leader.last_index
    return leader


def change(net: Net, leader: str, c: ConfChange) -> tuple[int, int]:
    """Propose ``c`` on ``leader`` and let it commit everywhere."""
    term, index = net[leader].propose_conf_change(c)
    net.drain()
    net.tick(1)
    assert net[leader].commit_index >= index
    return term, index


def with_learner(learner: str = "d") -> tuple[Net, RaftCore]:
    """a, b, c (a leads) plus a caught-up learner."""
    net = Net()
    leader = steady(net)
    net.add(learner)
    change(net, "a", add_learner(learner))
    net.tick(2)
    assert leader.is_caught_up(learner)
    return net, leader


def snapshot_of(core: RaftCore) -> tuple:
    """Everything a refused request must leave alone."""
    return (
        core.role,
        core.term,
        core.last_index,
        core.commit_index,
        core.conf_state,
        core.pending_conf_index,
        core.transferring_to,
        core.has_ready(),
    )


def conf_entry(term: int, index: int, c: ConfChange, before: ConfState) -> Entry:
    return Entry(term, index, ENTRY_CONF, encode_conf_entry(ConfEntry(c, before.apply(c))))


# -- the types -------------------------------------------------------------------------------


def test_conf_state_apply_is_one_server_at_a_time() -> None:
    abc = ConfState.of(["c", "a", "b"])
    assert abc == ConfState(("a", "b", "c"), ())
    assert abc.apply(add_learner("d")) == ConfState(("a", "b", "c"), ("d",))
    assert abc.apply(add_learner("d")).apply(promote("d")) == ConfState(("a", "b", "c", "d"), ())
    assert abc.apply(remove("b")) == ConfState(("a", "c"), ())
    for bad in (add_learner("a"), promote("a"), promote("z"), remove("z")):
        with pytest.raises(ValueError):
            abc.apply(bad)
    with pytest.raises(ValueError):
        ConfState.of(["a"]).apply(remove("a"))
    assert ConfState.of(["a"], ["b"]).members == ("a", "b")


def test_conf_entry_round_trips_and_bad_data_means_no_change() -> None:
    e = ConfEntry(add_learner("d"), ConfState.of(ABC, ["d"]))
    assert decode_conf_entry(encode_conf_entry(e)) == e
    assert decode_conf_entry(b"") is None
    assert decode_conf_entry(b"\xc1garbage") is None
    assert decode_conf_entry(msgspec.msgpack.encode([["explode", "x"], [["a"], []]])) is None
    for conf in (ConfState((), ()), ConfState(("b", "a")), ConfState(("a",), ("a",)), ConfState(("a", "a"))):
        assert decode_conf_entry(encode_conf_entry(ConfEntry(add_learner("x"), conf))) is None


def test_snapshot_meta_without_learners_still_decodes() -> None:
    old = msgspec.msgpack.encode({"index": 5, "term": 2, "voters": ["a", "b", "c"]})
    meta = msgspec.msgpack.decode(old, type=SnapshotMeta)
    assert meta.learners == [] and meta.conf_state() == ConfState.of(ABC)
    new = SnapshotMeta(5, 2, ["a"], ["b"])
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(new), type=SnapshotMeta) == new


def test_errors_are_409_conflicts_with_specific_codes() -> None:
    for cls, code in [
        (ConfChangeInProgress, "conf_change_in_progress"),
        (MemberExists, "member_exists"),
        (UnknownMember, "unknown_member"),
        (LastVoter, "last_voter"),
        (LearnerNotCaughtUp, "learner_not_caught_up"),
        (AlreadyVoter, "already_voter"),
        (NotAVoter, "not_a_voter"),
    ]:
        err = cls("why")
        assert isinstance(err, Conflict) and err.status == 409
        assert err.body() == {"error": code, "detail": "why"}
    err = TransferInProgress("b")
    assert isinstance(err, NotLeader) and err.leader_id == "b" and err.code == "transfer_in_progress"


# -- configuration as a log entry (rule 12) -----------------------------------------------------


def test_initial_configuration_is_the_voters_given() -> None:
    core = RaftCore("a", ["c", "a", "b"], rng=random.Random(0))
    assert core.conf_state == ConfState.of(ABC)
    assert (core.voters, core.learners, core.pending_conf_index) == (ABC, [], 0)


def test_add_learner_takes_effect_on_append_before_commit_on_leader_and_followers() -> None:
    net = Net()
    leader = steady(net)
    net.add("d")
    term, index = leader.propose_conf_change(add_learner("d"))
    assert (term, index) == (leader.term, leader.last_index)
    want = ConfState.of(ABC, ["d"])
    # The leader: at once, uncommitted, with a Progress for the learner.
    assert leader.conf_state == want and leader.commit_index < index
    assert leader.learners == ["d"] and leader.progress("d") is not None
    assert leader.pending_conf_index == index
    rd = net.process("a")
    assert rd.conf_state == want and sorted(m.dst for m in of_type(rd.all_messages(), AppendEntries)) == ["b", "c"]
    net.deliver()  # b and c append it; nothing is committed yet
    assert net["b"].conf_state == want and net["b"].commit_index < index
    assert net["b"].has_ready()
    assert net.process("b").conf_state == want
    net.drain()
    net.tick(2)
    assert leader.commit_index >= index
    assert net["d"].conf_state == want  # the learner learned it from the log
    assert net.applied["d"] == net.applied["a"]


def test_conf_reverts_when_its_entry_is_truncated() -> None:
    abc = ConfState.of(ABC)
    b = RaftCore("b", ABC, config=CFG, rng=random.Random(0))
    b.step(
        AppendEntries(
            term=1,
            src="a",
            dst="b",
            prev_index=0,
            prev_term=0,
            entries=[Entry(1, 1), conf_entry(1, 2, remove("c"), abc)],
            commit=1,
        )
    )
    assert b.conf_state == ConfState.of(["a", "b"]) and b.pending_conf_index == 2
    rd = b.ready()
    assert rd.conf_state == ConfState.of(["a", "b"])
    b.advance(rd)
    # A new leader (c, term 2) overwrites index 2: the removal is undone.
    b.step(AppendEntries(term=2, src="c", dst="b", prev_index=1, prev_term=1, entries=[Entry(2, 2)], commit=1))
    assert b.log.term_at(2) == 2
    assert b.conf_state == abc and b.pending_conf_index == 0
    assert b.ready().conf_state == abc


def test_truncation_returns_to_the_latest_remaining_conf_entry() -> None:
    abc = ConfState.of(ABC)
    one = abc.apply(add_learner("d"))
    b = RaftCore("b", ABC, config=CFG, rng=random.Random(0))
    b.step(
        AppendEntries(
            term=1,
            src="a",
            dst="b",
            prev_index=0,
            prev_term=0,
            entries=[conf_entry(1, 1, add_learner("d"), abc), Entry(1, 2), conf_entry(1, 3, remove("d"), one)],
            commit=2,
        )
    )
    assert b.conf_state == abc
    b.step(AppendEntries(term=2, src="c", dst="b", prev_index=2, prev_term=1, entries=[Entry(2, 3)], commit=2))
    assert b.conf_state == one and b.pending_conf_index == 1


def test_undecodable_conf_entry_changes_nothing() -> None:
    b = RaftCore("b", ABC, config=CFG, rng=random.Random(0))
    b.step(
        AppendEntries(
            term=1,
            src="a",
            dst="b",
            prev_index=0,
            prev_term=0,
            entries=[Entry(1, 1, ENTRY_CONF, b"\xc1junk")],
            commit=1,
        )
    )
    assert b.last_index == 1 and b.conf_state == ConfState.of(ABC) and b.pending_conf_index == 0


def test_conf_survives_snapshot_and_restart() -> None:
    net, leader = with_learner("d")
    change(net, "a", promote("d"))
    net.add("e")
    change(net, "a", add_learner("e"))
    want = ConfState.of([*ABC, "d"], ["e"])
    for node in ("a", "b", "d"):
        assert net[node].conf_state == want
    # b: restart from its log alone (no snapshot).
    assert net.restart("b").conf_state == want
    # a: snapshot in the middle (after the promotion, before the learner e), then restart.
    promoted_at = max(
        i
        for i, e in enumerate(net.stores["a"].entries, 1)
        if e.kind == ENTRY_CONF and decode_conf_entry(e.data).change == promote("d")
    )
    snap = leader.compact(promoted_at, b"")
    assert (snap.meta.voters, snap.meta.learners) == ([*ABC, "d"], [])
    store = net.stores["a"]
    store.snapshot, store.entries = snap, [e for e in store.entries if e.index > promoted_at]
    assert leader.conf_state == want
    assert net.restart("a").conf_state == want
    # d: snapshot at its last applied index (after everything), then restart.
    snap = net.compact("d")
    assert snap.meta.conf_state() == want
    assert net.restart("d").conf_state == want
    net.tick(3 * CFG.election_ticks)
    (lead,) = net.leaders()
    assert net[lead].conf_state == want


def test_snapshot_carries_the_conf_to_a_learner_that_needs_it() -> None:
    net = Net()
    leader = steady(net)
    for i in range(5):
        leader.propose([b"x%d" % i])
        net.drain()
    net.tick(1)
    net.compact("a")
    net.add("d")
    net.drain()
    change(net, "a", add_learner("d"))
    net.tick(2)
    snaps = of_type(net.sent, InstallSnapshot, "d")
    assert len(snaps) == 1 and snaps[0].snapshot.meta.conf_state() == ConfState.of(ABC)
    # The snapshot predates the learner; the conf entry after it (sent next) adds it.
    assert net["d"].conf_state == ConfState.of(ABC, ["d"])
    assert net.applied["d"] == net.applied["a"]
    assert ConfState.of(ABC, ["d"]) in net.confs["d"]


def test_conf_at_compaction_is_the_one_in_force_at_the_snapshot_index() -> None:
    net = Net()
    leader = steady(net)
    applied = leader.applied_index
    net.add("d")
    leader.propose_conf_change(add_learner("d"))  # appended, not applied
    assert leader.applied_index == applied
    snap = leader.compact(applied, b"")
    assert snap.meta.conf_state() == ConfState.of(ABC)  # not the uncommitted one
    assert leader.conf_state == ConfState.of(ABC, ["d"])


# -- learners (rule 14) ---------------------------------------------------------------------------


def test_learner_replicates_but_never_counts_toward_commit() -> None:
    net, leader = with_learner("d")
    net.stopped |= {"b", "c"}
    _, index = leader.propose([b"x"])
    net.drain()
    net.tick(1, nodes=["a", "d"])
    assert net["d"].last_index == index  # replicated to the learner
    assert leader.progress("d").match == index
    assert leader.commit_index < index  # but a and d are no majority of {a, b, c}


def test_learner_never_campaigns() -> None:
    net, leader = with_learner("d")
    net.isolate("d")
    net.tick(5 * CFG.election_ticks, nodes=["d"])
    d = net["d"]
    assert (d.role, d.term) == ("follower", leader.term)
    d.campaign()
    d.step(TimeoutNow(term=leader.term, src="a", dst="d"))
    assert (d.role, d.term) == ("follower", leader.term)
    assert of_type(net.sent, RequestVote) == [m for m in of_type(net.sent, RequestVote) if m.src != "d"]


def test_learner_answers_vote_requests_but_candidates_ignore_its_vote() -> None:
    net, leader = with_learner("d")
    d = net["d"]
    # d may have been promoted in the candidate's log without knowing it yet (rule 14): it answers.
    d.step(
        RequestVote(
            term=leader.term + 1,
            src="b",
            dst="d",
            last_index=leader.last_index,
            last_term=leader.last_term,
            transfer=True,
        )
    )
    (resp,) = of_type(d.ready().all_messages(), RequestVoteResp)
    assert resp.granted
    # A candidate counts only its own voters.
    b = RaftCore("b", ABC, config=RaftConfig(pre_vote=False), rng=random.Random(0))
    b.campaign()
    b.step(RequestVoteResp(term=b.term, src="d", dst="b", granted=True))
    b.step(RequestVoteResp(term=b.term, src="zz", dst="b", granted=True))
    assert b.role == "candidate"
    b.step(RequestVoteResp(term=b.term, src="c", dst="b", granted=True))
    assert b.role == "leader"


def test_learner_progress_is_visible_and_catch_up_needs_a_recent_answer() -> None:
    net, leader = with_learner("d")
    pr = leader.progress("d")
    assert pr is not None and pr.state == "replicate" and pr.match == leader.last_index
    net.stopped.add("d")
    net.tick(CFG.election_ticks)
    assert leader.is_caught_up("d")  # heard from within election_ticks
    net.tick(1)
    assert not leader.is_caught_up("d")
    net.stopped.discard("d")
    net.tick(1)
    assert leader.is_caught_up("d")
    assert leader.is_caught_up("a") and not leader.is_caught_up("zz")
    assert not net["b"].is_caught_up("d")  # leader only


def test_promote_is_refused_until_the_learner_caught_up() -> None:
    net = Net(config=RaftConfig(election_ticks=10, heartbeat_ticks=1, max_entries_per_msg=2))
    leader = steady(net)
    net.add("d")
    net.stopped.add("d")
    change(net, "a", add_learner("d"))
    for i in range(6):
        leader.propose([b"x%d" % i])
    net.drain()
    net.tick(1)
    before = snapshot_of(leader)
    with pytest.raises(LearnerNotCaughtUp) as err:
        leader.propose_conf_change(promote("d"))
    assert err.value.code == "learner_not_caught_up" and snapshot_of(leader) == before
    net.stopped.discard("d")
    net.tick(1)  # its first answer: still a probe, then a lagging replicate
    net.tick(4)
    assert leader.progress("d").match == leader.last_index
    _, index = change(net, "a", promote("d"))
    assert leader.conf_state == ConfState.of([*ABC, "d"])
    # d now counts: with b and c down, a and d are 2 of 4 -- no commit; with b, 3 of 4 -- commit.
    net.stopped |= {"b", "c"}
    _, index = leader.propose([b"y"])
    net.drain()
    assert leader.commit_index < index
    net.stopped.discard("b")
    net.tick(2)
    assert leader.commit_index >= index


def test_promoted_learner_can_be_elected() -> None:
    net, _ = with_learner("d")
    change(net, "a", promote("d"))
    net.stopped.add("a")
    net.tick(4 * CFG.election_ticks, nodes=["b", "c"])  # let b and c's lease run out, never d's timer
    net.elect("d")
    assert net["d"].conf_state == ConfState.of([*ABC, "d"])


# -- leader rules and refusals (rule 13) -------------------------------------------------------------


@pytest.mark.parametrize(
    "c, error",
    [
        (add_learner("b"), MemberExists),
        (add_learner("a"), MemberExists),
        (promote("zz"), UnknownMember),
        (remove("zz"), UnknownMember),
        (promote("b"), AlreadyVoter),
    ],
)
def test_invalid_changes_are_refused_and_change_nothing(c: ConfChange, error: type) -> None:
    net = Net()
    leader = steady(net)
    before = snapshot_of(leader)
    with pytest.raises(error) as err:
        leader.propose_conf_change(c)
    assert isinstance(err.value, ConfChangeRefused) and err.value.status == 409
    assert snapshot_of(leader) == before


def test_adding_an_existing_learner_is_refused() -> None:
    _, leader = with_learner("d")
    before = snapshot_of(leader)
    with pytest.raises(MemberExists):
        leader.propose_conf_change(add_learner("d"))
    assert snapshot_of(leader) == before


def test_removing_the_last_voter_is_refused() -> None:
    net = Net(["a"])
    leader = steady(net)
    before = snapshot_of(leader)
    with pytest.raises(LastVoter) as err:
        leader.propose_conf_change(remove("a"))
    assert err.value.code == "last_voter" and snapshot_of(leader) == before


def test_one_uncommitted_change_at_a_time() -> None:
    net = Net()
    leader = steady(net)
    net.add("d")
    net.add("e")
    net.stopped |= {"b", "c"}
    _, index = leader.propose_conf_change(add_learner("d"))
    net.drain()
    before = snapshot_of(leader)
    for c in (add_learner("e"), remove("b"), remove("d")):
        with pytest.raises(ConfChangeInProgress) as err:
            leader.propose_conf_change(c)
        assert err.value.code == "conf_change_in_progress"
    assert snapshot_of(leader) == before
    net.stopped -= {"b", "c"}
    net.tick(2)
    assert leader.commit_index >= index
    leader.propose_conf_change(add_learner("e"))


def test_a_new_leader_changes_nothing_before_committing_in_its_term() -> None:
    """Ongaro's 2015 fix: the new leader's first entry of its term must commit first."""
    net = Net()
    steady(net)
    net.drop = lambda m: isinstance(m, AppendEntries) and m.src == "b"  # b's no-op never arrives
    net["a"].transfer_leader("b")
    net.drain()
    b = net["b"]
    assert b.role == "leader"
    assert b.pending_conf_index == b.last_index > b.commit_index
    before = snapshot_of(b)
    with pytest.raises(ConfChangeInProgress):
        b.propose_conf_change(remove("c"))
    assert snapshot_of(b) == before
    net.drop = lambda m: False
    net.tick(2)
    assert b.commit_index == b.pending_conf_index
    b.propose_conf_change(remove("c"))


def test_conf_change_on_a_non_leader_raises_not_leader() -> None:
    core = RaftCore("a", ABC, rng=random.Random(0))
    with pytest.raises(NoLeader):
        core.propose_conf_change(add_learner("d"))
    core.step(Heartbeat(term=1, src="b", dst="a", commit=0))
    with pytest.raises(NotLeader) as err:
        core.propose_conf_change(add_learner("d"))
    assert err.value.leader_id == "b"
    with pytest.raises(ValueError):
        core.propose_conf_change(ConfChange("explode", "d"))  # type: ignore[arg-type]


# -- removal (rule 15) ---------------------------------------------------------------------------------


def test_removed_node_is_ignored_by_the_leader_from_the_append_on() -> None:
    net = Net()
    leader = steady(net)
    leader.propose_conf_change(remove("c"))
    assert leader.progress("c") is None and leader.voters == ["a", "b"]
    mark = len(net.sent)
    net.drain()
    for _ in range(3):
        leader.propose([b"x"])
        net.tick(1)
    assert [m for m in net.sent[mark:] if m.dst == "c" and m.src == "a"] == []
    # c's late answers are ignored.
    leader.step(AppendEntriesResp(term=leader.term, src="c", dst="a", success=True, index=1))
    assert leader.progress("c") is None


def test_commit_uses_the_new_quorum_once_a_removal_is_appended() -> None:
    net = Net()
    leader = steady(net)
    net.stopped.add("c")
    leader.propose_conf_change(remove("b"))
    net.drain()
    # Voters are {a, c}: b's ack no longer counts, so nothing commits without c.
    _, index = leader.propose([b"x"])
    net.drain()
    assert leader.commit_index < index
    net.stopped.discard("c")
    net.tick(2)
    assert leader.commit_index >= index


def test_removed_leader_leads_until_the_removal_commits_then_steps_down_for_good() -> None:
    net = Net()
    leader = steady(net)
    net.stopped.add("c")
    _, index = leader.propose_conf_change(remove("a"))
    assert leader.role == "leader" and leader.voters == ["b", "c"]
    net.drain()
    net.tick(2, nodes=["a", "b"])
    # b acked; a's own copy does not count any more: no commit without c.
    assert leader.progress("b").match >= index
    assert leader.role == "leader" and leader.commit_index < index
    leader.propose([b"while-removed"])  # it still leads, and serves
    net.stopped.discard("c")
    net.tick(1)
    assert leader.commit_index >= index
    assert (leader.role, leader.leader_id) == ("follower", None)
    mark = len(net.sent)
    net.tick(5 * CFG.election_ticks)
    assert net["a"].role == "follower" and all(m.src != "a" for m in of_type(net.sent[mark:], RequestVote))
    (new,) = net.leaders()
    assert new in ("b", "c") and net[new].voters == ["b", "c"]
    net[new].propose([b"after"])
    net.tick(2)
    assert net.applied["b"] == net.applied["c"] and net.applied["b"][-2:] == [b"while-removed", b"after"]


def test_removed_leader_steps_down_in_a_single_voter_handover() -> None:
    net = Net(["a"])
    leader = steady(net)
    net.add("b")
    change(net, "a", add_learner("b"))
    net.tick(2)
    change(net, "a", promote("b"))
    _, index = leader.propose_conf_change(remove("a"))
    net.drain()
    assert leader.role == "follower" and leader.commit_index >= index
    # b learns of the commit only once it leads (a left without telling): one election timeout.
    net.tick(3 * CFG.election_ticks)
    assert net.leaders() == ["b"] and net["b"].conf_state == ConfState.of(["b"])
    assert net["b"].commit_index > index


def test_leader_that_lost_leadership_before_its_removal_committed_campaigns_to_finish_it() -> None:
    """Rule 15's exception (found by the simulation): without it, no one could ever be elected.

    a and b; a removes itself (-> {b}) but b is down; a steps down (check quorum).  b comes
    back without the removal: in its configuration {a, b} it needs a's vote, which a, holding
    a longer log, refuses.  a, no voter of {b}, must still campaign: b elects it, a commits
    the removal, steps down, and b leads alone.
    """
    net = Net(["a", "b"])
    leader = steady(net)
    net.stopped.add("b")
    _, index = leader.propose_conf_change(remove("a"))
    net.drain()
    net.tick(2 * CFG.election_ticks, nodes=["a"])  # check quorum: b, its only voter, is silent
    assert leader.role == "follower" and leader.commit_index < index and leader.voters == ["b"]
    net.stopped.discard("b")
    assert net["b"].voters == ["a", "b"] and net["b"].last_index < index
    net.tick(6 * CFG.election_ticks)
    assert net.leaders() == ["b"] and net["b"].conf_state == ConfState.of(["b"])
    assert net["a"].role == "follower" and net["a"].commit_index >= index
    assert any(isinstance(m, RequestVote) and m.src == "a" and m.dst == "b" for m in net.sent)
    mark = len(net.sent)
    net.tick(5 * CFG.election_ticks)  # its removal known committed, a never campaigns again
    assert not any(isinstance(m, RequestVote) and m.src == "a" for m in net.sent[mark:])


def test_removed_follower_that_holds_its_removal_never_campaigns() -> None:
    abc = ConfState.of(ABC)
    c = RaftCore("c", ABC, config=CFG, rng=random.Random(0))
    c.step(
        AppendEntries(
            term=1, src="a", dst="c", prev_index=0, prev_term=0, entries=[conf_entry(1, 1, remove("c"), abc)], commit=1
        )
    )
    assert "c" not in c.voters
    for _ in range(10 * CFG.election_ticks):
        c.tick()
    c.campaign()
    assert c.role == "follower" and not of_type(c.ready().all_messages(), RequestVote)


def test_lagging_node_follows_a_leader_it_does_not_know_yet() -> None:
    """Rule 16: c missed the entries adding d; d leads; c must still take d's appends."""
    net = Net()
    leader = steady(net)
    net.add("d")
    net.isolate("c")
    change(net, "a", add_learner("d"))
    net.tick(2)
    change(net, "a", promote("d"))
    leader.transfer_leader("d")
    net.drain()
    net.tick(1)
    assert net.leaders() == ["d"]
    assert "d" not in net["c"].conf_state.members
    net.stopped.add("b")  # the quorum {a, c, d} of {a, b, c, d} needs c
    net.heal()
    _, index = net["d"].propose([b"x"])
    net.tick(3)
    assert net["c"].conf_state == ConfState.of([*ABC, "d"])
    assert net["d"].commit_index >= index and net.applied["c"] == net.applied["d"]


# -- leadership transfer (rule 17) -----------------------------------------------------------------------


def test_transfer_brings_the_target_up_to_date_then_sends_timeout_now() -> None:
    net = Net()
    leader = steady(net)
    net.isolate("b")
    for i in range(3):
        leader.propose([b"x%d" % i])
    net.drain()
    net.tick(1)
    old_term = leader.term
    leader.transfer_leader("b")
    assert leader.transferring_to == "b"
    rd = net.process("a")
    assert not of_type(rd.all_messages(), TimeoutNow)  # b lags
    with pytest.raises(TransferInProgress) as err:
        leader.propose([b"refused"])
    assert err.value.leader_id == "b" and err.value.code == "transfer_in_progress"
    with pytest.raises(TransferInProgress):
        leader.propose_conf_change(remove("c"))
    net.heal()
    net.tick(2)
    (tn,) = of_type(net.sent, TimeoutNow)
    assert tn.dst == "b" and tn.term == old_term
    assert net.leaders() == ["b"] and net["b"].term == old_term + 1
    assert net["a"].leader_id == "b" and net["a"].transferring_to is None
    assert net.applied["b"][-3:] == [b"x0", b"x1", b"x2"]


def test_caught_up_target_gets_timeout_now_at_once_and_wins_past_the_lease() -> None:
    net = Net()
    leader = steady(net)
    leader.transfer_leader("c")
    rd = net.process("a")
    (tn,) = of_type(rd.all_messages(), TimeoutNow)
    assert tn.dst == "c"
    net.drain()
    assert net.leaders() == ["c"]
    votes = [m for m in of_type(net.sent, RequestVote) if m.src == "c"]
    assert votes and all(m.transfer and not m.pre_vote for m in votes)


def test_transfer_is_abandoned_after_an_election_timeout() -> None:
    net = Net()
    leader = steady(net)
    net.stopped.add("b")
    leader.propose([b"x"])
    net.drain()
    leader.transfer_leader("b")
    net.tick(CFG.election_ticks - 1)
    assert leader.transferring_to == "b"
    with pytest.raises(TransferInProgress):
        leader.propose([b"y"])
    net.tick(1)
    assert leader.transferring_to is None and leader.role == "leader"
    leader.propose([b"y"])
    net.stopped.discard("b")
    net.tick(3)
    assert net.leaders() == ["a"] and not of_type(net.sent, TimeoutNow)


def test_transfer_target_rules() -> None:
    net, leader = with_learner("d")
    before = snapshot_of(leader)
    for target in ("d", "zz"):
        with pytest.raises(NotAVoter) as err:
            leader.transfer_leader(target)
        assert err.value.code == "not_a_voter" and err.value.status == 409
    leader.transfer_leader("a")  # ourselves: nothing to do
    assert snapshot_of(leader) == before
    net.stopped.add("b")
    leader.transfer_leader("b")
    leader.transfer_leader("b")  # the same again: fine
    with pytest.raises(TransferInProgress):
        leader.transfer_leader("c")
    assert leader.transferring_to == "b"
    with pytest.raises(NotLeader):
        net["c"].transfer_leader("a")


def test_reads_are_served_during_a_transfer() -> None:
    net = Net()
    leader = steady(net)
    net.stopped.add("b")
    leader.transfer_leader("b")
    leader.read_index(1)
    net.drain()
    assert leader.transferring_to == "b"
    assert [r.ctx for r in net.read_states["a"]] == [1]


def test_timeout_now_on_a_non_voter_does_nothing() -> None:
    net, leader = with_learner("d")
    net["d"].step(TimeoutNow(term=leader.term, src="a", dst="d"))
    assert net["d"].role == "follower" and not net["d"].has_ready()
