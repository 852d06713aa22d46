"""The KV store on the Raft simulation: revisions, history and session keys agree with what was applied.

Each simulated node applies the committed entries to the registry a real node
runs for these machines (``Registry([LockTable(), KvStore(),
CoordinationMachine([lock_table, KvSessionKeys(kv)])])``, as in
``rakit.node.runtime``).  The leader draws proposals from its own applied
state, as the KV service and its keeper would: puts (plain, conditional on
the key's current revision or a wrong one, with a ttl, session keys through
``SessionKeyPut`` for the session's client or another), deletes (a key, a
prefix, conditional), incrs (also of a value that is no integer), txns
(compares that hold and that fail, gets after puts of the same key, a branch
writing one key twice, a value nested 600 deep: the HTTP layer takes it),
``KvExpireBatch`` with current and stale leases, session grants, revokes
and expiries (current or stale; a session holding keys and locks ends both
in its entry), locks attached to sessions, some of the coordination
machine's own traffic, and malformed commands.

Checked after every applied entry and every restore (from disk and from the
leader's snapshot), besides every Raft invariant of ``harness.Checker`` and
the checks of ``test_coordination_sim.CoordChecker`` (byte-identical registry
snapshots, KV included, and results at each index on every node; restores
re-snapshot to their bytes; nothing held for an ended session):

* the KV revision never goes back along a node's applied history (across
  crashes, restarts and snapshot installs), and it is the index of the last
  entry that changed the map: an entry that appended history events moves it
  to its index, any other leaves it; a restored store's revision is the last
  change at or before its index;
* every history event's revision is above the one before it, or equal
  within one entry (an entry's events all carry its index; every node
  appends the same events for it);
* the history is the changes applied: replaying the events on a dict model
  gives the store's records (value, create and mod revision, version), after
  every entry (the node's own events) and after every restore (every entry's
  events up to the snapshot);
* the history (small bounds here, so that it trims) holds exactly the events
  of the entries from ``compact_revision`` on, whole revisions (rule 2); it
  is within its hard caps, keeps no revision rule 3 would have trimmed, and
  trimmed its newest trimmed revision only under a cap or when old and
  beyond the last ``min_events``; a watch from a trimmed revision is refused
  (rule 4);
* no key is attached to a session that does not exist (so none survives the
  entry that ended its session), ``keys_of`` lists exactly the records of
  each session, a key has a ttl lease or a session, never both;
* at the end every node has the same registry snapshot.

Environment as in test_lock_table_sim.py: ``RAKIT_SIM_RUNS``, ``RAKIT_SIM_SEED``, ``RAKIT_SIM_STEPS``.
"""

from __future__ import annotations

import bisect
import os
import random
from collections import Counter
from typing import Any

import msgspec
import pytest

from rakit.raft.messages import ENTRY_NORMAL, Entry, Snapshot
from rakit.statemachines import sessions as SS
from rakit.statemachines.coordination import ExpireBatch, SessionKeyPut, SessionLockAcquire
from rakit.statemachines.kv import (
    Compare,
    History,
    KvDelete,
    KvEvent,
    KvExpire,
    KvExpireBatch,
    KvIncr,
    KvPut,
    KvRecord,
    KvStore,
    KvTxn,
    TxnDelete,
    TxnGet,
    TxnPut,
)
from rakit.statemachines.kv.history import event_size
from rakit.statemachines.kv.store import KvSessionKeys
from rakit.statemachines.locks import EXCLUSIVE, Acquire, LockTable
from rakit.statemachines.registry import Registry

from .harness import InvariantViolation, SimConfig, SimStateMachine
from .machine_runs import CHAOS_COMMON, assert_caught, run_checked
from .test_coordination_sim import SESSIONS, CoordChecker, CoordCluster, CoordSM, random_coord_command
from .test_lock_table_sim import CLIENTS, RESOURCES

KEYS = ["a", "a/1", "a/2", "a/b/1", "b", "b/1", "n"]
PREFIXES = ["a/", "a/b/", "b", "n", "zz"]
DEEP = b"[" * 600 + b"]" * 600  # JSON the HTTP layer takes (it refuses ~1000 deep), too deep for Python recursion
VALUES = [b"1", b"7", b"-3", b'"x"', b'{"v": 2}', b"true", b"1.5", b"null", b'[[1], {"a": [2]}]']

Model = dict[str, tuple[bytes, int, int, int]]  # key -> (value, create_revision, mod_revision, version)


