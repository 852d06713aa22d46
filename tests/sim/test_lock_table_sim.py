"""The lock table on the Raft simulation: every node's applied table is the same.

Each node of the simulated cluster (see harness.py) applies the committed
entries to a real ``Registry([LockTable()])`` besides the harness's running
hash; a compaction snapshots ``registry.snapshot()`` (appended to the
harness's (index, hash) pair), and a node restores its table from those bytes
when it restarts from disk or installs a snapshot a leader sent.  Proposals
are random lock commands, encoded with ``registry.encode``, over 4 resources
and 5 clients -- acquires (exclusive/shared, waiting or not, sometimes setting
``lock_delay``), releases (sometimes fenced, sometimes with a stale token),
renewals, expiries with the lease stamp the leader's own table shows or a
stale one, cancelled waits, delay ends, options, and a rare malformed or
undecodable command -- so waits, upgrades, deadlocks, lock delays and grants
to waiters all happen.  The leader draws them from its own applied table, as
the lock service would.

Checked after every applied entry and every restore, besides every Raft
invariant of ``harness.Checker``:

* two nodes that applied the same index have byte-identical
  ``registry.snapshot()`` and returned the same result for that entry; a
  restored table re-snapshots to exactly the bytes it was restored from, which
  are the bytes every node had at that index;
* on every node, an exclusive holder is the only holder (read API:
  ``status`` and ``holding``), a client holds or waits on a resource at most
  once, and a resource with waiters but no holders is in delay (rule 7: the
  queue never stalls);
* fencing tokens (``status()["fencing_token"]``) never decrease along a
  node's applied history: for every two states a node ever had (across
  crashes, restarts and snapshot installs), the one at the higher applied
  index has tokens >= the other's, resource by resource.  (A restarted node
  may show an *older* state -- its snapshot -- until it has replayed its log;
  what may never happen is a lower token at a higher index.)

At the end (the harness's liveness phase) every node reaches the same applied
index and the same table snapshot.

Environment, as in test_simulation.py: ``RAKIT_SIM_RUNS`` (runs per profile),
``RAKIT_SIM_SEED`` (replay one seed), ``RAKIT_SIM_STEPS``.  A failing run
prints its seed, the replay command, the cluster and its last events.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import random
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from typing import Any

import msgspec
import pytest

from rakit.raft.messages import ENTRY_NORMAL, Entry, Snapshot
from rakit.statemachines.locks import (
    EXCLUSIVE,
    SHARED,
    Acquire,
    CancelWait,
    DelayEnd,
    Expire,
    LockTable,
    Release,
    Renew,
    SetOptions,
)
from rakit.statemachines.registry import Registry

from .harness import Checker, Cluster, InvariantViolation, SimConfig, SimStateMachine
from .machine_runs import CHAOS_COMMON

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESOURCES = ["r0", "r1", "r2", "r3"]
CLIENTS = ["c0", "c1", "c2", "c3", "c4"]

_result_encoder = msgspec.msgpack.Encoder()


# ---------------------------------------------------------------------------
# The state machine: the harness's (index, hash) plus a real lock registry
# ---------------------------------------------------------------------------


class LockSM(SimStateMachine):
    table_cls: type[LockTable] = LockTable  # the teeth test swaps in a broken one

    def __init__(self) -> None:
        super().__init__()
        self.table = self.table_cls()
        self.registry = Registry([self.table])

    def encode(self) -> bytes:
        return msgspec.msgpack.encode([self.applied, self.hash, self.registry.snapshot()])

    def tokens(self) -> tuple[int, ...]:
        return tuple(self.table.status(r)["fencing_token"] or 0 for r in RESOURCES)


def _payload(data: bytes) -> bytes:
    parts = msgspec.msgpack.decode(data)
    if len(parts) != 3:
        raise InvariantViolation(f"snapshot without a lock table: {len(parts)} parts")
    return bytes(parts[2])


class LockChecker(Checker):
    sm_cls: type[LockSM] = LockSM

    def __init__(self) -> None:
        super().__init__()
        self.proposed_at: dict[tuple[int, int], bytes] = {}
        self.table_at: dict[int, bytes] = {0: LockSM().registry.snapshot()}
        self.result_at: dict[int, bytes] = {}
        # node -> sorted applied indexes it was seen at, and its tokens there
        self.token_idx: dict[str, list[int]] = {}
        self.token_at: dict[str, dict[int, tuple[int, ...]]] = {}
        self.counts: Counter[str] = Counter()
        self.booting = False

    # Lock commands repeat (two identical Releases are two proposals), so
    # proposals are identified by where propose() put them, not by their bytes.
    def on_propose(self, node: str, data: bytes, term: int, index: int) -> None:
        self.proposed_at[(term, index)] = data

    def check_proposal(self, node: str, e: Entry) -> None:
        want = self.proposed_at.get((e.term, e.index))
        if want is None:
            raise InvariantViolation(f"{node} applied an entry nobody proposed at (term {e.term}, index {e.index})")
        if want != e.data:
            raise InvariantViolation(
                f"{node} applied {e.data!r} at (term {e.term}, index {e.index}), but {want!r} was proposed there"
            )

    def new_state_machine(self) -> SimStateMachine:
        return self.sm_cls()

    def on_apply(self, node: str, sm: SimStateMachine, e: Entry) -> None:
        super().on_apply(node, sm, e)
        assert isinstance(sm, LockSM)
        if e.kind == ENTRY_NORMAL:
            result = sm.registry.apply(e.index, e.data)
            enc = _result_encoder.encode(result)
            seen = self.result_at.setdefault(e.index, enc)
            if seen is enc:
                self._count(result)
            elif seen != enc:
                raise InvariantViolation(
                    f"lock results differ: {node} got {result!r} applying index {e.index}, "
                    f"another node got {msgspec.msgpack.decode(seen)!r}"
                )
        self._check_table(node, sm, sm.registry.snapshot())

    def on_restore(self, node: str, snap: Snapshot) -> SimStateMachine:
        base = super().on_restore(node, snap)  # checks index, hash and term
        data = _payload(snap.data)
        sm = self.sm_cls()
        sm.applied, sm.hash = base.applied, base.hash
        sm.registry.restore(data)
        again = sm.registry.snapshot()
        if again != data:
            raise InvariantViolation(
                f"{node}: the lock table restored from the snapshot at {sm.applied} re-snapshots differently\n"
                f"  restored from: {data!r}\n  re-snapshot:   {again!r}"
            )
        self.counts["restores_from_disk" if self.booting else "restores_from_leader"] += 1
        self._check_table(node, sm, again)
        return sm

    def _check_table(self, node: str, sm: LockSM, snap: bytes) -> None:
        i = sm.applied
        seen = self.table_at.setdefault(i, snap)
        if seen != snap:
            raise InvariantViolation(
                f"lock tables differ at applied index {i}: {node} has\n  {snap!r}\nanother node had\n  {seen!r}"
            )
        t = sm.table
        for r in RESOURCES:
            st = t.status(r)
            holders, waiters = st["holders"], [w["client_id"] for w in st["waiters"]]
            if len(set(holders)) != len(holders) or len(set(waiters)) != len(waiters):
                raise InvariantViolation(f"{node} at {i}: a client holds or waits twice on {r}: {st}")
            modes = []
            for c in holders:
                g = t.holding(r, c)
                if g is None:
                    raise InvariantViolation(f"{node} at {i}: status({r}) lists holder {c}, holding() knows none")
                modes.append(g.mode)
            if EXCLUSIVE in modes and len(holders) > 1:
                raise InvariantViolation(f"{node} at {i}: exclusive holder beside others on {r}: {holders} {modes}")
            if holders and st["mode"] != modes[0]:
                raise InvariantViolation(f"{node} at {i}: status({r}) mode {st['mode']} but holders {modes}")
            if waiters and not holders and t.delay_since(r) is None:
                raise InvariantViolation(f"{node} at {i}: {r} is free and not in delay but has waiters: {st}")
        # Fencing tokens never go down along the node's history, ordered by applied index.
        tok = sm.tokens()
        idx = self.token_idx.setdefault(node, [])
        at = self.token_at.setdefault(node, {})
        k = bisect.bisect_left(idx, i)
        if k < len(idx) and idx[k] == i:
            if at[i] != tok:
                raise InvariantViolation(f"{node}: tokens at index {i} were {at[i]}, now {tok}")
            return
        if k > 0 and any(a > b for a, b in zip(at[idx[k - 1]], tok)):
            raise InvariantViolation(
                f"fencing token went down on {node}: {dict(zip(RESOURCES, at[idx[k - 1]]))} at index "
                f"{idx[k - 1]}, {dict(zip(RESOURCES, tok))} at index {i}"
            )
        if k < len(idx) and any(a > b for a, b in zip(tok, at[idx[k]])):
            raise InvariantViolation(
                f"fencing token went down on {node}: {dict(zip(RESOURCES, tok))} at index {i}, "
                f"{dict(zip(RESOURCES, at[idx[k]]))} at index {idx[k]} (seen before a restart)"
            )
        idx.insert(k, i)
        at[i] = tok

    def _count(self, result: Any) -> None:
        c = self.counts
        name = type(result).__name__
        c[name] += 1
        if name == "Refused":
            c["refused_" + result.code] += 1
        elif name == "Granted":
            c["granted_upgraded" if result.upgraded else "granted_again" if result.again else "granted_new"] += 1
        elif name == "Expired" and result.delay_since is not None:
            c["expired_into_delay"] += 1
        for g in getattr(result, "grants", ()):
            c["grants_to_waiters"] += 1
            c[f"grants_to_waiters_{getattr(g, 'mode', None) or g.kind}"] += 1  # a lock mode, or the book's kind


# ---------------------------------------------------------------------------
# The cluster: proposals are lock commands drawn from the leader's table
# ---------------------------------------------------------------------------


class LockCluster(Cluster):
    checker_cls = LockChecker

    def __init__(self, cfg: SimConfig, seed: int) -> None:
        # A stream of its own: the Raft schedule of a seed is the plain simulation's.
        self.cmd_rng = random.Random(seed * 1_000_003 + 17)
        super().__init__(cfg, seed)

    @property
    def lock_check(self) -> LockChecker:
        assert isinstance(self.check, LockChecker)
        return self.check

    def _boot(self, node: Any) -> None:
        self.lock_check.booting = True
        try:
            super()._boot(node)
        finally:
            self.lock_check.booting = False

    def proposal_data(self, nid: str) -> bytes:
        sm = self.nodes[nid].sm
        assert isinstance(sm, LockSM)
        return random_command(self.cmd_rng, sm)

    def converged(self) -> bool:
        if not super().converged():
            return False
        snaps = {n.sm.registry.snapshot() for n in self.up() if isinstance(n.sm, LockSM)}
        return len(snaps) == 1


def random_command(rng: random.Random, sm: LockSM) -> bytes:
    """A lock command as the leader's lock service might propose it, given its applied table."""
    t, enc = sm.table, sm.registry.encode
    r, c = rng.choice(RESOURCES), rng.choice(CLIENTS)
    holds = list(t.holds())
    x = rng.random()
    if (0.66 <= x < 0.78 and not holds) or (0.87 <= x < 0.94 and not any(True for _ in t.delayed())):
        if rng.random() < 0.7:  # little to expire or end: mostly acquire instead
            x = rng.random() * 0.42
    if x < 0.42:
        mode = EXCLUSIVE if rng.random() < 0.5 else SHARED
        if holds and rng.random() < 0.2:  # a holder asking again, maybe for an upgrade
            r, c, _, _ = rng.choice(holds)
        wait = 0.0 if rng.random() < 0.25 else rng.choice([1.0, 10.0])
        delay = rng.choice([0.0, 2.0, 2.0]) if rng.random() < 0.15 else None
        return enc(Acquire(r, c, mode, rng.choice([1.0, 5.0, 30.0]), wait, delay))
    if x < 0.60:
        token = None
        if holds and rng.random() < 0.85:
            r, c, _, _ = rng.choice(holds)
            y = rng.random()
            if y < 0.35:
                g = t.holding(r, c)
                token = g.token if g is not None else None
            elif y < 0.5:
                token = rng.randint(1, max(1, sm.applied))  # most likely stale
        return enc(Release(r, c, token))
    if x < 0.66:
        if holds and rng.random() < 0.8:
            r, c, _, _ = rng.choice(holds)
        return enc(Renew(r, c, rng.choice([1.0, 5.0])))
    if x < 0.78:
        lease = rng.randint(0, max(1, sm.applied))
        if holds and rng.random() < 0.85:
            r, c, _, lease = rng.choice(holds)
            if rng.random() < 0.2:
                lease -= 1  # renewed since: stale
        return enc(Expire(r, c, lease))
    if x < 0.87:
        ws = list(t.waiters())
        if ws and rng.random() < 0.85:
            r, c, _ = rng.choice(ws)
        return enc(CancelWait(r, c))
    if x < 0.94:
        since: int | None = None
        delayed = list(t.delayed())
        if delayed and rng.random() < 0.85:
            r, _ = rng.choice(delayed)
            y = rng.random()
            if y < 0.6:
                since = t.delay_since(r)
            elif y < 0.8:
                since = max(0, (t.delay_since(r) or 0) - 1)  # a delay restarted since: stale
        return enc(DelayEnd(r, since))
    if x < 0.985:
        return enc(SetOptions(r, rng.choice([0.0, 1.5])))
    # Rare malformed commands: refused or skipped, the same way everywhere.
    return rng.choice(
        [
            enc(Acquire(r, c, "bogus", 1.0, 0.0)),
            enc(Acquire(r, c, EXCLUSIVE, 0.0, 1.0)),
            enc(Renew(r, c, float("nan"))),
            enc(SetOptions(r, -1.0)),
            b"\xc1",  # never valid msgpack
            msgspec.msgpack.encode({"type": "lock.acquire", "resource": r}),  # missing fields
            msgspec.msgpack.encode({"type": "kv.put", "key": "k"}),  # nobody's tag
        ]
    )


