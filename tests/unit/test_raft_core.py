"""RaftCore behaviour, one rule per test (paper = Ongaro & Ousterhout 2014,
thesis = Ongaro 2014).  ``Net`` steps cores in lockstep: every Ready is
persisted into a tiny in-memory store, its messages are queued and delivered,
its committed entries applied to a list, then advanced."""

from __future__ import annotations

import random

import pytest
from raft_net import ABC, CFG, Net, Store, of_type

from rakit.errors import NoLeader, NotLeader
from rakit.raft.config import RaftConfig
from rakit.raft.core import RaftCore
from rakit.raft.messages import (
    ENTRY_NOOP,
    AnyMessage,
    AppendEntries,
    AppendEntriesResp,
    Entry,
    HardState,
    Heartbeat,
    HeartbeatResp,
    InstallSnapshot,
    ReadState,
    RequestVote,
    RequestVoteResp,
    Snapshot,
    TimeoutNow,
)


def log_of(core: RaftCore) -> list[tuple[int, int]]:
    return [(e.index, e.term) for e in core.log.slice(core.first_index, core.last_index + 1)]


def restarted(
    node: str, term: int, terms: list[int], *, vote: str | None = None, commit: int = 0, config: RaftConfig = CFG
) -> RaftCore:
    """A core restarted with a log whose entry i has term terms[i-1]."""
    entries = [Entry(t, i + 1, data=f"{node}{i + 1}".encode()) for i, t in enumerate(terms)]
    return RaftCore(
        node, ABC, config=config, rng=random.Random(node), hard_state=HardState(term, vote, commit), entries=entries
    )


# -- elections ---------------------------------------------------------------------


def test_single_node_campaign_self_elects_and_commits_noop_paper_5_2() -> None:
    core = RaftCore("a", ["a"], rng=random.Random(1))
    core.campaign()
    assert (core.role, core.term, core.leader_id) == ("leader", 1, "a")
    rd = core.ready()
    assert rd.hard_state == HardState(1, "a", 0)
    assert [(e.index, e.term, e.kind) for e in rd.entries] == [(1, 1, ENTRY_NOOP)]
    assert rd.soft_state is not None and rd.soft_state.role == "leader"
    core.advance(rd)
    assert core.commit_index == 1  # its own disk is the majority
    rd = core.ready()
    assert rd.hard_state == HardState(1, "a", 1)
    assert [e.index for e in rd.committed_entries] == [1]
    core.advance(rd)
    assert core.applied_index == 1 and not core.has_ready()


def test_single_node_elects_itself_by_ticking_through_pre_vote() -> None:
    core = RaftCore("a", ["a"], rng=random.Random(1))
    for _ in range(2 * CFG.election_ticks):
        core.tick()
    assert core.role == "leader" and core.term == 1


def test_three_nodes_elect_exactly_one_leader_paper_5_2() -> None:
    for seed in range(10):
        net = Net(seed=seed)
        net.tick(3 * CFG.election_ticks)
        assert len(net.leaders()) == 1
        leader = net.leaders()[0]
        assert all(net[n].leader_id == leader for n in ABC)
        assert len({net[n].term for n in ABC}) == 1


def test_split_vote_resolves_by_randomized_timeouts_paper_5_2() -> None:
    cfg = RaftConfig(election_ticks=10, pre_vote=False)
    net = Net(config=cfg, seed=3)
    net.stopped.add("a")
    net["b"].campaign()
    net["c"].campaign()  # both at term 1, each voted for itself: nobody can win
    net.drain()
    assert net.leaders() == []
    net.tick(4 * cfg.election_ticks)
    assert len(net.leaders()) == 1
    assert net[net.leaders()[0]].term > 1


def test_election_timeout_is_randomized_in_range() -> None:
    seen = set()
    for seed in range(50):
        core = RaftCore("a", ABC, config=RaftConfig(pre_vote=False), rng=random.Random(seed))
        ticks = 0
        while core.role == "follower":
            core.tick()
            ticks += 1
        seen.add(ticks)
    assert min(seen) >= 10 and max(seen) < 20 and len(seen) > 3


def test_same_seed_same_messages() -> None:
    def trace(seed: int) -> list[AnyMessage]:
        net = Net(seed=seed)
        net.tick(30)
        net[net.leaders()[0]].propose([b"x"])
        net.tick(3)
        return net.sent

    assert trace(7) == trace(7)


# -- voting rules ---------------------------------------------------------------------


def vote_req(src: str, dst: str, term: int, last_index: int = 0, last_term: int = 0, **kw) -> RequestVote:
    return RequestVote(term=term, src=src, dst=dst, last_index=last_index, last_term=last_term, **kw)


