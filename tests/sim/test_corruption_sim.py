"""A crash that loses or damages persisted state is never silent: the simulator with damaged disks.

Each seeded run is the usual chaos (message loss, duplication, delay,
reordering, partitions, crashes, restarts, compaction) with a workload of
acknowledged writes, in which crashes damage the crashed node's ``raft.wal``
in one of the kinds a disk produces (``corruption.py`` describes each and how
it is made).  Every restart opens the file with the node's real
``FileLogStore``; the run fails unless, for every damage,

* the node refused to start, with the store's one-line reason recorded (it
  then stays down until the operator repairs it -- ``--repair``, adopted only
  if the other voters hold what it drops -- or wipes it and adds an empty node
  in its place), or
* the store cut only what no one was ever told about (a torn record whose
  Ready's messages never went out), or
* the cluster noticed: a leader that counted entries the node no longer held
  counted a regression (``Progress.regress``) before it stopped leading, and
  the node caught up;

and the harness's safety checkers held throughout (at most one leader per
term, log matching, committed entries never change, no node votes twice in a
term or persists a lower term, ...), and after the liveness phase every
acknowledged write (applied on the node that proposed it) is applied on every
member.

The checker self-tests show these tests have teeth: a store that accepts
mid-log damage by cutting there, a store that cuts one record too many on a
torn write, a leader that never notices a regression, and a disk that lies
about the record holding a vote are each caught.  The two tests at the end
are a bug these runs found and that is fixed (a follower committed, on a
heartbeat, stale entries that a lost record had overwritten; ``--repair``
kept a commit index that counted them): core.py rule 8, file_store rule 3a.

Environment: ``RAKIT_SIM_RUNS`` (runs per profile), ``RAKIT_SIM_SEED`` (replay
one seed), as in test_simulation.py.
"""

from __future__ import annotations

import os
import zlib
from collections import Counter
from dataclasses import replace

import pytest

from rakit.raft.core import RaftCore
from rakit.raft.messages import AppendEntries, AppendEntriesResp
from rakit.storage.memory import MemoryLogStore
from rakit.storage.wal_damage import RECORD_HEADER

from .corruption import (
    HEADER,
    CorruptionCluster,
    CorruptionConfig,
    DamageEvent,
    WalOpen,
    open_wal,
    record_of,
    replay,
)
from .harness import InvariantViolation, with_raft
from .test_harness_selftest import CommitsHeartbeatToItsLastIndex
from .test_scenarios import elect

_3N = {"nodes": 3, "steps": 1000, "w_operator": 2.0, "w_restart": 3.0}
_5N = {"nodes": 5, "steps": 1000, "w_operator": 2.0, "w_restart": 3.0, "drop": 0.1, "max_delay": 10}

# kind -> [(profile, runs)]; seeds of a profile are base + i.
PROFILES: dict[str, list[tuple[CorruptionConfig, int]]] = {
    "torn": [
        (
            CorruptionConfig(
                name="3n-torn", compact_every=5, damage="torn", torn_rate=0.03, torn_compact_rate=0.05, **_3N
            ),
            40,
        ),
        (
            CorruptionConfig(
                name="5n-torn", compact_every=7, damage="torn", torn_rate=0.03, torn_compact_rate=0.05, **_5N
            ),
            10,
        ),
    ],
    "flip": [
        (CorruptionConfig(name="3n-flip", compact_every=6, damage="flip", damage_rate=0.8, w_crash=1.0, **_3N), 40),
        (CorruptionConfig(name="5n-flip", compact_every=8, damage="flip", damage_rate=0.8, w_crash=1.0, **_5N), 10),
    ],
    "hard_state": [
        (CorruptionConfig(name="3n-hard-state", compact_every=6, damage="hard_state", w_crash=1.0, **_3N), 40),
        (CorruptionConfig(name="5n-hard-state", compact_every=8, damage="hard_state", w_crash=1.0, **_5N), 10),
    ],
    # No compaction: a leader that compacted past a follower's loss sends a snapshot and never
    # needs to notice; without it, only the regression repair brings the follower back.
    "lost_tail": [
        (CorruptionConfig(name="3n-lost-tail", damage="lost_tail", w_crash=1.0, **_3N), 40),
        (
            CorruptionConfig(name="3n-lost-tail-compacting", compact_every=30, damage="lost_tail", w_crash=1.0, **_3N),
            10,
        ),
        (CorruptionConfig(name="5n-lost-tail", damage="lost_tail", w_crash=1.0, **_5N), 10),
    ],
}
BASE = {cfg.name: (i + 1) * 1_000 for i, cfg in enumerate(cfg for runs in PROFILES.values() for cfg, _ in runs)}
# One seed of each kind's first profile for the quick tier (each has damage of that kind).
QUICK_SEEDS = {"torn": 1_000, "flip": 3_000, "hard_state": 5_000, "lost_tail": 7_002}


