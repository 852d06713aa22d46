"""Hand-written scenarios on the simulator, each a short story (like etcd's testdata scripts).

The network here is perfect (no loss, no delay) unless a scenario cuts links
or drops messages on purpose; every safety invariant of ``harness.Checker``
is still checked after every step.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rakit.raft.messages import ENTRY_NOOP, AppendEntries, AppendEntriesResp, Heartbeat, InstallSnapshot

from .harness import Cluster, SimConfig, with_raft

ELECTION = 10  # RaftConfig().election_ticks


def make(nodes: int = 3, seed: int = 1, **kw) -> Cluster:
    raft = kw.pop("raft", {})
    cfg = with_raft(SimConfig(name="scenario", nodes=nodes, drop=0.0, duplicate=0.0, max_delay=0, **kw), **raft)
    c = Cluster(cfg, seed)
    c.after_event()
    return c


def elect(c: Cluster, nid: str, drop: Callable | None = None) -> int:
    """``nid`` campaigns (no pre-vote) until it wins; returns its term."""
    for _ in range(5):
        c.core(nid).campaign()
        c.deliver_all(drop)
        if c.core(nid).role == "leader":
            return c.core(nid).term
    raise AssertionError(f"{nid} could not win an election:\n{c.describe()}")


def rounds(c: Cluster, n: int) -> None:
    for _ in range(n):
        c.round()


def only_leader(c: Cluster) -> str:
    leaders = c.leaders()
    assert len(leaders) == 1, c.describe()
    return leaders[0].id


# ---------------------------------------------------------------------------
# Check-quorum and pre-vote
# ---------------------------------------------------------------------------


def test_isolated_leader_steps_down_and_rejoins_without_disrupting() -> None:
    c = make(3)
    t1 = elect(c, "n1")
    c.propose("n1")
    c.deliver_all()

    # n1 is cut off: within two election timeouts (one check-quorum round may
    # still count the answers from before the cut) it notices it lost its
    # quorum and steps down; n2 and n3 elect a new leader at t1 + 1.
    c.isolate("n1")
    rounds(c, 2 * ELECTION + 1)
    assert c.core("n1").role != "leader", "isolated leader must step down (check-quorum)"
    rounds(c, 3 * ELECTION)
    new = only_leader(c)
    assert new in ("n2", "n3")
    t2 = c.core(new).term
    assert t2 == t1 + 1
    # Pre-vote: however long n1 times out alone, it never raises its term.
    assert c.core("n1").term == t1
    assert c.core("n1").role in ("follower", "pre_candidate")

    # Healed: n1 simply follows; the healthy leader keeps its term.
    c.heal()
    rounds(c, 3)
    assert only_leader(c) == new
    assert c.core(new).term == t2
    assert c.core("n1").leader_id == new and c.core("n1").term == t2
    c.check_liveness()
    assert c.core(new).term == t2


def test_follower_back_from_partition_does_not_bump_leader_term() -> None:
    c = make(5)
    t = elect(c, "n1")
    c.isolate("n5")
    rounds(c, 6 * ELECTION)  # several election timeouts alone
    assert c.core("n5").term == t  # pre-vote never succeeds, so the term stays
    c.heal()
    rounds(c, 2 * ELECTION)
    assert only_leader(c) == "n1"
    assert c.core("n1").term == t
    assert c.core("n5").leader_id == "n1"


def test_without_pre_vote_the_returning_follower_does_disrupt() -> None:
    """Contrast for the test above: the disruption pre-vote exists to prevent."""
    c = make(5, raft={"pre_vote": False})
    t = elect(c, "n1")
    c.isolate("n5")
    rounds(c, 6 * ELECTION)
    assert c.core("n5").term > t
    c.heal()
    rounds(c, 4 * ELECTION)
    lead = only_leader(c)
    assert c.core(lead).term > t


def test_asymmetric_cut_leader_cannot_hear_followers() -> None:
    """The leader's messages get out but nothing comes back: check-quorum deposes it."""
    c = make(3)
    t = elect(c, "n1")
    c.cut("n2", "n1", both=False)
    c.cut("n3", "n1", both=False)
    rounds(c, 2 * ELECTION + 1)
    assert c.core("n1").role != "leader"
    c.heal()
    c.check_liveness()
    assert c.core(only_leader(c)).term > t