def test_one_vote_per_term_paper_5_2() -> None:
    core = RaftCore("a", ABC, rng=random.Random(0))
    core.step(vote_req("b", "a", 1))
    core.step(vote_req("c", "a", 1))
    core.step(vote_req("b", "a", 1))  # a repeated request from the same candidate is granted again
    answers = of_type(core.ready().all_messages(), RequestVoteResp)
    assert [(m.dst, m.granted) for m in answers] == [("b", True), ("c", False), ("b", True)]
    assert core.vote == "b" and core.term == 1


def test_vote_denied_to_candidate_with_stale_log_paper_5_4_1() -> None:
    core = restarted("a", 2, [1, 2])
    core.step(vote_req("b", "a", 3, last_index=5, last_term=1))  # longer but older
    core.step(vote_req("c", "a", 3, last_index=1, last_term=2))  # same term, shorter
    answers = of_type(core.ready().all_messages(), RequestVoteResp)
    assert [m.granted for m in answers] == [False, False]
    assert core.term == 3 and core.vote is None


def test_leader_lease_ignores_higher_term_vote_requests_thesis_4_2_3() -> None:
    net = Net()
    net.elect("a")
    b = net["b"]
    term = b.term
    b.step(vote_req("c", "b", term + 1, last_index=99, last_term=term))
    b.step(vote_req("c", "b", term + 1, last_index=99, last_term=term, pre_vote=True))
    assert b.term == term and b.vote == "a"
    assert of_type(b.ready().all_messages(), RequestVoteResp) == []
    # A leadership transfer overrides the lease.
    b.step(vote_req("c", "b", term + 1, last_index=99, last_term=term, transfer=True))
    assert b.term == term + 1 and b.vote == "c"


def test_pre_vote_request_changes_no_state_thesis_9_6() -> None:
    core = restarted("a", 5, [5], vote="b")
    core.step(vote_req("c", "a", 6, last_index=1, last_term=5, pre_vote=True))
    (resp,) = of_type(core.ready().all_messages(), RequestVoteResp)
    assert resp.granted and resp.pre_vote and resp.term == 6
    assert (core.term, core.vote, core.role) == (5, "b", "follower")


def test_lower_term_pre_vote_is_rejected_with_our_term() -> None:
    core = restarted("a", 5, [5])
    core.step(vote_req("c", "a", 3, pre_vote=True))
    (resp,) = of_type(core.ready().all_messages(), RequestVoteResp)
    assert (resp.granted, resp.term) == (False, 5)


def test_pre_candidate_does_not_bump_its_term_thesis_9_6() -> None:
    core = restarted("a", 4, [4])
    for _ in range(2 * CFG.election_ticks):
        core.tick()
    assert core.role == "pre_candidate" and core.term == 4
    reqs = of_type(core.ready().all_messages(), RequestVote)
    assert {m.dst for m in reqs} == {"b", "c"}
    assert all(m.pre_vote and m.term == 5 for m in reqs)


def test_partitioned_node_rejoins_without_disrupting_leader_thesis_9_6() -> None:
    net = Net()
    net.elect("a")
    term = net["a"].term
    net.isolate("c")
    net.tick(10 * CFG.election_ticks)
    assert net["c"].term == term and net["c"].role == "pre_candidate"
    net.heal()
    net.tick(3 * CFG.election_ticks)
    assert net.leaders() == ["a"]
    assert all(net[n].term == term for n in ABC)
    assert net["c"].leader_id == "a"


def test_timeout_now_starts_an_election_at_once_past_the_lease() -> None:
    net = Net()
    net.elect("a")
    term = net["a"].term
    net["b"].step(TimeoutNow(term=term, src="a", dst="b"))
    assert net["b"].role == "candidate" and net["b"].term == term + 1
    rd = net.process("b")
    assert all(m.transfer and not m.pre_vote for m in of_type(rd.all_messages(), RequestVote))
    net.drain()
    assert net.leaders() == ["b"]


# -- terms and stale leaders -------------------------------------------------------------


def test_higher_term_append_makes_candidate_follow_sender_paper_5_1() -> None:
    core = RaftCore("a", ABC, config=RaftConfig(pre_vote=False), rng=random.Random(0))
    core.campaign()
    core.step(Heartbeat(term=5, src="c", dst="a", commit=0))
    assert (core.role, core.term, core.leader_id, core.vote) == ("follower", 5, "c", None)


def test_stale_leader_resuming_is_stepped_down_by_higher_term_resp() -> None:
    """An old leader resumed after SIGSTOP learns the new term from an AppendEntriesResp."""
    net = Net()
    net.elect("a")
    old_term = net["a"].term
    net.stopped.add("a")
    net.tick(3 * CFG.election_ticks)
    (new_leader,) = net.leaders()
    assert new_leader != "a" and net[new_leader].term > old_term
    net.stopped.discard("a")
    assert net["a"].role == "leader"
    net.tick(1)  # its heartbeat is answered with the new term
    assert net["a"].role == "follower" and net["a"].term == net[new_leader].term
    net.tick(2)
    assert net["a"].leader_id == new_leader
    with pytest.raises(NotLeader) as err:
        net["a"].propose([b"x"])
    assert err.value.leader_id == new_leader