def replay_command(cfg: CorruptionConfig, seed: int) -> str:
    return (
        f"cd /work/main && RAKIT_SIM_SEED={seed} .venv/bin/python -m pytest -q "
        f"'tests/sim/test_corruption_sim.py::test_damage_is_never_silent[{cfg.damage}]'"
    )


def run_one(cfg: CorruptionConfig, seed: int, cls: type[CorruptionCluster] = CorruptionCluster) -> CorruptionCluster:
    """Chaos with damage, the operator bringing refused nodes back, liveness, and the final checks."""
    cluster = cls(cfg, seed)
    try:
        cluster.after_event()
        cluster.run_chaos()
        cluster.recover()
        cluster.check_liveness()
        cluster.final_check()
    except AssertionError as err:
        pytest.fail(cluster.failure_report(err, replay_command(cfg, seed)), pytrace=False)
    return cluster


def simulate(cfg: CorruptionConfig, seed: int, cls: type[CorruptionCluster] = CorruptionCluster) -> CorruptionCluster:
    """``run_one`` without the pytest wrapping (the self-tests want the InvariantViolation)."""
    cluster = cls(cfg, seed)
    cluster.after_event()
    cluster.run_chaos()
    cluster.recover()
    cluster.check_liveness()
    cluster.final_check()
    return cluster


def _seeds(cfg: CorruptionConfig, runs: int) -> list[int]:
    if os.environ.get("RAKIT_SIM_SEED"):
        return [int(os.environ["RAKIT_SIM_SEED"])]
    return [BASE[cfg.name] + i for i in range(int(os.environ.get("RAKIT_SIM_RUNS", runs)))]


def _check_events(kind: str, events: list[DamageEvent]) -> None:
    """Rule (ii): every damage of ``kind`` was refused with its reason, or cut only the unreported, or noticed."""
    for ev in events:
        assert ev.kind == kind, ev
        if kind == "torn":
            # cut: the store cut it with a warning; absent: its header never got written, the file
            # just ends; whole: it all landed; refused: see the module docstring of corruption.py.
            assert ev.outcome in ("cut", "absent", "whole", "refused"), ev
            if ev.outcome == "cut":
                assert "log ends at byte" in ev.reason, ev
            if ev.outcome == "refused":  # fewer than 64 of its bytes fell in the unwritten sectors
                assert "no part of it is the zeroed space an unfinished write leaves" in ev.reason, ev
        elif kind in ("flip", "hard_state"):
            assert ev.outcome == "refused", ev
        else:
            assert ev.outcome == "opened-silently", ev  # the node cannot see it: the cluster must
            assert ev.lost, ev
            assert ev.believed <= ev.regressions + ev.moot + ev.caught_up, ev  # every wrong belief ended
        if ev.outcome == "refused":
            assert "\n" not in ev.reason and "refuses to start" in ev.reason, ev
            assert "--repair" in ev.reason and "learner" in ev.reason, ev
            assert ev.recovery.startswith(("repaired with --repair", "wiped:")), ev


def _run_kind(kind: str) -> tuple[list[DamageEvent], Counter[str]]:
    events: list[DamageEvent] = []
    stats: Counter[str] = Counter()
    for cfg, runs in PROFILES[kind]:
        for seed in _seeds(cfg, runs):
            cluster = run_one(cfg, seed)
            events += cluster.events
            stats["runs"] += 1
            stats["acked"] += len(cluster.ccheck.acked)
            stats["wal_opens"] += cluster.wal_opens
    _check_events(kind, events)
    stats.update(ev.outcome for ev in events)
    stats.update(ev.recovery.split(" ")[0] for ev in events if ev.recovery)
    stats["regressions"] = sum(ev.regressions for ev in events)
    return events, stats


@pytest.mark.parametrize("kind", list(PROFILES))
def test_damage_is_never_silent(kind: str) -> None:
    events, stats = _run_kind(kind)
    print(f"\n{kind}: {dict(stats)}")
    if os.environ.get("RAKIT_SIM_SEED") or os.environ.get("RAKIT_SIM_RUNS"):
        return  # a replay: the totals below are about the default seeds
    assert stats["acked"] >= 50 * stats["runs"], stats  # a workload of acknowledged writes
    if kind == "torn":
        assert len(events) >= 100 and stats["cut"] >= 20 and stats["absent"] >= 20, stats
    elif kind in ("flip", "hard_state"):
        assert len(events) >= 50, stats
        assert stats["wiped:"] >= 10, stats  # the operator's two ways back were both taken
        assert stats["repaired"] >= 3, stats
    else:
        assert len(events) >= 40, stats
        assert stats["regressions"] >= 20, stats  # the leaders noticed, and repaired


