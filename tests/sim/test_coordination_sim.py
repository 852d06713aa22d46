"""Sessions, semaphores and elections on the Raft simulation: every node's applied machines are the same.

Each simulated node applies the committed entries to the registry a real node
runs (``Registry([LockTable(), CoordinationMachine([lock_table])])``, as in
``rakit.node.runtime``), so sessions end their locks, permits and
candidacies through the same hooks.  Proposals are drawn by the leader from
its own applied state, as the coordination service and keeper would:
session grants, keepalives, revokes and expiries (current or stale lease
stamps); semaphore acquires (weighted, waiting or not, attached to a session
or not, sometimes with another limit), releases, renewals, expiries and
cancelled waits; campaigns (attached or not), renewals, proclaims with the
right or a stale term, resignations, withdrawals and expiries; locks attached
to sessions; ``ExpireBatch`` entries with several expiries; the lock table's
own commands; and rare malformed commands.

Checked after every applied entry and every restore, besides every Raft
invariant of ``harness.Checker`` and the lock table checks of
``test_lock_table_sim.LockChecker`` (byte-identical snapshots and results
at each index on every node, restore round-trips):

* a semaphore's holders never hold more than its limit; an election never
  has more than one leader; nobody holds or waits twice on one name;
* nothing is held or awaited for a session that no longer exists, on any of
  the three tables (a session's end removes all of it in its one entry);
* fencing tokens of locks, the highest token of each semaphore and the
  term of each election never decrease along a node's applied history
  (across crashes, restarts and snapshot installs).

Environment as in test_lock_table_sim.py: ``RAKIT_SIM_RUNS``, ``RAKIT_SIM_SEED``, ``RAKIT_SIM_STEPS``.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from typing import Any

import msgspec
import pytest

from rakit.statemachines import elections as EL
from rakit.statemachines import semaphores as SM
from rakit.statemachines import sessions as SS
from rakit.statemachines.coordination import CoordinationMachine, ExpireBatch, SessionLockAcquire
from rakit.statemachines.holds import Book
from rakit.statemachines.locks import EXCLUSIVE, Acquire, LockTable
from rakit.statemachines.registry import Registry

from .harness import InvariantViolation, SimConfig, SimStateMachine
from .machine_runs import CHAOS_COMMON, assert_caught, run_checked
from .test_lock_table_sim import CLIENTS, RESOURCES, LockChecker, LockCluster, LockSM, random_command

SEMAPHORES = {"g0": 2, "g1": 3}  # name -> the limit every acquire asks for (mostly)
ELECTIONS = ["e0", "e1"]
SESSIONS = {f"s{i}": CLIENTS[i] for i in range(4)}  # session id -> its client


class CoordSM(LockSM):
    coordination_cls: type[CoordinationMachine] = CoordinationMachine

    def __init__(self) -> None:
        SimStateMachine.__init__(self)
        self.table = LockTable()
        self.coordination = self.coordination_cls([self.table])
        self.registry = Registry([self.table, self.coordination])

    def tokens(self) -> tuple[int, ...]:
        c = self.coordination
        sems = tuple(_max_token(c.semaphores.book, n) for n in SEMAPHORES)
        terms = tuple(c.elections.observe(n)["term"] or 0 for n in ELECTIONS)
        return super().tokens() + sems + terms


def _max_token(book: Book, name: str) -> int:
    r = book.get(name)
    return (r.max_token or 0) if r is not None else 0


class CoordChecker(LockChecker):
    sm_cls = CoordSM

    def _check_table(self, node: str, sm: Any, snap: bytes) -> None:
        super()._check_table(node, sm, snap)
        assert isinstance(sm, CoordSM)
        i, c = sm.applied, sm.coordination
        for kind, book in (("semaphore", c.semaphores.book), ("election", c.elections.book)):
            for r in book.records.values():
                names = [h.holder for h in r.holders] + [w.holder for w in r.waiters]
                if len(set(names)) != len(names):
                    raise InvariantViolation(f"{node} at {i}: someone holds or waits twice on {kind} {r.name}: {r}")
                if kind == "election" and len(r.holders) > 1:
                    raise InvariantViolation(f"{node} at {i}: two leaders of {r.name}: {r.holders}")
                if r.held > r.capacity:
                    raise InvariantViolation(f"{node} at {i}: {kind} {r.name} holds {r.held} > limit {r.capacity}")
        for sid in SESSIONS:
            if c.sessions.get(sid) is not None:
                continue
            left = [
                (kind, r.name)
                for kind, book in (("semaphore", c.semaphores.book), ("election", c.elections.book))
                for r in book.records.values()
                if any(e.session_id == sid for e in [*r.holders, *r.waiters])
            ]
            if left or sm.table.attached(sid):
                raise InvariantViolation(
                    f"{node} at {i}: session {sid} is gone but still holds or waits: {left} locks "
                    f"{sm.table.attached(sid)}"
                )

    def _count(self, result: Any) -> None:
        super()._count(result)
        name = type(result).__name__
        if name in ("SessionEnded", "BatchResults"):
            inner = result.results if name == "BatchResults" else []
            for x in inner:
                self.counts["batched_" + type(x).__name__] += 1
            if name == "SessionEnded":
                self.counts["session_ended_with_holds"] += bool(result.semaphores or result.elections)


class CoordCluster(LockCluster):
    checker_cls = CoordChecker

    def proposal_data(self, nid: str) -> bytes:
        sm = self.nodes[nid].sm
        assert isinstance(sm, CoordSM)
        return random_coord_command(self.cmd_rng, sm)


def _expiries(sm: CoordSM, rng: random.Random) -> list[Any]:
    """The leader's lease timers, as ``CoordinationMachine.leases`` lists them, sometimes one stamp behind."""
    out = []
    for _, expire in sm.coordination.leases():
        if rng.random() < 0.2:
            expire = msgspec.structs.replace(expire, lease=expire.lease - 1)  # renewed since: stale
        out.append(expire)
    return out