def test_messages_for_others_unknown_senders_and_stale_terms_are_ignored() -> None:
    net = Net()
    net.elect("a")
    b = net["b"]
    before = (b.term, b.role, b.leader_id, b.last_index)
    b.step(Heartbeat(term=9, src="a", dst="c", commit=0))  # not for us
    # A response from a sender outside the configuration.  (Its *requests* are stepped: it
    # may be a member added in entries we lack -- see test_raft_membership.py, rule 16.)
    b.step(AppendEntriesResp(term=9, src="zz", dst="b", success=True, index=1))
    b.step(RequestVoteResp(term=0, src="c", dst="b", granted=True))  # stale
    assert (b.term, b.role, b.leader_id, b.last_index) == before
    assert not b.has_ready()


def test_not_leader_errors() -> None:
    core = RaftCore("a", ABC, rng=random.Random(0))
    with pytest.raises(NoLeader):
        core.propose([b"x"])
    core.step(Heartbeat(term=1, src="b", dst="a", commit=0))
    with pytest.raises(NotLeader) as err:
        core.read_index(1)
    assert err.value.leader_id == "b" and not isinstance(err.value, NoLeader)


# -- check quorum -------------------------------------------------------------------------


def test_isolated_leader_steps_down_after_election_timeout_check_quorum() -> None:
    """A leader steps down at the first check-quorum round with no majority heard.

    Rounds happen every election_ticks; the round right after the isolation
    still counts the answers from before it, so the step-down comes within
    two election timeouts of the last contact, and no earlier than one."""
    net = Net()
    net.elect("a")
    net.isolate("a")
    net.tick(CFG.election_ticks - 1, nodes=["a"])
    assert net["a"].role == "leader"
    net.tick(CFG.election_ticks + 1, nodes=["a"])
    assert net["a"].role == "follower" and net["a"].leader_id is None


def test_connected_leader_keeps_leading() -> None:
    net = Net()
    net.elect("a")
    net.isolate("c")
    net.tick(10 * CFG.election_ticks, nodes=["a", "b"])
    assert net["a"].role == "leader"


# -- replication and commit -------------------------------------------------------------------


def test_proposals_replicate_commit_and_apply_everywhere_paper_5_3() -> None:
    net = Net()
    leader = net.elect("a")
    term, first = leader.propose([b"x", b"y"])
    assert (term, first) == (leader.term, 2)  # index 1 is the leader's noop
    net.drain()
    net.tick(1)  # heartbeats carry the commit index to followers
    assert all(net.applied[n] == [b"x", b"y"] for n in ABC)
    assert all(net[n].commit_index == 3 for n in ABC)


def test_leader_commits_only_entries_of_its_own_term_paper_5_4_2_figure_8() -> None:
    """Figure 8: an old-term entry on a majority is not committed by counting replicas."""
    voters = ["s1", "s2", "s3", "s4", "s5"]
    s1 = RaftCore(
        "s1",
        voters,
        config=RaftConfig(pre_vote=False),
        rng=random.Random(0),
        hard_state=HardState(3, None, 1),
        entries=[Entry(1, 1), Entry(2, 2)],
    )
    s1.campaign()  # term 4
    for voter in ["s2", "s3"]:
        s1.step(RequestVoteResp(term=4, src=voter, dst="s1", granted=True))
    assert s1.role == "leader" and s1.log.term_at(3) == 4  # noop at index 3
    s1.advance(s1.ready())  # persisted locally
    for voter in ["s2", "s3"]:
        s1.step(AppendEntriesResp(term=4, src=voter, dst="s1", success=True, index=2))
    assert s1.commit_index == 1  # index 2 (term 2) is on s1, s2, s3 but not committed
    s1.step(AppendEntriesResp(term=4, src="s2", dst="s1", success=True, index=3))
    assert s1.commit_index == 1  # index 3 is on s1 and s2 only
    s1.step(AppendEntriesResp(term=4, src="s3", dst="s1", success=True, index=3))
    assert s1.commit_index == 3  # committing the noop commits index 2 indirectly


def test_figure_8_uncommitted_old_entry_may_be_overwritten() -> None:
    """(d) of Figure 8: s5 (log [1, 3]) wins term 5 and overwrites index 2 of term 2."""
    voters = ["s1", "s2", "s3", "s4", "s5"]
    net = Net(voters, config=RaftConfig(pre_vote=False))
    logs = {"s1": [1, 2, 4], "s2": [1, 2], "s3": [1, 2], "s4": [1], "s5": [1, 3]}
    for n, terms in logs.items():
        net.stores[n] = Store(HardState(4, None, 1), None, [Entry(t, i + 1) for i, t in enumerate(terms)])
        net.restart(n)
    net.stopped.add("s1")
    net.elect("s5")
    net.tick(1)
    for n in ["s2", "s3", "s4"]:
        assert log_of(net[n])[:2] == [(1, 1), (2, 3)]