@pytest.mark.quick
@pytest.mark.parametrize("kind", list(QUICK_SEEDS))
def test_damage_is_never_silent_one_seed(kind: str) -> None:
    cfg = PROFILES[kind][0][0]
    cluster = run_one(cfg, QUICK_SEEDS[kind])
    assert cluster.events, f"seed {QUICK_SEEDS[kind]} no longer damages anything: pick another"
    _check_events(kind, cluster.events)


def test_same_seed_same_damage() -> None:
    cfg = PROFILES["flip"][0][0]
    a, b = run_one(cfg, 3_001), run_one(cfg, 3_001)
    assert list(a.trace) == list(b.trace) and [str(e) for e in a.events] == [str(e) for e in b.events]


# ---------------------------------------------------------------------------
# (iii) damage on a majority: unavailable, but safe
# ---------------------------------------------------------------------------

MAJORITY = CorruptionConfig(name="3n-majority", nodes=3, steps=400, compact_every=8, w_crash=0.6, w_partition=1.0)
MAJORITY_SEEDS = range(90_000, 90_020)


def _damage_a_majority(cls: type[CorruptionCluster], seed: int) -> tuple[CorruptionCluster, list[str], int]:
    """Chaos, then everyone up and converged; then two of three logs get bytes flipped mid-log."""
    c = cls(MAJORITY, seed)
    c.after_event()
    c.run_chaos()
    c.heal_everything()
    c.run_until(lambda: c.stable_leader() is not None and c.converged(), 400, "converging before the damage")
    for _ in range(4):  # acknowledged writes right before the damage (and records after any rewrite)
        lead = c.stable_leader()
        assert lead is not None
        c.propose(lead.id, 2)
        c.deliver_all()
    commit = c.check.max_commit
    victims = sorted(c.rng.sample(sorted(c.voters), 2))
    for v in victims:
        assert c.crash_damaged(v, "flip") is not None, f"seed {seed}: {v}'s log is too short to damage"
    for v in victims:
        c.restart(v)
    return c, victims, commit


@pytest.mark.parametrize("seed", MAJORITY_SEEDS)
def test_damage_on_a_majority_is_unavailable_but_safe(seed: int) -> None:
    c, victims, commit = _damage_a_majority(CorruptionCluster, seed)
    try:
        assert sorted(c.refused) == victims, c.describe()
        for v in victims:
            assert "refuses to start" in c.refused[v].reason
        # The operator tries (--repair is refused or would drop what the others do not hold on a
        # majority; a wipe needs a leader that can commit the removal) and the survivor tries to lead.
        for _ in range(300):
            c.operator_step()
            for lead in c.leaders():
                c.propose(lead.id)
            c.round()
        assert sorted(c.refused) == victims, "the operator must not have brought a node back unsafely"
        assert all(ev.recovery == "wipe" for ev in c.refused.values()), [str(e) for e in c.refused.values()]
        assert c.check.max_commit == commit, "nothing can commit without a majority"
        assert c.stable_leader() is None or not c.converged()
        # Safe: every acknowledged write is still on a majority of the disks (the refused logs were
        # left exactly as they were), and no node ever applied anything else (the checkers held).
        committed = c.ccheck.committed
        for i, e in c.ccheck.acked.items():
            holders = [n.id for n in c.nodes.values() if c.disk(n.id).holds(i, e.term, committed)]
            assert len(holders) >= 2, (i, holders)
        assert c.ccheck.acked, "no acknowledged writes: the workload did nothing"
    except AssertionError as err:
        pytest.fail(c.failure_report(err, f"test_damage_on_a_majority_is_unavailable_but_safe[{seed}]"), pytrace=False)


# ---------------------------------------------------------------------------
# Checker self-tests: the harness catches a silent acceptance
# ---------------------------------------------------------------------------