def random_coord_command(rng: random.Random, sm: CoordSM) -> bytes:
    enc, c = sm.registry.encode, sm.coordination
    x = rng.random()
    if x < 0.15:
        return random_command(rng, sm)  # the lock table's own traffic
    sid = rng.choice(list(SESSIONS))
    client = SESSIONS[sid] if rng.random() < 0.9 else rng.choice(CLIENTS)
    attached = sid if rng.random() < 0.4 else None
    if x < 0.27:  # sessions
        y = rng.random()
        if y < 0.45:
            return enc(SS.SessionGrant(sid, SESSIONS[sid], rng.choice([2.0, 10.0]), rng.choice([0.0, 0.0, 1.5])))
        if y < 0.65:
            return enc(SS.SessionKeepalive(sid))
        if y < 0.8:
            return enc(SS.SessionRevoke(sid))
        leases = {e.session_id: e.lease for _, e in c.leases() if isinstance(e, SS.SessionExpire)}
        lease = leases.get(sid, rng.randint(0, max(1, sm.applied)))
        return enc(SS.SessionExpire(sid, lease - (rng.random() < 0.2)))
    if x < 0.55:  # semaphores
        name = rng.choice(list(SEMAPHORES))
        y = rng.random()
        if y < 0.45:
            limit = SEMAPHORES[name] if rng.random() < 0.93 else SEMAPHORES[name] + 1  # limit_mismatch
            permits = 1 if rng.random() < 0.7 else 2
            wait = 0.0 if rng.random() < 0.3 else 5.0
            return enc(SM.SemAcquire(name, client, limit, permits, rng.choice([1.0, 5.0]), wait, attached))
        status = c.semaphores.status(name)
        holders = [h["client_id"] for h in status["holders"]]
        waiters = [w["client_id"] for w in status["waiters"]]
        if y < 0.7:
            return enc(SM.SemRelease(name, rng.choice(holders) if holders and rng.random() < 0.85 else client))
        if y < 0.82:
            return enc(SM.SemRenew(name, rng.choice(holders) if holders else client, rng.choice([1.0, 5.0])))
        if y < 0.92:
            return enc(SM.SemCancelWait(name, rng.choice(waiters) if waiters else client))
        expiries = [e for e in _expiries(sm, rng) if isinstance(e, SM.SemExpire)]
        return enc(rng.choice(expiries) if expiries else SM.SemExpire(name, client, rng.randint(0, sm.applied + 1)))
    if x < 0.83:  # elections
        name = rng.choice(ELECTIONS)
        view = c.elections.leader(name)
        leader, term, candidates = view["leader"], view["term"], view["candidates"]
        y = rng.random()
        if y < 0.4:
            value = msgspec.json.encode({"host": client})
            return enc(
                EL.Campaign(name, client, value, rng.choice([1.0, 5.0]), 0.0 if rng.random() < 0.3 else 5.0, attached)
            )
        if y < 0.55:
            return enc(EL.ElectionRenew(name, leader or client, rng.choice([1.0, 5.0])))
        if y < 0.65:
            stale = rng.random() < 0.3 or term is None
            return enc(EL.Proclaim(name, leader or client, (term or 0) - stale, b'{"v": 1}'))
        if y < 0.8:
            return enc(EL.Resign(name, leader if leader and rng.random() < 0.8 else client))
        if y < 0.9:
            return enc(EL.Withdraw(name, rng.choice(candidates) if candidates else client))
        expiries = [e for e in _expiries(sm, rng) if isinstance(e, EL.ElectionExpire)]
        return enc(rng.choice(expiries) if expiries else EL.ElectionExpire(name, client, rng.randint(0, sm.applied)))
    if x < 0.93:  # a lock attached to a session
        r = rng.choice(RESOURCES)
        wait = 0.0 if rng.random() < 0.4 else 5.0
        return enc(SessionLockAcquire(Acquire(r, client, EXCLUSIVE, 5.0, wait, session_id=sid)))
    if x < 0.985:  # the keeper's batch: several expiries in one entry
        expiries = _expiries(sm, rng)
        rng.shuffle(expiries)
        return enc(ExpireBatch(expiries[: rng.randint(1, 4)] or [SS.SessionExpire(sid, 0)]))
    return rng.choice(
        [
            enc(SM.SemAcquire("g0", client, 0, 1, 1.0, 0.0)),  # limit 0
            enc(SM.SemAcquire("g0", client, 2, 3, 1.0, 0.0)),  # more permits than the limit
            enc(EL.Campaign("e0", client, b"{}", float("nan"), 0.0)),
            enc(SS.SessionGrant(sid, client, -1.0)),
            msgspec.msgpack.encode({"type": "sem.acquire", "name": "g0"}),  # missing fields
        ]
    )