def test_conflicting_follower_log_is_repaired_paper_5_3() -> None:
    net = Net()
    net.elect("a")
    net["a"].propose([b"x"])
    net.drain()
    net.isolate("a")
    net["a"].propose([b"lost1", b"lost2"])  # only ever on a
    net.drain()
    net.tick(3 * CFG.election_ticks, nodes=["b", "c"])
    (new_leader,) = [n for n in net.leaders() if n != "a"]
    net[new_leader].propose([b"z"])
    net.drain()
    net.heal()
    net.tick(2 * CFG.election_ticks)
    assert log_of(net["a"]) == log_of(net[new_leader])
    assert all(net.applied[n] == [b"x", b"z"] for n in ABC)
    assert net.stores["a"].entries == net.stores[new_leader].entries  # rewritten on disk too


def test_rejection_hint_skips_a_whole_conflicting_term() -> None:
    leader_log = [1] * 10 + [3] * 10
    a = restarted("a", 3, leader_log, config=RaftConfig(pre_vote=False))
    c = restarted("c", 2, [1] * 10 + [2] * 50, config=RaftConfig(pre_vote=False))
    net = Net(config=RaftConfig(pre_vote=False))
    net.cores.update(a=a, b=restarted("b", 3, leader_log), c=c)
    net.elect("a")
    net.tick(1)
    rejections = [m for m in of_type(net.sent, AppendEntriesResp) if m.src == "c" and not m.success]
    assert len(rejections) == 1
    assert (rejections[0].hint_index, rejections[0].hint_term) == (11, 2)
    assert log_of(net["c"]) == log_of(net["a"])


def test_rejection_backoff_terminates_against_many_terms() -> None:
    """The leader always moves next back and never below match + 1."""
    leader_log = [1, 2, 3, 4, 5, 6, 7, 8]
    follower_log = [1, 1, 2, 2, 3, 3, 4, 4, 4, 4, 4, 4]
    net = Net(config=RaftConfig(pre_vote=False))
    net.cores.update(
        a=restarted("a", 8, leader_log), b=restarted("b", 8, leader_log), c=restarted("c", 4, follower_log)
    )
    net.elect("a")
    net.tick(1)
    rejections = [m for m in of_type(net.sent, AppendEntriesResp) if m.src == "c" and not m.success]
    assert 1 <= len(rejections) <= 4
    assert log_of(net["c"]) == log_of(net["a"])


def test_follower_acks_its_commit_for_append_below_commit() -> None:
    core = restarted("b", 2, [1, 1, 2, 2], commit=3)
    core.step(AppendEntries(term=2, src="a", dst="b", prev_index=1, prev_term=1, entries=[Entry(1, 2)], commit=3))
    (resp,) = of_type(core.ready().all_messages(), AppendEntriesResp)
    assert resp.success and resp.index == 3


def test_follower_reject_hint_when_prev_is_past_its_log() -> None:
    core = restarted("b", 2, [1, 2])
    core.step(AppendEntries(term=3, src="a", dst="b", prev_index=9, prev_term=3, entries=[], commit=0))
    (resp,) = of_type(core.ready().all_messages(), AppendEntriesResp)
    assert (resp.success, resp.index, resp.hint_index, resp.hint_term) == (False, 9, 2, 2)


def test_leader_counts_its_own_log_only_once_persisted() -> None:
    net = Net()
    leader = steady(net)
    leader.propose([b"x"])
    rd = leader.ready()  # not yet persisted by the leader
    leader.step(AppendEntriesResp(term=leader.term, src="b", dst="a", success=True, index=2))
    assert leader.commit_index == 1  # b has it, but a's own copy is not on disk yet
    leader.advance(rd)
    assert leader.commit_index == 2
    assert leader.ready().hard_state.commit == 2


def test_vote_is_in_the_same_ready_as_its_response() -> None:
    """Messages go out after the Ready is persisted, so the vote is durable first."""
    core = RaftCore("a", ABC, rng=random.Random(0))
    core.step(vote_req("b", "a", 1))
    rd = core.ready()
    assert rd.hard_state == HardState(1, "b", 0)
    assert of_type(rd.all_messages(), RequestVoteResp)[0].granted


