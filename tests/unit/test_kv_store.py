"""The KV store (statemachines/kv/store.py): one test per rule of its docstring."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

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
from rakit.statemachines.registry import Registry


class Log:
    """A store and the next log index; ``gap`` skips indexes other machines' entries take."""

    def __init__(self, store: KvStore | None = None) -> None:
        self.store = store if store is not None else KvStore()
        self.index = 0

    def __call__(self, command: Any, gap: int = 0) -> Any:
        self.index += 1 + gap
        return self.store.apply(self.index, command)


def events(store: KvStore, since: int = 1) -> list[tuple[int, str, str]]:
    found = store.events_since(since)
    assert found is not None
    return [(e.revision, e.type, e.key) for e in found]


def test_rule_1_the_revision_is_the_index_of_the_last_change() -> None:
    log = Log()
    assert log.store.revision == 0
    log(KvPut("a", b"1"))
    log(KvPut("b", b"2"), gap=3)  # index 5: other machines took 2..4
    assert log.store.revision == 5
    log(KvDelete("absent"))  # 6: changes nothing
    log(KvPut("a", b"9", if_revision=3))  # 7: a mismatch changes nothing
    log(KvExpireBatch([KvExpire("a", 1)]))  # 8: stale
    log(KvTxn([], [], []))  # 9: an empty txn
    log(KvTxn([Compare("a", "exists", "==", b"false")], [], []))  # 10: a failed txn with no failure ops
    assert log.store.revision == 5
    log(KvDelete("a"))  # 11
    assert log.store.revision == 11


def test_rule_2_a_put_creates_or_replaces_a_key() -> None:
    log = Log()
    assert log(KvPut("a", b"1")) == KvPutDone("a", 1, None)
    assert log.store.get("a") == KvRecord("a", b"1", 1, 1, 1)
    assert log(KvPut("a", b'"two"')) == KvPutDone("a", 2, 1)
    assert log.store.get("a") == KvRecord("a", b'"two"', 1, 2, 2)
    assert log(KvPut("a", b'"two"')) == KvPutDone("a", 3, 2)  # the same value is still a put
    assert log.store.get("a") == KvRecord("a", b'"two"', 1, 3, 3)
    log(KvDelete("a"))  # 4
    assert log(KvPut("a", b"5")) == KvPutDone("a", 5, None)  # a new life: version 1 again
    assert log.store.get("a") == KvRecord("a", b"5", 5, 5, 1)


def test_rule_3_if_revision_guards_puts_and_deletes() -> None:
    log = Log()
    assert log(KvPut("a", b"1", if_revision=0)) == KvPutDone("a", 1, None)  # 0: only if absent
    assert log(KvPut("a", b"2", if_revision=0)) == KvMismatch("a", 1)
    assert log(KvPut("a", b"2", if_revision=7)) == KvMismatch("a", 1)
    assert log(KvPut("b", b"2", if_revision=1)) == KvMismatch("b", None)
    assert log(KvDelete("a", if_revision=2)) == KvMismatch("a", 1)
    assert log(KvDelete("b", if_revision=4)) == KvMismatch("b", None)
    assert log.store.revision == 1 and log.store.get("a") == KvRecord("a", b"1", 1, 1, 1)
    assert log.store.get("b") is None and events(log.store) == [(1, "put", "a")]
    assert log(KvPut("a", b"3", if_revision=1)) == KvPutDone("a", 7, 1)
    assert log(KvDelete("a", if_revision=7)) == KvDeleted(1, 8, ["a"])
    assert log(KvDelete("a", if_revision=0)) == KvDeleted(0, 8, [])  # absent, as asked: nothing to delete