class RecordingHistory(History):
    """The store's history, remembering the events appended since the checker last looked."""

    def __init__(self) -> None:
        # Small bounds, so that the runs trim (history rules 2-4); a production store keeps far more.
        super().__init__(min_events=8, min_age=10.0, max_events=40, max_bytes=2048)
        self.appended: list[list[KvEvent]] = []

    def append(self, events: list[KvEvent]) -> None:
        self.appended.append(list(events))
        super().append(events)


class KvSM(CoordSM):
    kv_cls: type[KvStore] = KvStore  # the teeth tests swap in broken ones
    history_cls: type[RecordingHistory] = RecordingHistory

    def __init__(self) -> None:
        SimStateMachine.__init__(self)
        self.history = self.history_cls()
        self.table = LockTable()
        self.kv = self.kv_cls(self.history)
        self.coordination = self.coordination_cls([self.table, KvSessionKeys(self.kv)])
        self.registry = Registry([self.table, self.kv, self.coordination])
        self.model: Model = {}  # the history replayed: what the records must be

    def tokens(self) -> tuple[int, ...]:
        return (*super().tokens(), self.kv.revision)  # the revision never goes back, like a fencing token


def _records(kv: KvStore) -> Model:
    return {k: (r.value, r.create_revision, r.mod_revision, r.version) for k, r in kv.records.items()}


def _replay(model: Model, events: list[KvEvent]) -> None:
    for ev in events:
        if ev.type == "put":
            assert ev.value is not None
            model[ev.key] = (ev.value, ev.create_revision, ev.revision, ev.version)
        else:
            model.pop(ev.key, None)