def test_follower_applies_committed_entries_only_once_stable() -> None:
    core = RaftCore("b", ABC, rng=random.Random(0))
    core.step(
        AppendEntries(term=1, src="a", dst="b", prev_index=0, prev_term=0, entries=[Entry(1, 1), Entry(1, 2)], commit=2)
    )
    rd = core.ready()
    assert [e.index for e in rd.entries] == [1, 2] and rd.committed_entries == []
    assert rd.hard_state == HardState(1, None, 2)
    core.advance(rd)
    assert [e.index for e in core.ready().committed_entries] == [1, 2]


def test_committed_entries_per_ready_are_bounded() -> None:
    core = restarted("a", 1, [1] * 10, commit=10, config=RaftConfig(max_committed_per_ready=4))
    sizes = []
    while core.has_ready():
        rd = core.ready()
        sizes.append(len(rd.committed_entries))
        core.advance(rd)
    assert sizes == [4, 4, 2] and core.applied_index == 10


def test_heartbeat_commit_is_capped_by_follower_match() -> None:
    net = Net()
    leader = steady(net)
    net.isolate("c")
    leader.propose([b"x"])
    net.drain()
    assert leader.commit_index == 2 and leader.progress("c").match == 1
    net.tick(1, nodes=["a"])
    beat = of_type(net.sent, Heartbeat, "c")[-1]
    assert beat.commit == 1


def test_follower_commit_from_heartbeat_never_passes_what_the_leader_confirmed() -> None:
    """Rule 8: a Heartbeat commits only what an AppendEntries of this leader matched."""
    core = restarted("b", 1, [1, 1])
    core.step(Heartbeat(term=1, src="a", dst="b", commit=5))
    assert core.commit_index == 0  # nothing confirmed yet
    core.step(AppendEntries(term=1, src="a", dst="b", prev_index=1, prev_term=1, entries=[], commit=0))
    core.step(Heartbeat(term=1, src="a", dst="b", commit=5))
    assert core.commit_index == 1
    core.step(AppendEntries(term=1, src="a", dst="b", prev_index=2, prev_term=1, entries=[], commit=0))
    core.step(Heartbeat(term=1, src="a", dst="b", commit=5))
    assert core.commit_index == 2  # and never past its log


def test_follower_never_commits_stale_entries_on_a_heartbeat_after_a_lost_tail() -> None:
    """The leader's match is stale (our disk lost acknowledged records); what is left at those
    indexes is an older term's: the heartbeat's commit must not reach them."""
    core = restarted("b", 3, [1, 2, 2])  # the leader of term 3 holds (2, 3), (3, 3) there
    core.step(Heartbeat(term=3, src="a", dst="b", commit=3))
    assert core.commit_index == 0
    core.step(AppendEntries(term=3, src="a", dst="b", prev_index=3, prev_term=3, entries=[], commit=3))
    (resp,) = of_type(core.ready().all_messages(), AppendEntriesResp)
    assert not resp.success
    core.step(Heartbeat(term=3, src="a", dst="b", commit=3))
    assert core.commit_index == 0


def test_what_a_leader_confirmed_is_forgotten_in_a_new_term() -> None:
    core = restarted("b", 1, [1, 1])
    core.step(AppendEntries(term=1, src="a", dst="b", prev_index=2, prev_term=1, entries=[], commit=0))
    core.step(Heartbeat(term=2, src="c", dst="b", commit=2))
    assert core.commit_index == 0
    core.step(AppendEntries(term=2, src="c", dst="b", prev_index=1, prev_term=1, entries=[], commit=0))
    core.step(Heartbeat(term=2, src="c", dst="b", commit=2))
    assert core.commit_index == 1


def steady(net: Net) -> RaftCore:
    """An elected leader whose followers are all in replicate state, quiet."""
    leader = net.elect("a")
    net.tick(1)
    assert all(leader.progress(p).state == "replicate" for p in ["b", "c"])
    return leader


def test_batching_many_proposals_one_append_per_follower() -> None:
    net = Net()
    leader = steady(net)
    for i in range(5):
        leader.propose([f"cmd{i}".encode()])
    rd = net.process("a")
    appends = of_type(rd.all_messages(), AppendEntries)
    assert sorted(m.dst for m in appends) == ["b", "c"]
    assert all(len(m.entries) == 5 for m in appends)
    net.drain()
    net.tick(1)
    assert net.applied["b"] == [f"cmd{i}".encode() for i in range(5)]


def test_pipelining_sends_before_acks_within_inflight_window() -> None:
    net = Net(config=RaftConfig(max_inflight=3))
    leader = steady(net)
    held: list[AnyMessage] = []
    for i in range(5):
        leader.propose([f"cmd{i}".encode()])
        rd = leader.ready()
        held += rd.all_messages()
        leader.advance(rd)
    to_b = of_type(held, AppendEntries, "b")
    assert len(to_b) == 3  # three in flight before any answer, then the window is full
    assert [m.prev_index for m in to_b] == [1, 2, 3]
    assert leader.progress("b").inflights.full()
    # An ack frees the window: the rest goes out in one message.
    leader.step(AppendEntriesResp(term=leader.term, src="b", dst="a", success=True, index=3))
    (more,) = of_type(leader.ready().all_messages(), AppendEntries, "b")
    assert [e.index for e in more.entries] == [5, 6]


