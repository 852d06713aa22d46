"""The KV store against a deliberately simple reference model (Hypothesis, stateful).

Random puts (conditional, with a ttl, attached to a session), deletes, prefix
deletes, increments, txns with compares, expiries naming current and stale
leases and session ends are applied at increasing (gapped) indexes to a
``KvStore`` and to ``Model`` below: a dict of plain records, a revision and a
change log, JSON compared with Python's ``json`` by a few lines of typing
rules.  Every result must equal the model's.  After every step the store's
reads equal the model's, its revision is the model's, and its history is the
tail of the model's change log that history rules 2-4 allow.  A twin restored
from a snapshot at any step must give the same snapshot and the same results
from then on.
"""

from __future__ import annotations

import json
import os
from typing import Any

import msgspec
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from rakit.statemachines.holds import Refused
from rakit.statemachines.kv import (
    Compare,
    History,
    KvDelete,
    KvDeleted,
    KvEvent,
    KvExpire,
    KvExpireBatch,
    KvExpired,
    KvIncr,
    KvIncremented,
    KvMismatch,
    KvPut,
    KvPutDone,
    KvRecord,
    KvStore,
    KvTxn,
    KvTxnDone,
    TxnDelete,
    TxnDeleteDone,
    TxnGet,
    TxnPut,
    TxnPutDone,
)

KEYS = ["a", "a/1", "a/2", "b", "b/1"]
PREFIXES = ["", "a", "a/", "b/", "c"]
VALUES = [b"0", b"1", b"1.0", b"-3", b"2.5", b"true", b"false", b"null", b'"x"', b'"y"']
SESSIONS = ["s1", "s2"]
NUMERIC = ("mod_revision", "create_revision", "version")
MIN_EVENTS, MIN_AGE = 6, 3.0


def new_store() -> KvStore:
    return KvStore(History(min_events=MIN_EVENTS, min_age=MIN_AGE))


# -- the model's JSON -------------------------------------------------------------------------


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if is_number(a) != is_number(b):
        return False
    return bool(a == b)


def json_compare(a: Any, op: str, b: Any) -> bool:
    if op == "==":
        return json_equal(a, b)
    if op == "!=":
        return not json_equal(a, b)
    if not ((is_number(a) and is_number(b)) or (isinstance(a, str) and isinstance(b, str))):
        return False
    return bool(a < b) if op == "<" else bool(a > b)


def compare_is_valid(c: Compare) -> bool:
    try:
        expected = json.loads(c.value)
    except ValueError:
        return False
    if c.op not in ("==", "!=", "<", ">"):
        return False
    if c.target == "exists":
        return c.op in ("==", "!=") and isinstance(expected, bool)
    if c.target in NUMERIC:
        return isinstance(expected, int) and not isinstance(expected, bool)
    return c.target == "value"


