"""Membership changes under chaos: the cluster simulator (harness.py) with nodes joining and leaving.

Each seeded run interleaves, with the usual faults (message loss, duplication,
delay, reordering, partitions, crashes -- also inside a Ready -- restarts and
compaction), random one-server changes made on a leader: a new node (empty
disk) is added as a learner, a learner is promoted (refused until caught up),
a member is removed (the leader too), leadership is transferred, and a node
whose removal is committed is retired for good.  After every step the
harness checks its invariants, membership included (see ``Checker``): at most
one leader per term across configurations, committed entries never change,
applied states are prefixes of each other, every conf entry is one change
from the configuration before it, a leader holds at most one uncommitted one,
and each core's configuration is what its log implies.  Then the liveness
phase heals everything: a single leader emerges in the final configuration,
a fresh proposal commits and every member converges.

Environment: ``RAKIT_SIM_RUNS`` (runs per profile), ``RAKIT_SIM_SEED`` (replay
one seed), ``RAKIT_SIM_STEPS`` (chaos steps per run), as in test_simulation.py.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import replace

import pytest

from rakit.raft.core import RaftCore
from rakit.raft.membership import conf_of
from rakit.raft.messages import ConfChange, ConfState, Entry

from .harness import Cluster, InvariantViolation, SimConfig, with_raft

MEMBERSHIP = {"w_add": 3.0, "w_promote": 4.0, "w_remove": 2.0, "w_transfer": 0.3, "w_retire": 1.0}

PROFILES: dict[str, tuple[SimConfig, int]] = {
    "3n-membership": (
        SimConfig(
            name="3n-membership", nodes=3, steps=600, compact_every=6, w_crash=0.5, crash_in_ready=0.02, **MEMBERSHIP
        ),
        70,
    ),
    "5n-membership-lossy": (
        SimConfig(
            name="5n-membership-lossy",
            nodes=5,
            steps=1000,
            drop=0.1,
            duplicate=0.1,
            max_delay=12,
            w_partition=0.8,
            w_heal=1.5,
            compact_every=8,
            max_nodes=7,
            **{**MEMBERSHIP, "w_promote": 8.0},
        ),
        50,
    ),
    # Grow from one node; small messages, so learners take a while to catch up.
    "1n-grow": (
        with_raft(
            SimConfig(
                name="1n-grow",
                nodes=1,
                steps=600,
                compact_every=5,
                max_down=1,
                w_crash=0.3,
                w_restart=2.0,
                **{**MEMBERSHIP, "w_add": 2.0, "w_remove": 0.5},
            ),
            max_entries_per_msg=2,
            max_inflight=4,
        ),
        40,
    ),
    # Leadership churn: transfers and forced campaigns, no pre-vote (the lease still holds).
    "3n-membership-churn": (
        with_raft(
            SimConfig(
                name="3n-membership-churn",
                nodes=3,
                steps=600,
                compact_every=7,
                w_campaign=1.0,
                drop=0.1,
                max_delay=10,
                **{**MEMBERSHIP, "w_transfer": 2.0},
            ),
            pre_vote=False,
        ),
        40,
    ),
}
PROFILE_BASE = {name: 50_000_000 + (i + 1) * 1_000_000 for i, name in enumerate(PROFILES)}
BATCHES = 2


def _seeds(profile: str, batch: int) -> list[int]:
    if os.environ.get("RAKIT_SIM_SEED"):
        return [int(os.environ["RAKIT_SIM_SEED"])] if batch == 0 else []
    runs = int(os.environ.get("RAKIT_SIM_RUNS", PROFILES[profile][1]))
    return [PROFILE_BASE[profile] + i for i in range(runs) if i % BATCHES == batch]


def run_one(profile: str, seed: int) -> Cluster:
    cfg, _ = PROFILES[profile]
    if os.environ.get("RAKIT_SIM_STEPS"):
        cfg = replace(cfg, steps=int(os.environ["RAKIT_SIM_STEPS"]))
    cluster = Cluster(cfg, seed)
    try:
        cluster.after_event()
        cluster.run_chaos()
        cluster.check_liveness()
        check_final_configuration(cluster)
    except AssertionError as err:
        replay = (
            f"cd /work/main && RAKIT_SIM_SEED={seed} .venv/bin/python -m pytest -q "
            f"'tests/sim/test_membership_sim.py::test_membership_runs[{profile}-0]'"
        )
        pytest.fail(cluster.failure_report(err, replay), pytrace=False)
    return cluster


def check_final_configuration(cluster: Cluster) -> None:
    """After liveness: one leader, a voter of its (committed) configuration, which every member shares."""
    lead = cluster.stable_leader()
    assert lead is not None and lead.core is not None
    conf = lead.core.conf_state
    assert lead.id in conf.voters, f"the final leader {lead.id} is no voter of {conf}"
    assert lead.core.pending_conf_index <= lead.core.commit_index, "the final configuration is not committed"
    for node in cluster.members(lead):
        assert node.core is not None and node.core.conf_state == conf, (
            f"{node.id} is in {node.core.conf_state if node.core else None}, the leader in {conf}"
        )
    assert all(n not in cluster.retired for n in conf.members)


@pytest.mark.parametrize("batch", range(BATCHES))
@pytest.mark.parametrize("profile", list(PROFILES))
def test_membership_runs(profile: str, batch: int) -> None:
    seeds = _seeds(profile, batch)
    totals: Counter[str] = Counter()
    started = time.perf_counter()
    for seed in seeds:
        cluster = run_one(profile, seed)
        totals.update(cluster.stats)
        totals["final_voters"] += len(cluster.stable_leader().core.voters)  # type: ignore[union-attr]
        totals["retired"] += len(cluster.retired)
    if len(seeds) >= 10:
        # The runs must exercise what they claim to (a quiet generator would pass vacuously).
        for key in (
            "conf_add_learner",
            "conf_promote",
            "conf_remove",
            "transfers",
            "retired",
            "conf_refused_conf_change_in_progress",
            "crashes",
            "compactions",
        ):
            assert totals[key] > 0, f"{profile}: no {key} in {len(seeds)} runs: {dict(totals)}"
    print(f"{profile}[{batch}]: {len(seeds)} runs in {time.perf_counter() - started:.1f}s {dict(totals)}")


# -- deterministic scenarios ---------------------------------------------------------------


def _settle(c: Cluster, rounds: int = 5) -> None:
    for _ in range(rounds):
        c.round()


def _grow(c: Cluster, leader: str, nid: str) -> None:
    c.add_node(nid)
    assert c.conf_change(leader, ConfChange.add_learner(nid)) is not None
    c.run_until(lambda: c.core(leader).is_caught_up(nid), 50, f"{nid} catching up")
    assert c.conf_change(leader, ConfChange.promote(nid)) is not None
    _settle(c)


def test_replace_every_original_node_one_at_a_time() -> None:
    """n1..n3 -> n4..n6, one server at a time, with the leader removing itself on the way."""
    c = Cluster(SimConfig(name="replace-all", nodes=3, drop=0.0, duplicate=0.0, max_delay=0), seed=7)
    c.after_event()
    lead = c.run_until(c.stable_leader, 100, "a first leader")
    for new in ("n4", "n5", "n6"):
        lead = c.run_until(c.stable_leader, 100, "a leader")
        _grow(c, lead.id, new)
    for old in ("n1", "n2", "n3"):
        lead = c.run_until(c.stable_leader, 100, "a leader")
        assert c.conf_change(lead.id, ConfChange.remove(old)) is not None
        c.run_until(lambda o=old: o not in c.check.committed_conf.members, 100, f"removing {old}")
        c.retire(old)
        _settle(c)
    c.check_liveness()
    lead = c.stable_leader()
    assert lead is not None and lead.core is not None
    assert lead.core.conf_state == ConfState.of(["n4", "n5", "n6"])
    assert c.converged()


def test_promote_is_refused_while_the_learner_is_cut_off() -> None:
    c = Cluster(SimConfig(name="cut-learner", nodes=3, drop=0.0, duplicate=0.0, max_delay=0), seed=3)
    c.after_event()
    lead = c.run_until(c.stable_leader, 100, "a leader")
    c.add_node("n4")
    c.isolate("n4")
    assert c.conf_change(lead.id, ConfChange.add_learner("n4")) is not None
    _settle(c)
    assert c.conf_change(lead.id, ConfChange.promote("n4")) is None
    assert c.stats["conf_refused_learner_not_caught_up"] == 1
    c.heal()
    c.run_until(lambda: c.core(lead.id).is_caught_up("n4"), 50, "n4 catching up")
    assert c.conf_change(lead.id, ConfChange.promote("n4")) is not None
    c.check_liveness()


# -- the checker has teeth: broken membership rules are caught ----------------------------------


class ConcurrentConfChanges(RaftCore):
    """Proposes a change while an earlier one is uncommitted (and before committing in its term)."""

    _ignore_pending = False

    @property
    def pending_conf_index(self) -> int:
        return 0 if self._ignore_pending else RaftCore.pending_conf_index.fget(self)  # type: ignore[attr-defined]

    def propose_conf_change(self, change: ConfChange) -> tuple[int, int]:
        self._ignore_pending = True
        try:
            return super().propose_conf_change(change)
        finally:
            self._ignore_pending = False


class KeepsTruncatedConf(RaftCore):
    """Never undoes a configuration whose entry was truncated away."""

    def _on_log_append(self, entries: list[Entry]) -> None:  # type: ignore[override]
        for entry in entries:
            conf = conf_of(entry)
            if conf is not None:
                self._confs.confs.append((entry.index, conf))
                self._set_conf(conf)


class LearnersCampaign(RaftCore):
    """A learner's election timer starts elections (its own vote counting for nothing)."""

    def _may_campaign(self) -> bool:
        return self._id in self._conf.members or super()._may_campaign()