def test_bounds_per_append_message_and_oversize_entry_alone() -> None:
    net = Net(config=RaftConfig(max_entries_per_msg=2, max_bytes_per_msg=10))
    leader = steady(net)
    leader.propose([b"x" * 50, b"a", b"b", b"c"])
    to_b = of_type(leader.ready().all_messages(), AppendEntries, "b")
    assert [len(m.entries) for m in to_b] == [1, 2, 1]


def test_probe_sends_one_append_until_answered() -> None:
    net = Net()
    net.isolate("c")
    leader = net.elect("a")
    for _ in range(5):
        leader.propose([b"x"])
        net.tick(1, nodes=["a"])
    to_c = of_type(net.sent, AppendEntries, "c")
    assert len(to_c) == 1  # the first probe; heartbeats go unanswered
    assert leader.progress("c").state == "probe"
    net.heal()
    net.tick(2)
    assert leader.progress("c").state == "replicate"
    assert log_of(net["c"]) == log_of(leader)


def test_stale_and_duplicate_responses_are_harmless() -> None:
    net = Net()
    leader = steady(net)
    leader.propose([b"x"])
    net.drain()
    pr = leader.progress("b")
    state = (pr.state, pr.match, pr.next)
    t = leader.term
    leader.step(AppendEntriesResp(term=t, src="b", dst="a", success=True, index=1))  # old ack
    leader.step(AppendEntriesResp(term=t, src="b", dst="a", success=False, index=0, hint_index=0))
    leader.step(AppendEntriesResp(term=t, src="b", dst="a", success=True, index=99))  # beyond our log
    assert (pr.state, pr.match, pr.next) == state
    assert of_type(leader.ready().all_messages(), AppendEntries) == []


# -- snapshots --------------------------------------------------------------------------------


def test_far_behind_follower_gets_snapshot_and_catches_up_paper_7() -> None:
    net = Net()
    leader = net.elect("a")
    net.isolate("c")
    for i in range(20):
        leader.propose([f"cmd{i}".encode()])
        net.drain()
    snap = net.compact("a")
    assert leader.first_index == snap.meta.index + 1 > net["c"].last_index + 1
    leader.propose([b"after"])
    net.drain()
    net.heal()
    net.tick(3)
    assert len(of_type(net.sent, InstallSnapshot, "c")) == 1
    assert net.stores["c"].snapshot == snap
    assert net["c"].first_index == snap.meta.index + 1
    assert log_of(net["c"]) == log_of(leader)
    assert net.applied["c"] == net.applied["a"] == [f"cmd{i}".encode() for i in range(20)] + [b"after"]
    assert leader.progress("c").state == "replicate"


def test_snapshot_is_resent_after_two_election_timeouts_without_answer() -> None:
    net = Net()
    leader = net.elect("a")
    net.isolate("c")
    for _ in range(5):
        leader.propose([b"x"])
        net.drain()
    net.compact("a")
    net.cut_links.discard(("c", "a"))  # c can answer heartbeats, but never gets a snapshot
    net.drop = lambda m: isinstance(m, InstallSnapshot)
    net.cut_links.discard(("a", "c"))
    net.tick(1)
    assert len(of_type(net.sent, InstallSnapshot, "c")) == 1
    net.tick(2 * CFG.election_ticks - 1)
    assert len(of_type(net.sent, InstallSnapshot, "c")) == 1
    net.tick(2)
    assert len(of_type(net.sent, InstallSnapshot, "c")) == 2


def test_follower_with_snapshots_last_entry_keeps_its_suffix() -> None:
    core = restarted("b", 1, [1] * 10, commit=3)
    snap = Snapshot(_meta(5, 1), b"state")
    core.step(InstallSnapshot(term=1, src="a", dst="b", snapshot=snap))
    rd = core.ready()
    assert rd.snapshot is None
    assert (core.commit_index, core.last_index) == (5, 10)
    (resp,) = of_type(rd.all_messages(), AppendEntriesResp)
    assert resp.success and resp.index == 5


def test_follower_already_committed_past_snapshot_acks_commit() -> None:
    core = restarted("b", 1, [1] * 10, commit=8)
    core.step(InstallSnapshot(term=1, src="a", dst="b", snapshot=Snapshot(_meta(5, 1), b"")))
    (resp,) = of_type(core.ready().all_messages(), AppendEntriesResp)
    assert resp.success and resp.index == 8 and core.last_index == 10