def test_rule_4_ttl_leases_and_expiries() -> None:
    log = Log()
    log(KvPut("a", b"1", ttl=5.0))  # 1
    log(KvPut("b", b"1", ttl=7.5))  # 2
    log(KvPut("c", b"1"))  # 3
    assert log.store.get("a") == KvRecord("a", b"1", 1, 1, 1, 5.0, 1)
    assert sorted(log.store.leases()) == [("a", 5.0, 1), ("b", 7.5, 2)]
    log(KvPut("a", b"2", ttl=6.0))  # 4: a new lease
    log(KvPut("b", b"2"))  # 5: no ttl any more
    assert sorted(log.store.leases()) == [("a", 6.0, 4)]
    assert log.store.get("b") == KvRecord("b", b"2", 2, 5, 2)
    # Stale items (an old lease, a key with no ttl, an absent key) change nothing; the current one deletes.
    stale = [KvExpire("a", 1), KvExpire("b", 2), KvExpire("c", 0), KvExpire("zz", 3)]
    assert log(KvExpireBatch(stale)) == KvExpired(5, [])  # 6
    assert log.store.revision == 5
    log(KvPut("d", b"1", ttl=1.0))  # 7
    batch = KvExpireBatch([KvExpire("d", 7), KvExpire("a", 1), KvExpire("a", 4), KvExpire("d", 7)])
    assert log(batch) == KvExpired(8, ["d", "a"])  # 8: both in this index, the repeat is stale
    assert events(log.store, 8) == [(8, "delete", "d"), (8, "delete", "a")]
    assert list(log.store.leases()) == [] and log.store.get("a") is None


def test_rule_4_ttl_must_be_positive() -> None:
    log = Log()
    for ttl in (0.0, -1.0, float("nan")):
        assert log(KvPut("a", b"1", ttl=ttl)) == Refused("invalid", "ttl must be positive")
    assert log.store.revision == 0 and log.store.get("a") is None


def test_rule_5_a_session_put_attaches_and_a_later_put_detaches() -> None:
    log = Log()
    store = log.store
    log.index = 1
    assert store.put_for_session(1, KvPut("a", b"1", ttl=9.0, session_id="s1")) == KvPutDone("a", 1, None)
    store.put_for_session(2, KvPut("b", b"1", session_id="s1"))
    store.put_for_session(3, KvPut("c", b"1", session_id="s2"))
    assert store.get("a") == KvRecord("a", b"1", 1, 1, 1, None, 0, "s1")  # a session key has no ttl
    assert store.keys_of("s1") == ["a", "b"] and list(store.leases()) == []
    log.index = 3
    log(KvPut("b", b"2"))  # 4: detached
    assert store.keys_of("s1") == ["a"] and store.get("b") == KvRecord("b", b"2", 2, 4, 2)
    assert store.end_session(5, "s1") == KvDeleted(1, 5, ["a"])
    assert store.revision == 5 and store.keys_of("s1") == []
    assert store.end_session(6, "nobody") == KvDeleted(0, 5, [])
    assert store.revision == 5 and store.keys_of("s2") == ["c"]


def test_rule_5_a_plain_put_with_a_session_id_is_refused() -> None:
    log = Log()
    refused = log(KvPut("a", b"1", session_id="s1"))
    assert isinstance(refused, Refused) and refused.code == "invalid"
    assert log.store.revision == 0 and log.store.get("a") is None


def test_rule_6_deletes_one_key_or_a_prefix_in_one_index() -> None:
    log = Log()
    for key in ("a", "app/1", "app/2", "app/3", "apq", "b"):
        log(KvPut(key, b"1"))  # 1..6
    assert log(KvDelete("zz")) == KvDeleted(0, 6, [])  # 7
    assert log(KvDelete("a")) == KvDeleted(1, 8, ["a"])  # 8: not the keys it prefixes
    assert log(KvDelete("app/", prefix=True)) == KvDeleted(3, 9, ["app/1", "app/2", "app/3"])
    assert events(log.store, 9) == [(9, "delete", "app/1"), (9, "delete", "app/2"), (9, "delete", "app/3")]
    assert log(KvDelete("app/", prefix=True)) == KvDeleted(0, 9, [])  # 10
    assert [r.key for r in log.store.range()[0]] == ["apq", "b"]
    assert log(KvDelete("", prefix=True)) == KvDeleted(2, 11, ["apq", "b"])
    assert log.store.range() == ([], False) and log.store.revision == 11