# ---------------------------------------------------------------------------
# Raft paper, Figure 8
# ---------------------------------------------------------------------------


def _fig8_setup() -> tuple[Cluster, bytes]:
    """Up to Figure 8 (c): an old-term entry stored on a majority under a newer leader.

    Pre-vote and check-quorum are off (as in the paper) and one entry per
    AppendEntries lets us hand out index 2 without index 3.
    """
    c = make(5, raft={"pre_vote": False, "check_quorum": False, "max_entries_per_msg": 1})
    # (a) n1 leads term 1; everyone has its no-op at index 1.
    assert elect(c, "n1") == 1
    rounds(c, 2)
    # n1 appends x at (2, t1) but is cut off before replicating it.
    c.isolate("n1")
    c.propose("n1")
    c.deliver_all()
    x = next(d for d, (t, i) in c.check.proposals.items() if (t, i) == (1, 2))
    assert c.core("n1").last_index == 2 and c.core("n1").commit_index == 1
    # (b) n1 crashes; n5 wins term 2 with n3, n4 (and n2) and appends its no-op
    # at (2, t2), which reaches nobody.
    c.crash("n1")
    c.heal()
    from_n5 = lambda m: m.src == "n5" and isinstance(m, (AppendEntries, Heartbeat))  # noqa: E731
    assert elect(c, "n5", drop=from_n5) == 2
    assert (c.core("n5").last_index, c.core("n5").last_term) == (2, 2)
    # (c) n5 crashes, n1 restarts and wins term 3 with n2, n3, n4; it appends
    # its no-op at (3, t3), and replicates x at (2, t1) to n2 and n3 -- but not
    # index 3 (and nothing to n4).
    c.crash("n5")
    c.restart("n1")

    def hold_back(m: object) -> bool:
        # Deliver n1's probes (n2/n3 reject index 3 while they lack index 2, then
        # take index 2 alone), but drop index 3 once it would be accepted.
        if not (isinstance(m, AppendEntries) and m.src == "n1"):
            return False
        if m.dst == "n4":
            return True
        return any(e.index >= 3 for e in m.entries) and c.nodes[m.dst].disk.term_at(2) == 1

    t = elect(c, "n1", drop=hold_back)
    assert t == 3
    for _ in range(3):  # heartbeats make n1 probe n2/n3 back to index 2
        c.tick("n1")
        c.deliver_all(hold_back)
    for nid in ("n1", "n2", "n3"):
        assert c.nodes[nid].disk.term_at(2) == 1, f"{nid} should store x at (2, t1)\n{c.describe()}"
    pr2, pr3 = c.core("n1").progress("n2"), c.core("n1").progress("n3")
    assert pr2 is not None and pr3 is not None and pr2.match == 2 and pr3.match == 2, (pr2, pr3)
    return c, x


def test_figure8_old_term_entry_on_majority_is_not_committed() -> None:
    c, x = _fig8_setup()
    # The leader of term 3 knows (2, t1) is on a majority, but must not commit
    # it by counting replicas: it is not from the current term.
    assert c.core("n1").commit_index == 1
    # (d) n1 crashes; n5 (last entry (2, t2)) can win term 4 and overwrite index 2
    # everywhere.  Safe only because x was never committed.
    c.crash("n1")
    c.restart("n5")
    elect(c, "n5")
    assert c.core("n5").term == 4
    c.deliver_all()
    for nid in ("n2", "n3", "n4", "n5"):
        assert c.nodes[nid].disk.term_at(2) == 2
    c.check_liveness()
    assert c.check.applied[2].kind == ENTRY_NOOP and c.check.applied[2].term == 2
    assert all(e.data != x for e in c.check.applied.values())


def test_figure8_old_term_entry_commits_with_current_term_entry() -> None:
    c, x = _fig8_setup()
    # (e) n1 replicates its own term-3 entry to a majority: now index 3 commits,
    # and x at index 2 with it.  n5 can no longer win.
    c.deliver_all()
    rounds(c, 2)
    assert c.core("n1").commit_index >= 3
    c.restart("n5")
    c.core("n5").campaign()
    c.deliver_all()
    assert c.core("n5").role != "leader"
    c.check_liveness()
    assert c.check.applied[2].data == x and c.check.applied[2].term == 1


# ---------------------------------------------------------------------------
# Snapshots, crashes
# ---------------------------------------------------------------------------