# ---------------------------------------------------------------------------
# Profiles and runs
# ---------------------------------------------------------------------------

PROFILES: dict[str, tuple[SimConfig, int]] = {
    "3n-locks": (SimConfig(name="3n-locks", nodes=3, compact_every=5, **CHAOS_COMMON), 120),
    "5n-locks": (SimConfig(name="5n-locks", nodes=5, compact_every=6, **CHAOS_COMMON), 64),
    # Every node may be down at once: whole tables come back from disk only.
    "3n-locks-whole-cluster-crashes": (
        SimConfig(
            name="3n-locks-whole-cluster-crashes",
            nodes=3,
            compact_every=4,
            **{**CHAOS_COMMON, "w_crash": 1.2, "w_restart": 2.0, "crash_in_ready": 0.03},
            max_down=3,
        ),
        80,
    ),
}

BATCHES = 2
PROFILE_BASE = {name: 70_000_000 + (i + 1) * 1_000_000 for i, name in enumerate(PROFILES)}


def _seeds(profile: str, batch: int) -> list[int]:
    if os.environ.get("RAKIT_SIM_SEED"):
        return [int(os.environ["RAKIT_SIM_SEED"])] if batch == 0 else []
    runs = int(os.environ.get("RAKIT_SIM_RUNS", PROFILES[profile][1]))
    return [PROFILE_BASE[profile] + i for i in range(runs) if i % BATCHES == batch]