class Model:
    def __init__(self) -> None:
        self.records: dict[str, KvRecord] = {}
        self.revision = 0
        self.clock = 0.0
        self.log: list[KvEvent] = []
        self.changed = False  # by the command being applied

    def begin(self, now: float) -> None:
        self.clock = max(self.clock, now)
        self.changed = False

    def end(self, index: int) -> None:
        if self.changed:
            self.revision = index

    def after(self, index: int) -> int:
        return index if self.changed else self.revision

    def write(self, index: int, key: str, value: bytes, ttl: float | None, lease: int, session: str | None) -> None:
        old = self.records.get(key)
        create, version = (index, 1) if old is None else (old.create_revision, old.version + 1)
        self.records[key] = KvRecord(key, value, create, index, version, ttl, lease, session)
        self.log.append(KvEvent(index, "put", key, value, create, version, self.clock))
        self.changed = True

    def remove(self, index: int, key: str) -> bool:
        old = self.records.pop(key, None)
        if old is None:
            return False
        self.log.append(KvEvent(index, "delete", key, None, old.create_revision, 0, self.clock))
        self.changed = True
        return True

    def mismatch(self, key: str, if_revision: int | None) -> KvMismatch | None:
        old = self.records.get(key)
        mod = old.mod_revision if old is not None else 0
        if if_revision is None or if_revision == mod:
            return None
        return KvMismatch(key, old.mod_revision if old is not None else None)

    def put(self, index: int, cmd: KvPut) -> Any:
        if cmd.ttl is not None and not cmd.ttl > 0:
            return Refused("invalid", "ttl must be positive")
        mismatch = self.mismatch(cmd.key, cmd.if_revision)
        if mismatch is not None:
            return mismatch
        old = self.records.get(cmd.key)
        if cmd.session_id is not None:
            self.write(index, cmd.key, cmd.value, None, 0, cmd.session_id)
        else:
            self.write(index, cmd.key, cmd.value, cmd.ttl, index if cmd.ttl is not None else 0, None)
        return KvPutDone(cmd.key, index, old.mod_revision if old is not None else None)

    def delete(self, index: int, cmd: KvDelete) -> Any:
        if cmd.prefix:
            keys = sorted(k for k in self.records if k.startswith(cmd.key))
            for key in keys:
                self.remove(index, key)
            return KvDeleted(len(keys), self.after(index), keys)
        mismatch = self.mismatch(cmd.key, cmd.if_revision)
        if mismatch is not None:
            return mismatch
        removed = self.remove(index, cmd.key)
        return KvDeleted(int(removed), self.after(index), [cmd.key] if removed else [])

    def incr(self, index: int, cmd: KvIncr) -> Any:
        old = self.records.get(cmd.key)
        number = 0 if old is None else json.loads(old.value)
        if isinstance(number, bool) or not isinstance(number, int):
            return Refused("not_integer", f"the value of {cmd.key!r} is not an integer")
        value = json.dumps(number + cmd.delta).encode()
        if old is None:
            self.write(index, cmd.key, value, None, 0, None)
        else:
            self.write(index, cmd.key, value, old.ttl, old.lease, old.session_id)
        return KvIncremented(cmd.key, value, index)

    def holds(self, c: Compare) -> bool:
        record = self.records.get(c.key)
        expected = json.loads(c.value)
        if c.target == "exists":
            return bool(((record is not None) == expected) == (c.op == "=="))
        if c.target == "value":
            return record is not None and json_compare(json.loads(record.value), c.op, expected)
        actual = 0 if record is None else getattr(record, c.target)
        return json_compare(actual, c.op, expected)

    def txn(self, index: int, cmd: KvTxn) -> Any:
        if not all(compare_is_valid(c) for c in cmd.compare):
            return "refused invalid"
        for branch in (cmd.success, cmd.failure):
            written = [op.key for op in branch if not isinstance(op, TxnGet)]
            if len(written) != len(set(written)):
                return "refused invalid"
        succeeded = all(self.holds(c) for c in cmd.compare)
        results: list[Any] = []
        for op in cmd.success if succeeded else cmd.failure:
            if isinstance(op, TxnPut):
                self.write(index, op.key, op.value, None, 0, None)
                results.append(TxnPutDone(index))
            elif isinstance(op, TxnDelete):
                removed = self.remove(index, op.key)
                results.append(TxnDeleteDone(self.after(index), int(removed)))
            else:
                results.append(self.records.get(op.key))
        return KvTxnDone(succeeded, self.after(index), results)

    def expire(self, index: int, cmd: KvExpireBatch) -> Any:
        keys = []
        for item in cmd.items:
            record = self.records.get(item.key)
            if record is not None and record.ttl is not None and record.lease == item.lease:
                self.remove(index, item.key)
                keys.append(item.key)
        return KvExpired(self.after(index), keys)

    def end_session(self, index: int, session_id: str) -> KvDeleted:
        keys = sorted(k for k, r in self.records.items() if r.session_id == session_id)
        for key in keys:
            self.remove(index, key)
        return KvDeleted(len(keys), self.after(index), keys)

    def apply(self, index: int, cmd: Any) -> Any:
        match cmd:
            case KvPut(session_id=str()):
                return "refused invalid"
            case KvPut():
                return self.put(index, cmd)
            case KvDelete():
                return self.delete(index, cmd)
            case KvIncr():
                return self.incr(index, cmd)
            case KvTxn():
                return self.txn(index, cmd)
            case KvExpireBatch():
                return self.expire(index, cmd)
        raise AssertionError(cmd)


def same(result: Any, expected: Any) -> bool:
    if expected == "refused invalid":
        return isinstance(result, Refused) and result.code == "invalid"
    return bool(result == expected)


# -- strategies --------------------------------------------------------------------------------

