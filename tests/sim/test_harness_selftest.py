"""The checker has teeth: deliberately broken cores must be caught.

Each mutant below breaks one Raft rule the way a real bug would.  The
simulation (or a scenario) must report it within a bounded number of seeded
runs; if it does not, the harness has gone blind and its green runs mean
nothing.  (The mutants subclass the real core and override one private
method, so they follow ``rakit.raft.core`` as it evolves; if a private name
changes, the affected mutant test fails loudly rather than silently passing.)
"""

from __future__ import annotations

import pytest

from rakit.raft import quorum
from rakit.raft.core import RaftCore
from rakit.raft.messages import HardState, Heartbeat, ReadState
from rakit.raft.ready import Ready
from rakit.raft.turn import Send, Turn, plan

from . import test_scenarios
from .harness import Cluster, InvariantViolation
from .test_simulation import PROFILE_BASE, PROFILES


class CommitByCountingReplicas(RaftCore):
    """Commits an earlier term's entry once it is on a majority (Figure 8's bug)."""

    def _maybe_commit(self) -> bool:
        match = {peer: pr.match for peer, pr in self._progress.items()}
        match[self._id] = self._log.stable_index
        index = quorum.committed_index(match, self._voters)
        if index <= self._log.committed:
            return False
        self._log.commit_to(index)
        self._release_held_reads()
        return True


class VotesForStaleLogs(RaftCore):
    """Grants votes without the 'at least as up to date' check (5.4.1)."""

    def _handle_request_vote(self, msg) -> None:  # type: ignore[no-untyped-def]
        self._log.is_up_to_date = lambda *a: True  # type: ignore[method-assign]
        try:
            super()._handle_request_vote(msg)
        finally:
            del self._log.is_up_to_date


class VotesTwice(RaftCore):
    """Forgets its vote when another candidate asks in the same term."""

    def _handle_request_vote(self, msg) -> None:  # type: ignore[no-untyped-def]
        if not msg.pre_vote and self._vote not in (None, msg.src):
            self._vote, self._leader_id = None, None
        super()._handle_request_vote(msg)


class AcksAhead(RaftCore):
    """Acknowledges one entry more than it stored."""

    def _ack(self, leader: str, index: int) -> None:
        super()._ack(leader, index + 1)


class CommitsHeartbeatToItsLastIndex(RaftCore):
    """The core before rule 8: a follower commits a Heartbeat's index up to its own last index."""

    def _handle_from_leader(self, msg) -> None:  # type: ignore[no-untyped-def]
        if isinstance(msg, Heartbeat):
            self._log.commit_to(min(msg.commit, self._log.last_index))
        super()._handle_from_leader(msg)


class HeartbeatsFullCommit(CommitsHeartbeatToItsLastIndex):
    """Tells followers the full commit index, not min(match, commit) (and they trust it)."""

    def _broadcast_heartbeat(self) -> None:
        ctx = self._reads.latest_ctx()
        self._reads.heartbeat_due = False
        for peer in self._peers():
            self._send(Heartbeat(term=self._term, src=self._id, dst=peer, commit=self._log.committed, ctx=ctx))


class ReadsWithoutQuorum(RaftCore):
    """Confirms a ReadIndex at once, without a heartbeat round."""

    def _start_read(self, ctx: int) -> None:
        self._read_states.append(ReadState(ctx, self._log.committed))


class ForgetsTermOnRestart(RaftCore):
    """Loads the commit index but not the persisted term and vote."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        hs = kwargs.get("hard_state")
        if hs is not None:
            kwargs["hard_state"] = HardState(0, None, hs.commit)
        super().__init__(*args, **kwargs)


class SendsEverythingEarly(RaftCore):
    """Puts every message in Ready.messages, votes and acks too (breaks core rule 18)."""

    def _split_by_durability(self, hard_state):  # type: ignore[no-untyped-def]
        early, late = super()._split_by_durability(hard_state)
        return [*early, *late], []


def sends_before_persisting(ready: Ready, durable: HardState, carried: HardState | None = None) -> Turn:
    """A plan that sends what needs the disk before the write (breaks turn rule 3)."""
    turn = plan(ready, durable, carried)
    effects = list(turn.effects)
    late = [e for e in effects if isinstance(e, Send) and e.after_persist]
    if late:
        effects.remove(late[0])
        effects.insert(0, late[0])
    return Turn(effects, turn.durable, turn.carried)


@pytest.fixture
def mutant(monkeypatch: pytest.MonkeyPatch):
    def use(cls: type[RaftCore]) -> None:
        monkeypatch.setattr(Cluster, "core_cls", cls)

    return use


def first_caught(profile: str, max_runs: int) -> str:
    cfg, _ = PROFILES[profile]
    for i in range(max_runs):
        cluster = Cluster(cfg, PROFILE_BASE[profile] + i)
        try:
            cluster.after_event()
            cluster.run_chaos()
            cluster.check_liveness()
        except InvariantViolation as err:
            return str(err)
    pytest.fail(f"the simulation did not catch the mutant in {max_runs} runs of {profile}")


@pytest.mark.parametrize(
    ("cls", "profile", "max_runs", "expect"),
    [
        (VotesForStaleLogs, "3n-no-prevote", 30, ("leader completeness", "state machine safety")),
        (VotesTwice, "3n-no-prevote", 10, ("voted for",)),
        (AcksAhead, "3n-basic", 5, ("acked index",)),
        (HeartbeatsFullCommit, "3n-stale-leaders", 40, ("state machine safety", "committed index")),
        (ReadsWithoutQuorum, "3n-stale-leaders", 120, ("ReadIndex linearizability",)),
        (ForgetsTermOnRestart, "3n-whole-cluster-crashes", 20, ("voted for", "persisted term went back")),
        (SendsEverythingEarly, "3n-basic", 2, ("before persisting its Ready",)),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
def test_random_runs_catch(mutant, cls, profile, max_runs, expect) -> None:  # type: ignore[no-untyped-def]
    mutant(cls)
    message = first_caught(profile, max_runs)
    assert any(e in message for e in expect), message


def test_figure8_scenario_catches_commit_by_counting(mutant) -> None:  # type: ignore[no-untyped-def]
    mutant(CommitByCountingReplicas)
    c, _ = test_scenarios._fig8_setup()
    assert c.core("n1").commit_index == 2  # the mutant commits (2, t1) by counting...
    c.crash("n1")
    c.restart("n5")
    with pytest.raises(InvariantViolation, match="leader completeness|committed index 2 with term"):
        test_scenarios.elect(c, "n5")  # ...and n5 then wins and overwrites a committed entry
        c.deliver_all()
        c.check_liveness()


def test_random_runs_catch_a_plan_that_sends_before_persisting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Cluster, "plan_fn", staticmethod(sends_before_persisting))
    message = first_caught("3n-basic", 5)
    assert "before persisting it" in message or "acked index" in message, message


def test_crashes_strike_between_a_leaders_early_appends_and_its_fsync() -> None:
    """The simulation runs the order the node runs: some crashes hit that window."""
    cfg, _ = PROFILES["3n-snapshots-crashes"]
    seen = 0
    for i in range(20):
        cluster = Cluster(cfg, PROFILE_BASE["3n-snapshots-crashes"] + i)
        cluster.after_event()
        cluster.run_chaos()
        cluster.check_liveness()
        seen += cluster.stats["crashes_after_early_sends"]
        if seen:
            break
    assert seen, "no crash struck a leader between its early appends and its fsync"