def replay_command(profile: str, seed: int) -> str:
    return (
        f"cd /work/main && RAKIT_SIM_SEED={seed} .venv/bin/python -m pytest -q "
        f"'tests/sim/test_lock_table_sim.py::test_lock_table_runs[{profile}-0]'"
    )


def simulate(cluster: LockCluster) -> None:
    """Chaos, then liveness, then the final check; raises on any violation."""
    cluster.after_event()
    cluster.run_chaos()
    cluster.check_liveness()
    final = {n.id: n.sm.registry.snapshot() for n in cluster.up() if isinstance(n.sm, LockSM)}
    if len(final) != cluster.cfg.nodes or len(set(final.values())) != 1:
        raise InvariantViolation(f"final lock tables differ: {final}")


def run_one(profile: str, seed: int) -> LockCluster:
    cfg, _ = PROFILES[profile]
    if os.environ.get("RAKIT_SIM_STEPS"):
        cfg = replace(cfg, steps=int(os.environ["RAKIT_SIM_STEPS"]))
    cluster = LockCluster(cfg, seed)
    try:
        simulate(cluster)
    except AssertionError as err:
        pytest.fail(cluster.failure_report(err, replay_command(profile, seed)), pytrace=False)
    except Exception as err:  # the core or the lock table raised where it must not
        import traceback

        pytest.fail(
            cluster.failure_report(err, replay_command(profile, seed))
            + "\n\n"
            + "".join(traceback.format_exception(err)),
            pytrace=False,
        )
    cluster.stats["applied"] = len(cluster.lock_check.result_at)
    for k, v in cluster.lock_check.counts.items():
        cluster.stats[k] = cluster.stats.get(k, 0) + v
    return cluster