def _accept_and_cut(image: bytes) -> WalOpen:
    """The store before wal_damage: the log ends at the first record that is not whole, whatever follows."""
    mem, frames, pos = MemoryLogStore(), [], len(HEADER)
    while pos + RECORD_HEADER.size <= len(image):
        length, crc = RECORD_HEADER.unpack_from(image, pos)
        end = pos + RECORD_HEADER.size + length
        if length == 0 or end > len(image) or zlib.crc32(image[pos + RECORD_HEADER.size : end]) != crc:
            break
        rec = record_of(image[pos:end])
        if rec.compact and rec.snapshot is not None:
            mem.compact(rec.snapshot)
        else:
            mem.save(rec.hard_state, rec.entries, rec.snapshot)
        frames.append(image[pos:end])
        pos = end
    return WalOpen(mem.load(), frames=frames)


class AcceptAndCutJudged(CorruptionCluster):
    """The unsafe store; the harness judges what it loads."""

    def read_wal(self, image: bytes, *, repair: bool = False) -> WalOpen:
        return _accept_and_cut(image)


class AcceptAndCutBelieved(AcceptAndCutJudged):
    """The unsafe store, and a harness that believes it: only the Raft safety checkers are left."""

    strict = False


SAFETY = (
    "election safety",
    "voted for",
    "persisted term went back",
    "leader completeness",
    "committed index",
    "commit index went back",
    "state machine safety",
    "log matching",
)


def test_accept_and_cut_is_caught_by_the_damage_judge() -> None:
    with pytest.raises(InvariantViolation, match="never silent: .* instead of refusing"):
        _damage_a_majority(AcceptAndCutJudged, MAJORITY_SEEDS[0])


def test_accept_and_cut_on_a_majority_is_caught_by_the_safety_checkers() -> None:
    """Two of three logs cut silently mid-log (the outside probe's failure): the checkers must fail."""
    caught: Counter[str] = Counter()
    for seed in MAJORITY_SEEDS:
        try:
            c, victims, _ = _damage_a_majority(AcceptAndCutBelieved, seed)
            (survivor,) = [n for n in c.voters if n not in victims]
            c.crash(survivor)  # the one intact log goes away for a while
            for _ in range(60):
                for lead in c.leaders():
                    c.propose(lead.id)
                c.round()
            c.restart(survivor)
            c.check_liveness()
        except InvariantViolation as err:
            which = [s for s in SAFETY if s in str(err)]
            assert which, str(err)
            caught[which[0]] += 1
    print(f"\ncaught: {dict(caught)}")
    assert sum(caught.values()) == len(MAJORITY_SEEDS), caught


class CutsOneRecordTooMany(CorruptionCluster):
    """A torn-tail repair that also drops the record before the torn one (which was reported)."""

    def read_wal(self, image: bytes, *, repair: bool = False) -> WalOpen:
        res = open_wal(image, repair=repair)
        if res.state is None or not res.warnings or len(res.frames) < 2:
            return res
        return WalOpen(replay(res.frames[:-1]), warnings=res.warnings, frames=res.frames[:-1])


def test_a_torn_write_repair_that_loses_reported_data_is_caught() -> None:
    cfg, _ = PROFILES["torn"][0]
    with pytest.raises(InvariantViolation, match="lost reported data"):
        for seed in range(BASE[cfg.name], BASE[cfg.name] + 10):
            simulate(cfg, seed, CutsOneRecordTooMany)


class NeverNoticesRegressions(RaftCore):
    """A leader that takes a rejection at its follower's match index for a stale one (no Progress.regress)."""

    def _handle_reject(self, pr, msg: AppendEntriesResp) -> None:  # type: ignore[no-untyped-def]
        if pr.state == "probe" and 0 < msg.index == pr.next - 1 and msg.index <= pr.match:
            return
        super()._handle_reject(pr, msg)


class BlindLeaders(CorruptionCluster):
    core_cls = NeverNoticesRegressions


def test_a_leader_that_never_notices_a_lost_tail_is_caught() -> None:
    cfg, _ = PROFILES["lost_tail"][0]
    with pytest.raises(InvariantViolation, match="silent: a leader still counts|liveness"):
        for seed in range(BASE[cfg.name], BASE[cfg.name] + 10):
            simulate(cfg, seed, BlindLeaders)