def test_rule_7_incr_adds_to_an_integer_keeping_ttl_and_session() -> None:
    log = Log()
    assert log(KvIncr("n", 5)) == KvIncremented("n", b"5", 1)  # absent: 0 + 5
    assert log.store.get("n") == KvRecord("n", b"5", 1, 1, 1)
    assert log(KvIncr("n", -7)) == KvIncremented("n", b"-2", 2)
    log(KvPut("t", b"10", ttl=3.0))  # 3
    assert log(KvIncr("t", 1)) == KvIncremented("t", b"11", 4)
    assert log.store.get("t") == KvRecord("t", b"11", 3, 4, 2, 3.0, 3)  # the lease of the put at 3
    log.store.put_for_session(5, KvPut("s", b"1", session_id="s1"))
    log.index = 5
    assert log(KvIncr("s", 1)) == KvIncremented("s", b"2", 6)
    assert log.store.get("s") == KvRecord("s", b"2", 5, 6, 2, None, 0, "s1") and log.store.keys_of("s1") == ["s"]
    for value in (b"1.5", b"true", b'"1"', b"null", b"[1]"):
        log(KvPut("x", value))
        before = log.store.snapshot()
        assert log(KvIncr("x", 1)) == Refused("not_integer", "the value of 'x' is not an integer")
        assert log.store.snapshot() == before


def test_rule_8_txn_compares_on_the_map_before_then_one_branch() -> None:
    log = Log()
    log(KvPut("a", b"1"))  # 1
    log(KvPut("a", b"2"))  # 2
    log(KvPut("b", b'"x"'))  # 3
    compares = [
        Compare("a", "mod_revision", "==", b"2"),
        Compare("a", "create_revision", "<", b"2"),
        Compare("a", "version", ">", b"1"),
        Compare("a", "value", "==", b"2.0"),
        Compare("b", "value", ">", b'"w"'),
        Compare("b", "exists", "==", b"true"),
        Compare("c", "exists", "!=", b"true"),
        Compare("c", "version", "==", b"0"),
        Compare("c", "mod_revision", "==", b"0"),
        Compare("c", "create_revision", "==", b"0"),
    ]
    ops: list[Any] = [TxnGet("c"), TxnPut("c", b"3"), TxnGet("c"), TxnDelete("a"), TxnGet("a"), TxnDelete("zz")]
    done = log(KvTxn(compares, ops, [TxnPut("failed", b"1")]))  # 4
    assert done == KvTxnDone(
        True,
        4,
        [None, TxnPutDone(4), KvRecord("c", b"3", 4, 4, 1), TxnDeleteDone(4, 1), None, TxnDeleteDone(4, 0)],
    )
    assert events(log.store, 4) == [(4, "put", "c"), (4, "delete", "a")]
    assert log.store.get("failed") is None


def test_rule_8_a_false_compare_runs_the_failure_branch() -> None:
    log = Log()
    log(KvPut("a", b"1"))  # 1
    # A value compare on an absent key is false, whatever the op.
    for compare in (
        Compare("zz", "value", "!=", b"1"),
        Compare("a", "value", "<", b'"2"'),
        Compare("a", "value", "==", b"true"),
    ):
        done = log(KvTxn([Compare("a", "exists", "==", b"true"), compare], [TxnPut("ok", b"1")], [TxnGet("a")]))
        assert done == KvTxnDone(False, 1, [KvRecord("a", b"1", 1, 1, 1)])
    done = log(
        KvTxn([Compare("a", "version", "==", b"9")], [TxnPut("ok", b"1")], [TxnPut("a", b"5"), TxnPut("f", b"6")])
    )
    assert done == KvTxnDone(False, 5, [TxnPutDone(5), TxnPutDone(5)])
    assert log.store.get("a") == KvRecord("a", b"5", 1, 5, 2) and log.store.get("ok") is None


def test_rule_8_a_txn_put_removes_the_ttl_and_the_session() -> None:
    log = Log()
    log(KvPut("a", b"1", ttl=5.0))  # 1
    log.store.put_for_session(2, KvPut("b", b"1", session_id="s1"))
    log.index = 2
    log(KvTxn([], [TxnPut("a", b"2"), TxnPut("b", b"2")], []))  # 3
    assert list(log.store.leases()) == [] and log.store.keys_of("s1") == []
    assert log.store.get("b") == KvRecord("b", b"2", 2, 3, 2)