@pytest.mark.parametrize("batch", range(BATCHES), ids=lambda b: str(b))
@pytest.mark.parametrize("profile", list(PROFILES))
def test_lock_table_runs(profile: str, batch: int) -> None:
    seeds = _seeds(profile, batch)
    if not seeds:
        pytest.skip("no seeds in this batch (RAKIT_SIM_SEED replays in batch 0; few RAKIT_SIM_RUNS)")
    totals: Counter[str] = Counter()
    for seed in seeds:
        totals.update(run_one(profile, seed).stats)
    if os.environ.get("RAKIT_SIM_SEED") or len(seeds) < 10:
        return
    # Not vacuous: these runs granted waiters, refused deadlocks, delayed, and restored tables.
    for what, least in [
        ("grants_to_waiters", 20),
        ("refused_deadlock", 3),
        ("Waiting", 20),
        ("granted_upgraded", 1),
        ("expired_into_delay", 1),
        ("DelayEnded", 1),
        ("Stale", 5),
        ("TokenMismatch", 1),
        ("compactions", 20),
        ("restores_from_disk", 5),
    ]:
        assert totals[what] >= least, (what, totals[what], dict(totals))
    if not profile.startswith("3n-locks-whole"):
        assert totals["restores_from_leader"] >= 1, dict(totals)