class KvChecker(CoordChecker):
    sm_cls = KvSM

    def __init__(self) -> None:
        super().__init__()
        self.events_at: dict[int, list[KvEvent]] = {}  # index -> the history events its entry appended
        self.changed: list[int] = []  # the indexes whose entry changed the map, in order

    def on_apply(self, node: str, sm: Any, e: Entry) -> None:
        assert isinstance(sm, KvSM)
        kv, before, first = sm.kv, sm.kv.revision, e.index not in self.events_at
        trimmed = kv.history.trimmed_upto
        last_event = max(kv.history.last_revision, kv.history.trimmed_upto)
        sm.history.appended.clear()
        super().on_apply(node, sm, e)  # applies the entry, then _check_table
        events = [ev for batch in sm.history.appended for ev in batch]
        for ev in events:
            if ev.revision != e.index:
                raise InvariantViolation(f"{node}: entry {e.index} appended a history event at {ev.revision}: {ev}")
        if events and last_event >= e.index:
            raise InvariantViolation(f"{node}: history event {e.index} after one at {last_event}")
        if events and kv.revision != e.index:
            raise InvariantViolation(
                f"{node}: entry {e.index} changed {sorted({ev.key for ev in events})} but the kv revision is "
                f"{kv.revision} (was {before}), not the index of the last entry that changed it"
            )
        if not events and kv.revision != before:
            raise InvariantViolation(
                f"{node}: entry {e.index} changed nothing but moved the kv revision {before} -> {kv.revision}"
            )
        seen = self.events_at.setdefault(e.index, events)
        if seen is events and events:
            self.changed.append(e.index)  # indexes are first applied in order
        elif seen != events:
            raise InvariantViolation(f"{node}: entry {e.index} appended {events}, another node {seen}")
        _replay(sm.model, events)
        self._check_model(node, sm, f"after entry {e.index}")
        self._check_history(node, sm)
        if first and e.kind == ENTRY_NORMAL:
            self._count_changes(sm, e, events)
            self.counts["history_trims"] += kv.history.trimmed_upto != trimmed

    def on_restore(self, node: str, snap: Snapshot) -> SimStateMachine:
        sm = super().on_restore(node, snap)
        assert isinstance(sm, KvSM)
        upto = bisect.bisect_right(self.changed, sm.applied)
        last = self.changed[upto - 1] if upto else 0
        if sm.kv.revision != last:
            raise InvariantViolation(
                f"{node}: restored kv revision {sm.kv.revision} at {sm.applied}, its last change was at {last}"
            )
        for i in self.changed[:upto]:  # every change up to the snapshot, trimmed from its history or not
            _replay(sm.model, self.events_at[i])
        self._check_model(node, sm, f"restored at {sm.applied}")
        self._check_history(node, sm)
        return sm

    def _check_history(self, node: str, sm: KvSM) -> None:
        """History rules 2-4, against every change applied up to the node's index."""
        h, i = sm.kv.history, sm.applied
        kept = h.since(h.compact_revision)
        lo, hi = bisect.bisect_left(self.changed, h.compact_revision), bisect.bisect_right(self.changed, i)
        want = [ev for j in self.changed[lo:hi] for ev in self.events_at[j]]
        if kept != want:
            raise InvariantViolation(
                f"{node} at {i}: the history from {h.compact_revision} is not the changes applied since "
                f"(rule 2: whole revisions): kept {[(e.revision, e.key) for e in kept or []]}, "
                f"applied {[(e.revision, e.key) for e in want]}"
            )
        if h.trimmed_upto and (h.since(h.trimmed_upto) is not None or not self.events_at.get(h.trimmed_upto)):
            raise InvariantViolation(f"{node} at {i}: a watch from trimmed revision {h.trimmed_upto} is served")
        if len(h) > h.max_events or h.size_bytes > h.max_bytes:
            raise InvariantViolation(f"{node} at {i}: the history holds {len(h)} events, {h.size_bytes} bytes")
        if not want:
            return
        now, oldest = want[-1].at, want[0].revision
        first_revision = sum(ev.revision == oldest for ev in want)
        if len(want) > h.min_events and want[0].at < now - h.min_age and len(want) - first_revision >= h.min_events:
            raise InvariantViolation(f"{node} at {i}: history revision {oldest} is old and beyond the last events")
        if not h.trimmed_upto:
            return
        gone = self.events_at[h.trimmed_upto]  # the newest revision trimmed: it went while every later one stayed
        capped = len(want) + len(gone) > h.max_events or (
            h.size_bytes + sum(event_size(ev) for ev in gone) > h.max_bytes
        )
        if not capped and (len(want) < h.min_events or gone[0].at >= now - h.min_age):
            raise InvariantViolation(
                f"{node} at {i}: revision {h.trimmed_upto} was trimmed under no cap while among the last "
                f"{h.min_events} events or younger than {h.min_age}s"
            )

    def _check_model(self, node: str, sm: KvSM, when: str) -> None:
        records = _records(sm.kv)
        if records != sm.model:
            wrong = sorted(k for k in records.keys() | sm.model.keys() if records.get(k) != sm.model.get(k))
            raise InvariantViolation(
                f"{node} {when}: the store's records are not its history replayed on {wrong}: "
                f"records {[records.get(k) for k in wrong]}, history {[sm.model.get(k) for k in wrong]}"
            )

    def _check_table(self, node: str, sm: Any, snap: bytes) -> None:
        super()._check_table(node, sm, snap)
        assert isinstance(sm, KvSM)
        i, kv = sm.applied, sm.kv
        by_session: dict[str, list[str]] = {}
        for r in kv.records.values():
            if r.session_id is not None:
                by_session.setdefault(r.session_id, []).append(r.key)
                if r.ttl is not None or r.lease:
                    raise InvariantViolation(f"{node} at {i}: session key with a ttl lease: {r}")
            elif (r.ttl is None) != (r.lease == 0):
                raise InvariantViolation(f"{node} at {i}: a ttl without its lease or a lease without a ttl: {r}")
        for sid, keys in by_session.items():
            if sm.coordination.sessions.get(sid) is None:
                raise InvariantViolation(f"{node} at {i}: session {sid} has ended but its keys survive: {keys}")
        for sid in {*SESSIONS, *by_session}:
            if kv.keys_of(sid) != sorted(by_session.get(sid, [])):
                raise InvariantViolation(
                    f"{node} at {i}: keys_of({sid}) = {kv.keys_of(sid)}, records say {sorted(by_session.get(sid, []))}"
                )

    def _count(self, result: Any) -> None:
        super()._count(result)
        c, name = self.counts, type(result).__name__
        if name == "KvPutDone":
            c["put_created" if result.previous_revision is None else "put_replaced"] += 1
        elif name == "KvDeleted":
            c["deleted_keys"] += result.deleted
            c["deleted_several"] += result.deleted > 1
        elif name == "KvTxnDone":
            c["txn_succeeded" if result.succeeded else "txn_failed"] += 1
            c["txn_gets_found"] += sum(isinstance(r, KvRecord) for r in result.results)
        for ended in result.results if name == "BatchResults" else [result]:
            if type(ended).__name__ == "SessionEnded":
                self._count_session_end(ended)

    def _count_session_end(self, ended: SS.SessionEnded) -> None:
        keys, locks = ended.attached.get("keys"), ended.attached.get("locks")
        with_keys = keys is not None and keys.deleted > 0
        with_locks = locks is not None and bool(locks.removed_holds or locks.cancelled)
        self.counts["session_ended_with_keys"] += with_keys
        self.counts["session_ended_with_keys_and_locks"] += with_keys and with_locks

    def _count_changes(self, sm: KvSM, e: Entry, events: list[KvEvent]) -> None:
        c = self.counts
        c["kv_entries_changing"] += bool(events)
        c["kv_events"] += len(events)
        c["deep_values_put"] += sum(ev.value == DEEP for ev in events)
        command = _decode(e.data)
        if isinstance(command, KvExpireBatch):
            expired = sum(ev.type == "delete" for ev in events)
            c["ttl_expired"] += expired
            c["ttl_expiries_stale"] += len(command.items) - expired
        elif isinstance(command, SessionKeyPut) and events:
            c["session_key_puts"] += 1
        elif isinstance(command, KvPut) and command.ttl is not None and events:
            c["ttl_puts"] += 1