@pytest.mark.parametrize(
    "txn",
    [
        KvTxn([], [TxnPut("a", b"1"), TxnPut("a", b"2")], []),
        KvTxn([], [], [TxnPut("a", b"1"), TxnDelete("a")]),
        KvTxn([], [TxnDelete("a"), TxnDelete("a")], []),
        KvTxn([Compare("a", "exists", "<", b"true")], [], []),
        KvTxn([Compare("a", "exists", "==", b"1")], [], []),
        KvTxn([Compare("a", "version", "==", b"1.5")], [], []),
        KvTxn([Compare("a", "mod_revision", "==", b"true")], [], []),
        KvTxn([Compare("a", "create_revision", "==", b'"1"')], [], []),
        KvTxn([Compare("a", "lease", "==", b"1")], [], []),
        KvTxn([Compare("a", "value", "<=", b"1")], [], []),
        KvTxn([Compare("a", "value", "==", b"not json")], [], []),
    ],
)
def test_rule_8_invalid_txns_are_refused_with_nothing_changed(txn: KvTxn) -> None:
    log = Log()
    log(KvPut("a", b"1"))
    before = log.store.snapshot()
    refused = log(txn)
    assert isinstance(refused, Refused) and refused.code == "invalid"
    assert log.store.snapshot() == before


def test_rule_8_one_write_per_key_per_branch_but_the_branches_are_apart() -> None:
    log = Log()
    done = log(KvTxn([], [TxnPut("a", b"1"), TxnGet("a"), TxnGet("a")], [TxnDelete("a")]))
    assert done == KvTxnDone(True, 1, [TxnPutDone(1), KvRecord("a", b"1", 1, 1, 1), KvRecord("a", b"1", 1, 1, 1)])


def test_rule_9_every_change_is_one_event_in_order() -> None:
    log = Log(KvStore(History(min_events=1000)))
    log(KvPut("a", b"1", now=10.0))  # 1
    log(KvPut("b", b"2", ttl=3.0, now=11.0))  # 2
    log(KvIncr("a", 2, now=12.0))  # 3
    log(KvTxn([], [TxnDelete("a"), TxnPut("c", b"3"), TxnPut("d", b"4")], [], now=13.0))  # 4
    log(KvExpireBatch([KvExpire("b", 2)], now=14.0))  # 5
    log(KvDelete("", prefix=True, now=15.0))  # 6
    log(KvPut("d", b"5"))  # 7: no now: the newest seen
    assert log.store.events_since(1) == [
        KvEvent(1, "put", "a", b"1", 1, 1, 10.0),
        KvEvent(2, "put", "b", b"2", 2, 1, 11.0),
        KvEvent(3, "put", "a", b"3", 1, 2, 12.0),
        KvEvent(4, "delete", "a", None, 1, 0, 13.0),
        KvEvent(4, "put", "c", b"3", 4, 1, 13.0),
        KvEvent(4, "put", "d", b"4", 4, 1, 13.0),
        KvEvent(5, "delete", "b", None, 2, 0, 14.0),
        KvEvent(6, "delete", "c", None, 4, 0, 15.0),
        KvEvent(6, "delete", "d", None, 4, 0, 15.0),
        KvEvent(7, "put", "d", b"5", 7, 1, 15.0),
    ]
    log(KvPut("e", b"1", now=1.0))  # 8: a proposer whose clock is behind does not move the clock back
    assert log.store.clock == 15.0 and log.store.events_since(8) == [KvEvent(8, "put", "e", b"1", 8, 1, 15.0)]


def test_rule_9_a_session_put_is_stamped_with_its_now() -> None:
    store = KvStore()
    store.put_for_session(1, KvPut("a", b"1", session_id="s1", now=50.0))
    assert store.clock == 50.0
    assert store.events_since(1) == [KvEvent(1, "put", "a", b"1", 1, 1, 50.0)]