keys = st.sampled_from(KEYS)
json_values = st.sampled_from(VALUES)
ttls = st.sampled_from([None, None, None, 1.0, 2.5, 0.0])  # 0: refused
small_ints = st.integers(0, 12).map(lambda n: b"%d" % n)
valid_compares = st.one_of(
    st.builds(Compare, keys, st.just("exists"), st.sampled_from(["==", "!="]), st.sampled_from([b"true", b"false"])),
    st.builds(Compare, keys, st.sampled_from(NUMERIC), st.sampled_from(["==", "!=", "<", ">"]), small_ints),
    st.builds(Compare, keys, st.just("value"), st.sampled_from(["==", "!=", "<", ">"]), json_values),
)
any_compares = st.builds(
    Compare,
    keys,
    st.sampled_from(["exists", "value", "version", "lease"]),
    st.sampled_from(["==", "<", "<="]),
    st.sampled_from([b"true", b"1", b"1.5", b'"x"', b"not json"]),
)
compares = st.one_of(valid_compares, valid_compares, valid_compares, any_compares)
txn_ops = st.lists(
    st.one_of(st.builds(TxnPut, keys, json_values), st.builds(TxnDelete, keys), st.builds(TxnGet, keys)), max_size=4
)
clock_steps = st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.0, 10.0])
gaps = st.integers(0, 2)