def test_a_disk_that_loses_the_vote_record_is_silent_to_the_node_and_caught_by_the_checker() -> None:
    """Why the lost-tail runs never lose a term or vote: nothing can see it but the checker.

    n3 votes for n1 in term 1 (n1 wins with n1 + n3, n2 hears nothing).  n3's disk lied
    about that record: the real store opens the shorter file without a word, at term 0.
    n2 then campaigns in term 1 and n3 votes again -- two leaders of term 1 would follow.
    """
    cfg = CorruptionConfig(name="lying-disk", nodes=3, drop=0.0, duplicate=0.0, max_delay=0, payload=0)
    c = CorruptionCluster(cfg, 1)
    c.after_event()
    c.cut("n1", "n2")
    assert elect(c, "n1") == 1 and c.core("n3").vote == "n1"
    frames = c.disk("n3").frames
    k = next(k for k in range(1, len(frames) + 1) if replay(frames[:-k]).hard_state.term < 1)
    ev = c.crash_damaged("n3", "lost_tail", records=k, unsafe=True)
    assert ev is not None
    c.restart("n3")
    assert ev.outcome == "opened-silently" and not ev.reason  # the store cannot tell
    assert c.core("n3").term == 0
    with pytest.raises(InvariantViolation, match="n3: voted for n1 and then for n2 in term 1"):
        c.core("n2").campaign()
        c.deliver_all()


# ---------------------------------------------------------------------------
# Fixed bug: a follower committed, on a Heartbeat, entries it no longer shared with the leader
# ---------------------------------------------------------------------------
#
# A Heartbeat carries commit = min(match, commit) (core.py rule 7).  If a follower lost
# acknowledged records -- `rakit node --repair`, or a disk that lied about fsync -- and what is
# left holds entries a lost record had *overwritten* (a stale suffix of an older term), the
# leader's match is stale.  The follower used to commit min(msg.commit, its last index) and
# apply the stale entries (two replicas applying different entries at one index), and
# `--repair` kept the later hard state's commit index, which counted them.  Now a Heartbeat
# commits only what an AppendEntries of this leader confirmed (core.py rule 8) and the repair
# keeps the commit index the kept records show (file_store rule 3a); the runs allow such damage
# (``CorruptionConfig.resurrect``, on by default) and these two replay the cases that found it.


def test_repair_that_brings_back_overwritten_entries() -> None:
    """``--repair`` on a follower whose lost record overwrote an older leader's entries."""
    cfg = with_raft(
        CorruptionConfig(name="repair-stale", nodes=3, drop=0.0, duplicate=0.0, max_delay=0, payload=0, resurrect=True),
        check_quorum=False,  # no leader lease: n2 and n3 may win right after a leader went away
    )
    c = CorruptionCluster(cfg, 1)
    c.after_event()
    elect(c, "n1")
    for _ in range(3):
        c.propose("n1")
        c.deliver_all()
    committed = c.core("n1").commit_index
    # n2 leads term 2 alone for a moment: its entries after `committed` reach no one.
    c.crash("n1")
    elect(c, "n2", drop=lambda m: isinstance(m, AppendEntries))
    c.cut("n2", "n3")
    c.propose("n2", 2)
    c.deliver_all()
    stale = c.disk("n2").last_index
    # n3 leads term 3 with n1; healed, it overwrites n2's term-2 entries and goes on.
    c.restart("n1")
    elect(c, "n3")
    c.heal()
    for _ in range(3):
        c.round()
        c.propose("n3")
        c.deliver_all()
    assert c.disk("n2").term_at(stale) == 3 and c.core("n3").progress("n2").match > stale  # type: ignore[union-attr]
    frames = c.disk("n2").frames
    overwrote = next(
        j for j, f in enumerate(frames) if any(e.index == committed + 1 and e.term == 3 for e in record_of(f).entries)
    )
    # Four bytes flipped in that record: refused; the operator's --repair drops it and everything
    # after it (n1 and n3 hold all of it, so it is "safe" by the store's own words).
    assert c.crash_damaged("n2", "flip", record=overwrote) is not None
    c.restart("n2")
    assert "n2" in c.refused
    c.operator_step()
    assert "n2" not in c.refused and c.core("n2").last_index == stale, c.describe()
    for _ in range(5):
        c.round()  # n3's heartbeat: commit = min(match, commit) > stale; n2 commits its term-2 entries
    c.check_liveness()


def test_lost_tail_that_brings_back_overwritten_entries() -> None:
    """The random lost-tail runs, with such tails allowed (3n-lost-tail seed 7011 is the first)."""
    cfg = replace(PROFILES["lost_tail"][0][0], resurrect=True)
    for seed in range(BASE[cfg.name], BASE[cfg.name] + 40):
        simulate(cfg, seed)


def test_the_lost_tail_runs_catch_the_old_follower_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs above have teeth for rule 8: with the old follower commit they find a violation."""
    monkeypatch.setattr(CorruptionCluster, "core_cls", CommitsHeartbeatToItsLastIndex)
    cfg = PROFILES["lost_tail"][0][0]
    with pytest.raises(InvariantViolation, match="state machine safety|committed index"):
        for seed in range(BASE[cfg.name], BASE[cfg.name] + 40):
            simulate(cfg, seed)