def test_follower_down_across_compactions_catches_up_by_install_snapshot() -> None:
    c = make(3, compact_every=5)
    elect(c, "n1")
    c.crash("n3")
    for _ in range(6):
        c.propose("n1", 5)
        c.deliver_all()
    lead = c.core("n1")
    assert lead.first_index - 1 >= 25, "the leader compacted several times"
    assert c.stats["compactions"] >= 2 * 5
    installs: list[InstallSnapshot] = []
    c.send_hooks.append(lambda m: installs.append(m) if isinstance(m, InstallSnapshot) else None)
    c.restart("n3")
    c.check_liveness()
    assert [m.dst for m in installs] and all(m.dst == "n3" for m in installs)
    assert c.nodes["n3"].disk.snapshot_index >= 25
    assert c.nodes["n3"].sm is not None and c.nodes["n3"].sm.applied == c.nodes["n1"].sm.applied  # type: ignore[union-attr]
    assert any("n3: restored snapshot" in line for line in c.trace)


@pytest.mark.parametrize("phase", [0, 1, 2, 3], ids=["before-persist", "before-send", "before-apply", "before-advance"])
def test_restarted_follower_keeps_every_acknowledged_entry(phase: int) -> None:
    c = make(3)
    elect(c, "n1")
    acked: dict[str, int] = {}

    def record(m: object) -> None:
        if isinstance(m, AppendEntriesResp) and m.success:
            acked[m.src] = max(acked.get(m.src, 0), m.index)

    c.send_hooks.append(record)
    for _ in range(3):
        c.propose("n1", 2)
        c.deliver_all()
    before = c.nodes["n2"].disk.last_index
    assert acked["n2"] == before
    # New entries reach n2, which crashes in the middle of handling them.
    c.propose("n1", 3)
    c.drain()
    while c.net.queue and c.nodes["n2"].up:
        msg = c.net.take_oldest()
        if isinstance(msg, AppendEntries) and msg.dst == "n2" and msg.entries:
            c.crash_plan["n2"] = phase
        c.deliver(msg)
        c.after_event()
    assert not c.nodes["n2"].up
    c.restart("n2")
    core = c.core("n2")
    assert core.last_index >= acked["n2"]
    for i in range(1, acked["n2"] + 1):
        assert c.nodes["n2"].disk.term_at(i) == c.nodes["n1"].disk.term_at(i)
    if phase == 0:
        assert core.last_index == before  # never persisted, never acked: lost
    else:
        assert core.last_index == before + 3  # persisted before the crash
    c.check_liveness()


@pytest.mark.parametrize("compact_every", [0, 4])
@pytest.mark.parametrize("nodes", [3, 5])
def test_whole_cluster_crash_keeps_every_committed_entry(nodes: int, compact_every: int) -> None:
    c = make(nodes, compact_every=compact_every)
    elect(c, "n1")
    for _ in range(5):
        c.propose("n1", 3)
        c.deliver_all()
    rounds(c, 2)  # followers learn the commit index
    committed = c.check.max_commit
    assert committed >= 16
    hash_before = c.check.hash_at[committed]
    # Crash every node; some of them in the middle of a Ready.
    c.propose("n1", 2)
    for i, nid in enumerate(c.voters):
        c.crash_plan[nid] = i % 4
    c.deliver_all()
    for nid in c.voters:
        c.crash(nid)
    for nid in reversed(c.voters):
        c.restart(nid)
    c.check_liveness()
    for n in c.nodes.values():
        assert n.sm is not None and n.sm.applied > committed
    assert c.check.hash_at[committed] == hash_before


def test_read_index_on_deposed_leader_is_never_confirmed() -> None:
    """A leader cut off from the majority cannot confirm a read (no stale read)."""
    c = make(3)
    elect(c, "n1")
    c.propose("n1")
    c.deliver_all()
    c.isolate("n1")
    ctx = c.read_index("n1")
    assert ctx is not None
    rounds(c, 4 * ELECTION)
    new = only_leader(c)
    assert new != "n1"
    c.propose(new, 3)
    c.deliver_all()
    c.heal()
    rounds(c, 3)
    assert ctx not in [r for r, _ in c.nodes["n1"].reads]
    # A read on the new leader is confirmed at an index covering every write.
    ctx2 = c.read_index(new)
    c.deliver_all()
    assert ctx2 not in c.check.reads  # confirmed (the checker validated its index)