def test_same_seed_same_tables() -> None:
    """Determinism: one seed replays the same trace and the same lock tables."""
    a = run_one("5n-locks", 4242)
    b = run_one("5n-locks", 4242)
    assert list(a.trace) == list(b.trace)
    assert a.stats == b.stats
    assert a.lock_check.table_at == b.lock_check.table_at
    assert a.lock_check.result_at == b.lock_check.result_at


def _digest(seeds: list[int]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for seed in seeds:
        c = run_one("3n-locks", seed)
        for i in sorted(c.lock_check.table_at):
            h.update(b"%d:" % i + c.lock_check.table_at[i] + c.lock_check.result_at.get(i, b""))
    return h.hexdigest()


def test_tables_do_not_depend_on_the_hash_seed() -> None:
    """Replicas are separate processes: str hashing (set/dict order) must not leak into tables or results.

    Every simulated node shares this process and its PYTHONHASHSEED, so the
    runs above cannot see such a leak; two interpreters with other hash seeds
    replaying the same runs must produce the same bytes.
    """
    seeds = [PROFILE_BASE["3n-locks"] + i for i in range(3)]
    here = _digest(seeds)
    code = f"from tests.sim.test_lock_table_sim import _digest; print(_digest({seeds!r}))"
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=_ROOT, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == here, f"PYTHONHASHSEED={hash_seed} gave other tables or results"


class CountsItsOwnIndexes(LockTable):
    """Numbers commands with a counter of its own instead of the log index: state outside the snapshot."""

    def __init__(self) -> None:
        super().__init__()
        self._n = 0

    def apply(self, index: int, command: Any) -> Any:
        self._n += 1
        return super().apply(self._n, command)


class ForgetsTokenWhenFree(LockTable):
    """Drops a resource's max_token once it is free again (rule 2 says it survives)."""

    def _release(self, index: int, cmd: Release) -> Any:
        result = super()._release(index, cmd)
        r = self._resources.get(cmd.resource)
        if r is not None and not r.holders and not r.waiters:
            r.max_token = None
        return result


def _cluster_with(table_cls: type[LockTable]) -> type[LockCluster]:
    sm = type("MutantSM", (LockSM,), {"table_cls": table_cls})
    checker = type("MutantChecker", (LockChecker,), {"sm_cls": sm})
    return type("MutantCluster", (LockCluster,), {"checker_cls": checker})


@pytest.mark.parametrize(
    ("mutant", "expect"),
    [
        (CountsItsOwnIndexes, "differ"),  # lock results or lock tables
        (ForgetsTokenWhenFree, "fencing token went down"),
    ],
)
def test_checker_has_teeth(mutant: type[LockTable], expect: str) -> None:
    """Broken tables must be caught by the checks above within a few seeded runs."""
    cls, cfg = _cluster_with(mutant), PROFILES["3n-locks"][0]
    for i in range(30):
        try:
            simulate(cls(cfg, PROFILE_BASE["3n-locks"] + i))
        except InvariantViolation as err:
            assert expect in str(err), err
            return
    pytest.fail(f"{mutant.__name__} went unnoticed in 30 runs")


if __name__ == "__main__":  # quick look: python -m tests.sim.test_lock_table_sim
    import time

    for name in PROFILES:
        t0 = time.time()
        tot: Counter[str] = Counter()
        for s in range(10):
            tot.update(run_one(name, PROFILE_BASE[name] + s).stats)
        print(
            f"{name:32} {(time.time() - t0) / 10 * 1000:.0f} ms/run  applied/run {tot['applied'] / 10:.0f}"
            f"  {dict(sorted(tot.items()))}"
        )