def test_follower_restores_conflicting_snapshot() -> None:
    core = restarted("b", 1, [1] * 10, commit=2)
    snap = Snapshot(_meta(7, 2), b"state")
    core.step(InstallSnapshot(term=2, src="a", dst="b", snapshot=snap))
    rd = core.ready()
    assert rd.snapshot is snap and rd.committed_entries == []
    assert (core.last_index, core.commit_index) == (7, 7)
    core.advance(rd)
    assert core.applied_index == 7 and core.first_index == 8


def _meta(index: int, term: int):
    from rakit.raft.messages import SnapshotMeta

    return SnapshotMeta(index, term, list(ABC))


# -- ReadIndex --------------------------------------------------------------------------------


def test_read_index_confirmed_only_after_majority_acks_ctx_thesis_6_4() -> None:
    net = Net()
    leader = steady(net)
    leader.read_index(7)
    rd = leader.ready()
    beats = of_type(rd.all_messages(), Heartbeat)
    assert sorted(m.dst for m in beats) == ["b", "c"] and all(m.ctx == 7 for m in beats)
    assert rd.read_states == []
    leader.advance(rd)
    t = leader.term
    leader.step(HeartbeatResp(term=t, src="b", dst="a", ctx=6))  # another round's ack
    assert not leader.ready().read_states
    leader.step(HeartbeatResp(term=t, src="b", dst="a", ctx=7))
    assert leader.ready().read_states == [ReadState(7, leader.commit_index)]


def test_read_index_held_until_leader_commits_in_its_term() -> None:
    """Thesis 6.4 step 1: a fresh leader's commit index may be stale until its noop commits."""
    net = Net()
    leader = net["a"]
    leader.campaign()
    net.process("a")
    net.deliver()  # vote requests
    net.process("b")
    net.process("c")
    net.deliver()  # votes
    assert leader.role == "leader" and leader.commit_index == 0
    leader.read_index(1)
    rd = net.process("a")
    assert [m for m in of_type(rd.all_messages(), Heartbeat) if m.ctx == 1] == []
    assert rd.read_states == []
    net.drain()
    assert net.read_states["a"] == [ReadState(1, 1)]  # the index of the committed noop


def test_read_index_dropped_on_step_down() -> None:
    net = Net()
    leader = steady(net)
    old_term = leader.term
    net.isolate("a")
    leader.read_index(5)
    net.drain()
    net.tick(2 * CFG.election_ticks, nodes=["a"])
    assert leader.role == "follower"
    assert net.process("a").soft_state is None  # already reported by an earlier Ready
    # A late ack of the dropped round confirms nothing.
    leader.step(HeartbeatResp(term=old_term, src="b", dst="a", ctx=5))
    net.heal()
    net.tick(3 * CFG.election_ticks)
    assert net.read_states["a"] == []


def test_step_down_is_reported_in_soft_state() -> None:
    net = Net()
    leader = steady(net)
    leader.step(AppendEntriesResp(term=leader.term + 1, src="b", dst="a", success=False, index=0))
    rd = leader.ready()
    assert rd.soft_state is not None and rd.soft_state.role == "follower"
    assert rd.hard_state is not None and rd.hard_state.term == leader.term


def test_read_index_single_voter_confirms_at_once() -> None:
    core = RaftCore("a", ["a"], rng=random.Random(0))
    core.campaign()
    core.read_index(3)  # held: the noop is not committed yet
    rd = core.ready()
    assert rd.read_states == []
    core.advance(rd)
    rd = core.ready()
    assert rd.read_states == [ReadState(3, 1)]
    core.advance(rd)
    core.read_index(4)
    assert core.ready().read_states == [ReadState(4, 1)]


def test_later_ack_confirms_earlier_reads_too() -> None:
    net = Net()
    leader = steady(net)
    leader.read_index(1)
    leader.read_index(2)
    rd = leader.ready()
    assert {m.ctx for m in of_type(rd.all_messages(), Heartbeat)} == {2}  # one round for both
    leader.advance(rd)
    leader.step(HeartbeatResp(term=leader.term, src="c", dst="a", ctx=2))
    assert [r.ctx for r in leader.ready().read_states] == [1, 2]


# -- restart ----------------------------------------------------------------------------------


def test_restart_restores_term_vote_log_and_reapplies_after_snapshot() -> None:
    net = Net()
    leader = net.elect("a")
    for i in range(6):
        leader.propose([f"cmd{i}".encode()])
        net.drain()
    net.tick(1)
    snap = net.compact("b")
    before = (net["b"].term, net["b"].vote, log_of(net["b"]), net["b"].commit_index)
    b = net.restart("b")
    assert (b.term, b.vote, log_of(b), b.commit_index) == before
    assert (b.applied_index, b.first_index, b.snapshot) == (snap.meta.index, snap.meta.index + 1, snap)
    rd = b.ready()
    assert rd.hard_state is None and rd.entries == []
    reapplied = [e.index for e in rd.committed_entries]
    assert reapplied == list(range(snap.meta.index + 1, b.commit_index + 1))
    net.drain()
    net.tick(2)
    assert net.applied["b"] == net.applied["a"]