PROFILES: dict[str, tuple[SimConfig, int]] = {
    "3n-coordination": (SimConfig(name="3n-coordination", nodes=3, compact_every=5, **CHAOS_COMMON), 40),
    "5n-coordination-whole-cluster-crashes": (
        SimConfig(
            name="5n-coordination-whole-cluster-crashes",
            nodes=5,
            compact_every=6,
            **{**CHAOS_COMMON, "w_crash": 1.2, "w_restart": 2.0, "crash_in_ready": 0.03},
            max_down=5,
        ),
        24,
    ),
}
PROFILE_BASE = {name: 90_000_000 + (i + 1) * 1_000_000 for i, name in enumerate(PROFILES)}


def run_one(profile: str, seed: int, cls: type[CoordCluster] = CoordCluster) -> CoordCluster:
    replay = (
        f"cd /work/main && RAKIT_SIM_SEED={seed} .venv/bin/python -m pytest -q "
        f"'tests/sim/test_coordination_sim.py::test_coordination_runs[{profile}]'"
    )
    cluster: CoordCluster = run_checked(cls, PROFILES[profile][0], seed, replay)
    return cluster


@pytest.mark.parametrize("profile", list(PROFILES))
def test_coordination_runs(profile: str) -> None:
    if os.environ.get("RAKIT_SIM_SEED"):
        run_one(profile, int(os.environ["RAKIT_SIM_SEED"]))
        return
    runs = int(os.environ.get("RAKIT_SIM_RUNS", PROFILES[profile][1]))
    totals: Counter[str] = Counter()
    for i in range(runs):
        totals.update(run_one(profile, PROFILE_BASE[profile] + i).stats)
    if runs < 10:
        return
    if profile.startswith("5n-coordination-whole"):  # mostly down: few commands land, but tables come back from disk
        assert totals["restores_from_disk"] >= 10 and totals["SemGranted"] >= 10, dict(totals)
        return
    # Not vacuous: sessions ended holds, waiters were granted, batches and stale expiries were applied.
    for what, least in [
        ("SessionEnded", 10),
        ("session_ended_with_holds", 3),
        ("SemGranted", 20),
        ("Elected", 20),
        ("Resigned", 5),
        ("BatchResults", 5),
        ("Stale", 5),
        ("refused_limit_mismatch", 1),
        ("refused_session_not_found", 1),
        ("restores_from_disk", 3),
    ]:
        assert totals[what] >= least, (what, totals[what], dict(totals))


class ElectsTwo(CoordinationMachine):
    """Lets a second candidate lead beside the first (rule: one leader per election)."""

    def apply(self, index: int, command: Any) -> Any:
        result = super().apply(index, command)
        if isinstance(command, EL.Campaign):
            r = self.elections.book.get(command.name)
            if r is not None and r.waiters and r.holders:
                w = r.waiters.pop(0)
                r.holders.append(
                    msgspec.convert({**msgspec.structs.asdict(r.holders[0]), "holder": w.holder}, type(r.holders[0]))
                )
        return result


class KeepsPermitsOfEndedSessions(CoordinationMachine):
    """Ends a revoked session without ending its semaphore holds."""

    def apply(self, index: int, command: Any) -> Any:
        if isinstance(command, SS.SessionRevoke):
            return self.sessions.apply(index, command)
        return super().apply(index, command)


@pytest.mark.parametrize(
    ("mutant", "expect"),
    [(ElectsTwo, "two leaders"), (KeepsPermitsOfEndedSessions, "is gone but still holds")],
)
def test_checker_has_teeth(mutant: type[CoordinationMachine], expect: str) -> None:
    sm = type("MutantSM", (CoordSM,), {"coordination_cls": mutant})
    checker = type("MutantChecker", (CoordChecker,), {"sm_cls": sm})
    cls = type("MutantCluster", (CoordCluster,), {"checker_cls": checker})
    base = PROFILE_BASE["3n-coordination"]
    assert_caught(cls, PROFILES["3n-coordination"][0], range(base, base + 20), expect, mutant.__name__)