class KvComparison(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = new_store()
        self.model = Model()
        self.twin: KvStore | None = None
        self.index = 0
        self.leases_seen: set[int] = {0}

    def next_index(self, gap: int) -> int:
        self.index += 1 + gap
        return self.index

    def step(self, command: Any, gap: int) -> None:
        index = self.next_index(gap)
        self.model.begin(getattr(command, "now", 0.0))
        expected = self.model.apply(index, command)
        self.model.end(index)
        result = self.store.apply(index, command)
        assert same(result, expected), (command, result, expected)
        if self.twin is not None:
            assert self.twin.apply(index, command) == result
        self.leases_seen.update(lease for _, _, lease in self.store.leases())

    # -- commands --

    @rule(
        key=keys,
        value=json_values,
        condition=st.sampled_from(["none", "absent", "current", "other"]),
        ttl=ttls,
        session=st.sampled_from([None] * 7 + ["s1"]),  # a plain put naming a session is refused
        dt=clock_steps,
        gap=gaps,
    )
    def put(
        self, key: str, value: bytes, condition: str, ttl: float | None, session: str | None, dt: float, gap: int
    ) -> None:
        self.step(KvPut(key, value, self.condition(key, condition), ttl, session, now=self.model.clock + dt), gap)

    def condition(self, key: str, kind: str) -> int | None:
        record = self.model.records.get(key)
        current = record.mod_revision if record is not None else 0
        return {"none": None, "absent": 0, "current": current, "other": current + 3}[kind]

    @rule(key=keys, condition=st.sampled_from(["none", "absent", "current", "other"]), dt=clock_steps, gap=gaps)
    def delete(self, key: str, condition: str, dt: float, gap: int) -> None:
        self.step(KvDelete(key, self.condition(key, condition), now=self.model.clock + dt), gap)

    @rule(prefix=st.sampled_from(PREFIXES), dt=clock_steps, gap=gaps)
    def delete_prefix(self, prefix: str, dt: float, gap: int) -> None:
        self.step(KvDelete(prefix, prefix=True, now=self.model.clock + dt), gap)

    @rule(key=keys, delta=st.integers(-5, 5), dt=clock_steps, gap=gaps)
    def incr(self, key: str, delta: int, dt: float, gap: int) -> None:
        self.step(KvIncr(key, delta, now=self.model.clock + dt), gap)

    @rule(compare=st.lists(compares, max_size=3), success=txn_ops, failure=txn_ops, dt=clock_steps, gap=gaps)
    def txn(self, compare: list[Compare], success: list[Any], failure: list[Any], dt: float, gap: int) -> None:
        self.step(KvTxn(compare, success, failure, now=self.model.clock + dt), gap)

    @rule(data=st.data(), dt=clock_steps, gap=gaps)
    def expire(self, data: st.DataObject, dt: float, gap: int) -> None:
        """Expiries naming the current leases (as a leader's timers do) and stale or unknown ones."""
        current = [KvExpire(key, lease) for key, _, lease in self.store.leases()]
        outlived = [KvExpire(c.key, lease) for c in current for lease in sorted(self.leases_seen) if lease != c.lease]
        choices = [st.builds(KvExpire, keys, st.sampled_from(sorted(self.leases_seen)))]  # any key, any lease seen
        choices += [st.sampled_from(items) for items in (current, current, outlived) if items]
        items = data.draw(st.lists(st.one_of(choices), max_size=4))
        self.step(KvExpireBatch(items, now=self.model.clock + dt), gap)

    @rule(
        key=keys,
        session=st.sampled_from(SESSIONS),
        condition=st.sampled_from(["none", "current", "other"]),
        dt=clock_steps,
        gap=gaps,
    )
    def session_put(self, key: str, session: str, condition: str, dt: float, gap: int) -> None:
        """What the coordination machine applies once it checked the session (``SessionKeyPut``)."""
        index = self.next_index(gap)
        put = KvPut(key, b'"s"', self.condition(key, condition), session_id=session, now=self.model.clock + dt)
        self.model.begin(put.now)
        expected = self.model.put(index, put)
        self.model.end(index)
        result = self.store.put_for_session(index, put)
        assert result == expected
        if self.twin is not None:
            assert self.twin.put_for_session(index, put) == result

    @rule(session=st.sampled_from(SESSIONS), gap=gaps)
    def end_session(self, session: str, gap: int) -> None:
        index = self.next_index(gap)
        self.model.begin(self.model.clock)
        expected = self.model.end_session(index, session)
        self.model.end(index)
        assert self.store.end_session(index, session) == expected
        if self.twin is not None:
            assert self.twin.end_session(index, session) == expected

    @rule()
    def snapshot_twin(self) -> None:
        self.twin = new_store()
        self.twin.restore(self.store.snapshot())
        assert self.twin.snapshot() == self.store.snapshot()

    # -- invariants --

    @invariant()
    def reads_match_the_model(self) -> None:
        store, model = self.store, self.model
        assert store.revision == model.revision
        for key in KEYS:
            assert store.get(key) == model.records.get(key)
        ordered = [model.records[k] for k in sorted(model.records)]
        for prefix in PREFIXES:
            wanted = [r for r in ordered if r.key.startswith(prefix)]
            assert store.range(prefix) == (wanted, False)
            assert store.range(prefix, limit=1) == (wanted[:1], len(wanted) > 1)
            after = [r for r in wanted if r.key > "a/1"]
            assert store.range(prefix, limit=2, after="a/1") == (after[:2], len(after) > 2)
        assert sorted(store.leases()) == sorted((r.key, r.ttl, r.lease) for r in ordered if r.ttl is not None)
        for session in SESSIONS:
            assert store.keys_of(session) == [r.key for r in ordered if r.session_id == session]

    @invariant()
    def revisions_follow_the_rules(self) -> None:
        for record in self.store.records.values():
            assert 0 < record.create_revision <= record.mod_revision <= self.store.revision
            assert record.version >= 1
            assert record.ttl is None or record.create_revision <= record.lease <= record.mod_revision
            assert record.session_id is None or record.ttl is None

    @invariant()
    def history_is_the_kept_tail_of_the_change_log(self) -> None:
        history, log = self.store.history, self.model.log
        compact = history.compact_revision
        kept = self.store.events_since(compact)
        assert kept == [e for e in log if e.revision >= compact]  # rule 4: nothing at or after compact is lost
        assert compact == 1 or self.store.events_since(compact - 1) is None
        assert all(e.revision < compact for e in log[: len(log) - len(kept)])  # rule 2: whole revisions
        if not log:
            return
        newest = log[-1].at
        assert len(kept) >= min(MIN_EVENTS, len(log))  # rule 3: the last min_events, or more
        assert all(e.revision >= compact for e in log if e.at >= newest - MIN_AGE)  # rule 3: the young ones
        if kept:  # and no more than those: the oldest kept revision could not go
            oldest = [e for e in kept if e.revision == kept[0].revision]
            assert len(kept) - len(oldest) < MIN_EVENTS or oldest[0].at >= newest - MIN_AGE

    @invariant()
    def twin_matches(self) -> None:
        if self.twin is not None:
            assert self.twin.snapshot() == self.store.snapshot()


KvComparison.TestCase.settings = settings(
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "200")), stateful_step_count=50, deadline=None
)
test_kv_store_against_model = KvComparison.TestCase


def test_the_model_json_agrees_with_msgspec_on_the_values_used() -> None:
    for value in VALUES:
        assert json.loads(value) == msgspec.json.decode(value)