def _decode(data: bytes) -> KvExpireBatch | SessionKeyPut | KvPut | None:
    try:
        return msgspec.msgpack.decode(data, type=KvExpireBatch | SessionKeyPut | KvPut)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


class KvCluster(CoordCluster):
    checker_cls = KvChecker

    def proposal_data(self, nid: str) -> bytes:
        sm = self.nodes[nid].sm
        assert isinstance(sm, KvSM)
        return random_kv_command(self.cmd_rng, sm)


def _revision_of(kv: KvStore, key: str) -> int:
    r = kv.get(key)
    return r.mod_revision if r is not None else 0


def _compare(rng: random.Random, kv: KvStore, holds: bool) -> Compare:
    """A compare on the leader's map that holds there (or, ``holds`` False, that fails)."""
    key = rng.choice(KEYS)
    r = kv.get(key)
    y = rng.random()
    if y < 0.4:
        rev = _revision_of(kv, key) + (0 if holds else rng.choice([-1, 1]))
        return Compare(key, "mod_revision", "==", msgspec.json.encode(rev))
    if y < 0.6:
        return Compare(key, "exists", "==", msgspec.json.encode((r is not None) == holds))
    if y < 0.8 and r is not None:
        return Compare(key, "value", "==" if holds else "!=", r.value)
    return Compare(key, "version", ">" if holds == (r is not None) else "<", b"0")


def _txn(rng: random.Random, kv: KvStore, now: float) -> KvTxn:
    holds = rng.random() < 0.6
    compares = [_compare(rng, kv, True) for _ in range(rng.randint(0, 2))]
    if not holds:
        compares.insert(rng.randrange(len(compares) + 1), _compare(rng, kv, False))
    branches: list[list[Any]] = []
    for _ in range(2):
        ops: list[Any] = []
        for key in rng.sample(KEYS, rng.randint(1, 3)):
            y = rng.random()
            if y < 0.5:
                ops.append(TxnPut(key, rng.choice(VALUES)))
                if rng.random() < 0.5:
                    ops.append(TxnGet(key))  # sees the put before it
            elif y < 0.75:
                ops.append(TxnDelete(key))
            else:
                ops.append(TxnGet(key))
        branches.append(ops)
    if rng.random() < 0.05:  # one key written twice: refused
        branches[0] += [TxnPut("a", b"1"), TxnDelete("a")]
    return KvTxn(compares, branches[0], branches[1], now)


def _session_command(rng: random.Random, sm: KvSM, sid: str) -> Any:
    c = sm.coordination
    y = rng.random()
    if y < 0.45:
        return SS.SessionGrant(sid, SESSIONS[sid], rng.choice([2.0, 10.0]), rng.choice([0.0, 1.5]))
    if y < 0.6:
        return SS.SessionKeepalive(sid)
    if y < 0.75:
        return SS.SessionRevoke(sid)
    leases = {s: lease for s, _, lease in c.sessions.leases()}
    expire = SS.SessionExpire(sid, leases.get(sid, rng.randint(0, max(1, sm.applied))) - (rng.random() < 0.2))
    if y < 0.9:
        return expire
    others: list[Any] = [SS.SessionExpire(s, lease) for s, lease in leases.items() if s != sid]
    return ExpireBatch([expire, *others][:2])  # two sessions ending in one entry