class IgnoresRemovedLeaderRule(RaftCore):
    """A leader that removed itself steps down at once, before the removal commits: and so
    one that lost its leadership never campaigns to finish its removal (rule 15's exception)."""

    def _may_campaign(self) -> bool:
        return self._id in self._conf.voters


@pytest.mark.parametrize(
    "mutant, profile, budget",
    [
        (ConcurrentConfChanges, "3n-membership", 40),
        (KeepsTruncatedConf, "3n-membership-churn", 80),
        (LearnersCampaign, "1n-grow", 80),
        (IgnoresRemovedLeaderRule, "3n-membership-churn", 80),
    ],
)
def test_broken_membership_rules_are_caught(mutant: type[RaftCore], profile: str, budget: int) -> None:
    cfg, _ = PROFILES[profile]

    class Broken(Cluster):
        core_cls = mutant

    for i in range(budget):
        cluster = Broken(cfg, PROFILE_BASE[profile] + 500_000 + i)
        try:
            cluster.after_event()
            cluster.run_chaos()
            cluster.check_liveness()
        except InvariantViolation as err:
            print(f"{mutant.__name__}: caught at run {i}: {str(err).splitlines()[0]}")
            return
    pytest.fail(f"{mutant.__name__} survived {budget} runs of {profile}")