def test_rule_10_reads_change_nothing() -> None:
    log = Log()
    for key in ("b", "a", "c/2", "c/1", "c/3", "d"):
        log(KvPut(key, msgspec.json.encode(key)))
    before = log.store.snapshot()
    store = log.store
    assert [r.key for r in store.range()[0]] == ["a", "b", "c/1", "c/2", "c/3", "d"]
    assert store.range("c/") == ([store.records[k] for k in ("c/1", "c/2", "c/3")], False)
    assert [r.key for r in store.range("c/", limit=2)[0]] == ["c/1", "c/2"] and store.range("c/", limit=2)[1]
    assert [r.key for r in store.range("c/", limit=2, after="c/2")[0]] == ["c/3"]
    assert store.range("c/", limit=1, after="c/2") == ([store.records["c/3"]], False)
    assert store.range("c/", after="c/3") == ([], False)
    assert [r.key for r in store.range("c/", after="a")[0]] == ["c/1", "c/2", "c/3"]  # after before the prefix
    assert store.range("c/", after="d") == ([], False)
    assert [r.key for r in store.range("", after="c/1")[0]] == ["c/2", "c/3", "d"]
    assert store.range("zz") == ([], False) and store.range(limit=0) == ([], True)
    assert store.get("a") == KvRecord("a", b'"a"', 2, 2, 1) and store.get("zz") is None
    assert store.events_since(5) == [
        KvEvent(5, "put", "c/3", b'"c/3"', 5, 1, 0.0),
        KvEvent(6, "put", "d", b'"d"', 6, 1, 0.0),
    ]
    assert store.events_since(1, match=lambda k: k.startswith("c/"), limit=1) == [
        KvEvent(3, "put", "c/2", b'"c/2"', 3, 1, 0.0)
    ]
    assert [e.revision for e in store.events_since(0) or []] == [1, 2, 3, 4, 5, 6]  # nothing trimmed: from the start
    assert store.snapshot() == before


def test_rule_11_snapshot_and_restore_round_trip_with_the_history() -> None:
    log = Log(KvStore(History(min_events=3, min_age=0.0)))
    log(KvPut("a", b"1", ttl=4.0, now=1.0))
    log.store.put_for_session(2, KvPut("b", b"2", session_id="s1", now=2.0))
    log.index = 2
    log(KvPut("c", b"3", now=3.0))
    log(KvDelete("c", now=4.0))
    log(KvPut("d", b"[4]", now=5.0))
    assert log.store.history.compact_revision == 3
    twin = KvStore(History(min_events=3, min_age=0.0))
    twin.restore(log.store.snapshot())
    assert twin.snapshot() == log.store.snapshot()
    assert twin.records == log.store.records and twin.revision == 5 and twin.clock == 5.0
    assert twin.events_since(3) == log.store.events_since(3) and twin.events_since(2) is None
    assert twin.keys_of("s1") == ["b"] and list(twin.leases()) == [("a", 4.0, 1)]
    assert twin.range() == log.store.range()
    for command in (KvPut("aa", b"1"), KvDelete("", prefix=True), KvIncr("n", 1)):
        log.index += 1
        assert twin.apply(log.index, command) == log.store.apply(log.index, command)
        assert twin.snapshot() == log.store.snapshot()
    assert twin.end_session(99, "s1") == log.store.end_session(99, "s1")
    twin.restore(b"")
    assert twin.snapshot() == KvStore(History(min_events=3, min_age=0.0)).snapshot()


def test_rule_11_a_demo_map_snapshot_restores_as_keys_of_version_1() -> None:
    demo = msgspec.msgpack.encode(
        {"data": {"b": b'"two"', "a": b"1", "c": b"{}"}, "revisions": {"a": 3, "b": 7, "c": 5}}, order="sorted"
    )
    store = KvStore()
    store.restore(demo)
    assert store.records == {
        "a": KvRecord("a", b"1", 3, 3, 1),
        "b": KvRecord("b", b'"two"', 7, 7, 1),
        "c": KvRecord("c", b"{}", 5, 5, 1),
    }
    assert store.revision == 7 and [r.key for r in store.range()[0]] == ["a", "b", "c"]
    assert store.events_since(8) == [] and store.events_since(7) is None  # no history before the restore
    assert store.apply(8, KvPut("a", b"2")) == KvPutDone("a", 8, 3)
    assert store.get("a") == KvRecord("a", b"2", 3, 8, 2)
    assert store.apply(9, KvIncr("a", 1)) == KvIncremented("a", b"3", 9)
    twin = KvStore()
    twin.restore(store.snapshot())
    assert twin.snapshot() == store.snapshot()
    empty = KvStore()
    empty.restore(msgspec.msgpack.encode({"data": {}, "revisions": {}}))
    assert empty.revision == 0 and empty.range() == ([], False)