def random_kv_command(rng: random.Random, sm: KvSM) -> bytes:
    """A command as the leader's KV and coordination services might propose it, given its applied state."""
    enc, kv = sm.registry.encode, sm.kv
    now = float(sm.applied)  # the proposer's clock: only ages the history
    key, value = rng.choice(KEYS), rng.choice(VALUES) if rng.random() < 0.995 else DEEP
    sid = rng.choice(list(SESSIONS))
    live = [s for s, _, _ in sm.coordination.sessions.leases()]
    x = rng.random()
    if 0.25 <= x < 0.35 or 0.87 <= x < 0.92:  # session keys and locks: mostly on a live session
        sid = rng.choice(live) if live and rng.random() < 0.85 else sid
    if x < 0.25:  # puts
        y = rng.random()
        if y < 0.4:
            return enc(KvPut(key, value, now=now))
        if y < 0.7:
            right = rng.random() < 0.7
            return enc(KvPut(key, value, _revision_of(kv, key) + (0 if right else rng.choice([-1, 1, 5])), now=now))
        return enc(KvPut(key, value, ttl=rng.choice([1.0, 5.0]), now=now))
    if x < 0.35:  # a session key
        client = SESSIONS[sid] if rng.random() < 0.85 else rng.choice([None, *CLIENTS])
        cond = _revision_of(kv, key) if rng.random() < 0.2 else None
        return enc(SessionKeyPut(KvPut(key, value, cond, session_id=sid, now=now), client))
    if x < 0.47:  # deletes
        y = rng.random()
        if y < 0.35:
            return enc(KvDelete(rng.choice(PREFIXES), prefix=True, now=now))
        if y < 0.7:
            right = rng.random() < 0.6
            return enc(KvDelete(key, _revision_of(kv, key) + (0 if right else 1), now=now))
        return enc(KvDelete(key, now=now))
    if x < 0.55:  # incr, of integers mostly
        ints = [k for k, r in kv.records.items() if r.value.lstrip(b"-").isdigit()]
        if ints and rng.random() < 0.6:
            key = rng.choice(ints)
        return enc(KvIncr(key, rng.choice([1, 5, -2]), now))
    if x < 0.67:
        return enc(_txn(rng, kv, now))
    if x < 0.74:  # the keeper's ttl timers, some renewed since
        items = [KvExpire(k, lease - (rng.random() < 0.25)) for k, _, lease in kv.leases()]
        rng.shuffle(items)
        return enc(KvExpireBatch(items[: rng.randint(1, 3)] or [KvExpire(key, rng.randint(0, sm.applied))], now))
    if x < 0.87:
        return enc(_session_command(rng, sm, sid))
    if x < 0.92:  # a lock attached to a session: its end ends keys and locks together
        r, wait = rng.choice(RESOURCES), 0.0 if rng.random() < 0.5 else 5.0
        return enc(SessionLockAcquire(Acquire(r, SESSIONS[sid], EXCLUSIVE, 5.0, wait, session_id=sid)))
    if x < 0.97:
        return random_coord_command(rng, sm)
    return rng.choice(
        [
            enc(KvPut(key, value, session_id=sid)),  # a session key outside SessionKeyPut
            enc(SessionKeyPut(KvPut(key, value))),  # no session
            enc(KvPut(key, value, ttl=-1.0)),
            enc(KvPut(key, value, ttl=float("nan"))),
            enc(KvTxn([Compare(key, "version", "==", b"not json")], [], [])),
            enc(KvTxn([Compare(key, "lease", "==", b"1")], [], [])),
            enc(KvTxn([Compare(key, "exists", "<", b"true")], [], [])),
            enc(KvTxn([Compare(key, "value", "==", DEEP)], [TxnPut(key, DEEP)], [])),
            msgspec.msgpack.encode({"type": "kv.put", "key": key}),  # no value
            msgspec.msgpack.encode({"type": "kv.incr", "key": key, "delta": "one"}),
            b"\xc1",
        ]
    )