def test_restart_clamps_commit_to_last_index_and_takes_voters_from_snapshot() -> None:
    snap = Snapshot(_meta(3, 1), b"")
    core = RaftCore(
        "a", ["ignored"], rng=random.Random(0), hard_state=HardState(2, "b", 9), snapshot=snap, entries=[Entry(2, 4)]
    )
    assert core.voters == ABC
    assert (core.commit_index, core.applied_index, core.last_index) == (4, 3, 4)
    assert [e.index for e in core.ready().committed_entries] == [4]


def test_compact_requires_applied_index() -> None:
    net = Net()
    leader = net.elect("a")
    with pytest.raises(ValueError):
        leader.compact(leader.last_index + 5, b"")


def test_a_follower_that_lost_acknowledged_entries_is_repaired_not_counted_as_matched() -> None:
    # Rule 7: b's disk loses its tail after it acknowledged it (a damaged log cut by --repair, a
    # replaced disk).  The leader must not go on counting b as matched (with c down, that would
    # commit entries only a holds) and must bring b's log back.
    net = Net()
    leader = net.elect("a")
    for i in range(8):
        leader.propose([f"cmd{i}".encode()])
        net.drain()
    net.tick(1)
    pr = leader.progress("b")
    assert pr is not None and pr.match == leader.last_index == 9
    store = net.stores["b"]
    store.entries = [e for e in store.entries if e.index <= 4]
    store.hard_state = HardState(store.hard_state.term, store.hard_state.vote, 4)
    net.restart("b")
    net.isolate("c")
    leader.propose([b"after"])
    for _ in range(10):
        net.drain()
        net.tick(1, ["a"])
    pr = leader.progress("b")
    assert leader.follower_regressions == 1 and pr is not None and pr.regressions == 1
    assert log_of(net["b"]) == log_of(leader)  # repaired from a's log
    assert pr.match == leader.last_index and leader.commit_index == leader.last_index


def test_a_follower_regression_never_commits_what_only_the_leader_holds() -> None:
    net = Net()
    leader = net.elect("a")
    for i in range(4):
        leader.propose([f"cmd{i}".encode()])
        net.drain()
    net.tick(1)
    committed = leader.commit_index
    store = net.stores["b"]
    store.entries = [e for e in store.entries if e.index <= 2]
    store.hard_state = HardState(store.hard_state.term, store.hard_state.vote, 2)
    net.restart("b")
    net.isolate("c")
    net.isolate("b")  # b never gets the chance to be repaired
    leader.propose([b"only-on-a"])
    net.drain()
    net.tick(1, ["a"])
    net.drain()
    assert leader.commit_index == committed  # a alone is no majority, whatever b's old match said


def test_a_restarted_follower_commits_a_heartbeats_index_whose_term_matches() -> None:
    """Rule 8, liveness: an idle leader sends only heartbeats; the follower's entry at the
    heartbeat's commit has the leader's term there, so (Log Matching) it commits it."""
    core = restarted("b", 2, [1, 2, 2], commit=1)
    core.step(Heartbeat(term=2, src="a", dst="b", commit=3, commit_term=2))
    assert core.commit_index == 3
    stale = restarted("b", 3, [1, 2, 2])
    stale.step(Heartbeat(term=3, src="a", dst="b", commit=3, commit_term=3))
    assert stale.commit_index == 0  # our entry 3 is of another term: not the leader's


def test_send_commit_sends_a_follower_the_new_commit_index_before_the_next_heartbeat() -> None:
    net = Net(ABC, config=RaftConfig(election_ticks=10, heartbeat_ticks=5))
    leader = net.elect("a")
    net.drain()
    leader.propose([b"x"])
    net.process("a")  # the append goes out
    net.deliver()
    for node in ("b", "c"):
        net.process(node)  # persisted and acked
    net.deliver()
    net.process("a")  # the acks commit x
    index = leader.commit_index
    assert net["b"].commit_index < index  # b holds x but does not know it is committed
    assert not [m for m in net.queue if isinstance(m, AppendEntries)]  # a commit index alone waits (by design)
    net["b"].send_commit("a")  # a follower's call does nothing
    assert not net["b"].has_ready()
    leader.send_commit("b")
    net.process("a")
    sent = [m for m in net.queue if isinstance(m, AppendEntries)]
    assert [(m.dst, m.commit, m.entries) for m in sent] == [("b", index, [])]
    net.deliver()
    net.process("b")
    assert net["b"].commit_index == index