def test_rule_11_a_snapshot_of_another_version_is_refused() -> None:
    store = KvStore()
    store.apply(1, KvPut("a", b"1"))
    raw = msgspec.msgpack.decode(store.snapshot())
    raw["version"] = 3
    with pytest.raises(ValueError, match="kv snapshot version 3"):
        KvStore().restore(msgspec.msgpack.encode(raw))


ALL_COMMANDS: list[Any] = [
    KvPut("a", b'{"x": [1, 2]}'),
    KvPut("a", b"1", if_revision=0, ttl=2.5, now=3.0),
    KvDelete("a"),
    KvDelete("a", if_revision=4, now=1.0),
    KvDelete("p/", prefix=True),
    KvIncr("n", -3, now=2.0),
    KvTxn(
        [Compare("a", "value", "==", b"1"), Compare("b", "exists", "!=", b"true")],
        [TxnPut("b", b"2"), TxnGet("a"), TxnDelete("a")],
        [TxnGet("b")],
        now=4.0,
    ),
    KvExpireBatch([KvExpire("a", 1), KvExpire("b", 2)], now=5.0),
]


def test_the_registry_encodes_and_decodes_every_kv_command() -> None:
    registry = Registry([KvStore()])
    direct = KvStore()
    for index, command in enumerate(ALL_COMMANDS, 1):
        data = registry.encode(command)
        assert msgspec.msgpack.decode(data, type=type(command)) == command
        assert registry.apply(index, data) == direct.apply(index, command)
    assert registry.machines["kv"].snapshot() == direct.snapshot()


def test_a_demo_map_put_decodes_as_a_plain_put() -> None:
    old = msgspec.msgpack.encode({"type": "kv.put", "key": "a", "value": b"1"})
    registry = Registry([KvStore()])
    assert registry.apply(1, old) == KvPutDone("a", 1, None)
    old_incr = msgspec.msgpack.encode({"type": "kv.incr", "key": "a", "delta": 2})
    assert registry.apply(2, old_incr) == KvIncremented("a", b"3", 2)
    old_delete = msgspec.msgpack.encode({"type": "kv.del", "key": "a"})
    assert registry.apply(3, old_delete) == KvDeleted(1, 3, ["a"])


REFUSALS: list[Any] = [
    KvPut("a", b"9", if_revision=0),
    KvPut("a", b"9", if_revision=99),
    KvPut("zz", b"9", if_revision=1),
    KvPut("a", b"9", ttl=0.0),
    KvPut("a", b"9", session_id="s1"),
    KvDelete("a", if_revision=99),
    KvDelete("zz"),
    KvDelete("zz/", prefix=True),
    KvIncr("s", 1),
    KvTxn([], [TxnPut("a", b"1"), TxnDelete("a")], []),
    KvTxn([Compare("a", "version", "==", b"x")], [], []),
    KvExpireBatch([KvExpire("t", 1), KvExpire("a", 0), KvExpire("zz", 2)]),
]


@pytest.mark.parametrize("command", REFUSALS)
def test_refusals_and_no_ops_leave_the_state_unchanged(command: Any) -> None:
    log = Log(KvStore(History(min_events=1, min_age=0.0)))
    log(KvPut("a", b"1", now=1.0))  # 1
    log(KvPut("s", b'"text"', now=2.0))  # 2
    log(KvPut("t", b"1", ttl=5.0, now=3.0))  # 3
    log(KvPut("t", b"2", ttl=5.0, now=4.0))  # 4: lease 4, so the expiry of lease 1 is stale
    before = log.store.snapshot()
    result = log(command, gap=10)
    assert isinstance(result, Refused | KvMismatch | KvDeleted | KvExpired)
    assert log.store.snapshot() == before


def test_a_stored_value_that_is_not_json_fails_a_value_compare_without_raising() -> None:
    log = Log()
    log(KvPut("a", b"not json"))  # the HTTP layer sends JSON only; the machine must not raise anyway
    done = log(KvTxn([Compare("a", "value", "!=", b"1")], [TxnPut("b", b"1")], [TxnGet("a")]))
    assert done == KvTxnDone(False, 1, [KvRecord("a", b"not json", 1, 1, 1)])
    assert log(KvIncr("a", 1)) == Refused("not_integer", "the value of 'a' is not an integer")