PROFILES: dict[str, tuple[SimConfig, int]] = {
    "3n-kv": (SimConfig(name="3n-kv", nodes=3, compact_every=5, **CHAOS_COMMON), 24),
    "5n-kv-whole-cluster-crashes": (
        SimConfig(
            name="5n-kv-whole-cluster-crashes",
            nodes=5,
            compact_every=6,
            **{**CHAOS_COMMON, "w_crash": 1.2, "w_restart": 2.0, "crash_in_ready": 0.03},
            max_down=5,
        ),
        10,
    ),
}
PROFILE_BASE = {name: 110_000_000 + (i + 1) * 1_000_000 for i, name in enumerate(PROFILES)}


def run_one(profile: str, seed: int) -> KvCluster:
    replay = (
        f"cd /work/main && RAKIT_SIM_SEED={seed} .venv/bin/python -m pytest -q "
        f"'tests/sim/test_kv_sim.py::test_kv_runs[{profile}]'"
    )
    cluster: KvCluster = run_checked(KvCluster, PROFILES[profile][0], seed, replay)
    return cluster


@pytest.mark.parametrize("profile", list(PROFILES))
def test_kv_runs(profile: str) -> None:
    if os.environ.get("RAKIT_SIM_SEED"):
        run_one(profile, int(os.environ["RAKIT_SIM_SEED"]))
        return
    runs = int(os.environ.get("RAKIT_SIM_RUNS", PROFILES[profile][1]))
    totals: Counter[str] = Counter()
    for i in range(runs):
        totals.update(run_one(profile, PROFILE_BASE[profile] + i).stats)
    print(f"\n{profile}: {runs} runs {dict(sorted(totals.items()))}")
    if runs < 10:
        return
    if profile.startswith("5n-kv-whole"):  # mostly down: few commands land, but stores come back from disk
        assert totals["restores_from_disk"] >= 10 and totals["kv_events"] >= 50, dict(totals)
        return
    # Not vacuous: every kind of change, refusal and session end happened.
    for what, least in [
        ("put_created", 20),
        ("put_replaced", 20),
        ("KvMismatch", 10),
        ("ttl_puts", 10),
        ("session_key_puts", 10),
        ("deleted_several", 3),
        ("KvIncremented", 10),
        ("refused_not_integer", 3),
        ("txn_succeeded", 10),
        ("txn_failed", 10),
        ("txn_gets_found", 10),
        ("ttl_expired", 5),
        ("ttl_expiries_stale", 5),
        ("session_ended_with_keys", 10),
        ("session_ended_with_keys_and_locks", 3),
        ("history_trims", 20),
        ("deep_values_put", 2),
        ("refused_session_not_found", 1),
        ("refused_invalid", 5),
        ("UnknownCommand", 3),
        ("restores_from_disk", 3),
        ("restores_from_leader", 1),
    ]:
        assert totals[what] >= least, (what, totals[what], dict(totals))


class KeepsRevisionOnPrefixDelete(KvStore):
    """Deletes the prefixed keys but leaves the map's revision where it was (rule 1)."""

    def apply(self, index: int, command: Any) -> Any:
        before = self.revision
        result = super().apply(index, command)
        if isinstance(command, KvDelete) and command.prefix:
            self.revision = before
        return result


class KeepsKeysOfEndedSessions(KvStore):
    """Ends a session without deleting its keys (rule 5)."""

    def end_session(self, index: int, session_id: str) -> Any:
        return super().end_session(index, "no such session")


class TrimsYoungRevisions(RecordingHistory):
    """Trims down to ``min_events`` whatever the events' age (history rule 3 keeps younger ones)."""

    def _over(self, now: float) -> bool:
        return super()._over(now) or len(self) > self.min_events


@pytest.mark.parametrize(
    ("mutant", "expect"),
    [
        pytest.param({"kv_cls" if issubclass(m, KvStore) else "history_cls": m}, expect, id=m.__name__)
        for m, expect in [
            (KeepsRevisionOnPrefixDelete, "not the index of the last entry that changed it"),
            (KeepsKeysOfEndedSessions, "has ended but its keys survive"),
            (TrimsYoungRevisions, "was trimmed under no cap"),
        ]
    ],
)
def test_checker_has_teeth(mutant: dict[str, type[Any]], expect: str) -> None:
    sm = type("MutantSM", (KvSM,), mutant)
    checker = type("MutantChecker", (KvChecker,), {"sm_cls": sm})
    cls = type("MutantCluster", (KvCluster,), {"checker_cls": checker})
    base, name = PROFILE_BASE["3n-kv"], next(iter(mutant.values())).__name__
    print("\n" + assert_caught(cls, PROFILES["3n-kv"][0], range(base, base + 10), expect, name))
