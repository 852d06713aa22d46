"""Session keys: KV store rule 5 through the coordination machine (coordination.py rules 2, 3, 5)."""

from __future__ import annotations

from typing import Any

import msgspec

from rakit.statemachines.coordination import CoordinationMachine, ExpireBatch, SessionKeyPut, SessionLockAcquire
from rakit.statemachines.holds import Refused
from rakit.statemachines.kv import KvDeleted, KvEvent, KvMismatch, KvPut, KvPutDone, KvRecord, KvStore
from rakit.statemachines.kv.store import KvSessionKeys
from rakit.statemachines.locks import Acquire, Granted, LockTable, SessionLocksEnded
from rakit.statemachines.registry import Registry
from rakit.statemachines.sessions import SessionEnded, SessionExpire, SessionGrant, SessionKeepalive, SessionRevoke

X = "exclusive"


class Cluster:
    """One Raft log's machines, as the node builds them: commands go in encoded, as entries."""

    def __init__(self) -> None:
        self.locks = LockTable()
        self.store = KvStore()
        self.machine = CoordinationMachine([self.locks, KvSessionKeys(self.store)])
        self.registry = Registry([self.locks, self.store, self.machine])
        self.index = 0

    def __call__(self, command: Any) -> Any:
        self.index += 1
        return self.registry.apply(self.index, self.registry.encode(command))


def key_put(key: str, session_id: str, client_id: str | None = "c", **fields: Any) -> SessionKeyPut:
    return SessionKeyPut(KvPut(key, b"1", session_id=session_id, **fields), client_id)


def test_a_session_key_put_attaches_the_key_without_a_ttl() -> None:
    log = Cluster()
    log(SessionGrant("s1", "c", 10.0))  # 1
    assert log(key_put("a", "s1", ttl=5.0, now=7.0)) == KvPutDone("a", 2, None)  # the session's life, not a ttl
    assert log(key_put("b", "s1", client_id=None)) == KvPutDone("b", 3, None)  # no client_id: not checked
    assert log.store.get("a") == KvRecord("a", b"1", 2, 2, 1, None, 0, "s1")
    assert list(log.store.leases()) == [] and log.store.revision == 3
    assert log.store.events_since(2) == [
        KvEvent(2, "put", "a", b"1", 2, 1, 7.0),
        KvEvent(3, "put", "b", b"1", 3, 1, 7.0),
    ]
    assert log(key_put("a", "s1", if_revision=9)) == KvMismatch("a", 2)  # 4: its condition still holds
    assert log(key_put("a", "s1", if_revision=2)) == KvPutDone("a", 5, 2)
    assert log.store.keys_of("s1") == ["a", "b"]
    assert log(SessionKeepalive("s1")) is not None and log.store.keys_of("s1") == ["a", "b"]


def test_a_session_end_deletes_its_keys_in_one_index_with_its_locks() -> None:
    log = Cluster()
    log(SessionGrant("s1", "c", 10.0))  # 1
    log(SessionGrant("s2", "d", 10.0))  # 2
    for key in ("k/2", "k/1", "k/3"):
        log(key_put(key, "s1"))  # 3, 4, 5
    log(key_put("other", "s2", client_id="d"))  # 6
    log(KvPut("plain", b"1"))  # 7
    assert isinstance(log(SessionLockAcquire(Acquire("r", "c", X, 10, 0, session_id="s1"))), Granted)  # 8
    ended = log(SessionRevoke("s1"))  # 9
    assert isinstance(ended, SessionEnded)
    assert ended.attached["keys"] == KvDeleted(3, 9, ["k/1", "k/2", "k/3"])
    locks = ended.attached["locks"]
    assert isinstance(locks, SessionLocksEnded) and [h.resource for h in locks.removed_holds] == ["r"]
    assert log.store.events_since(9) == [
        KvEvent(9, "delete", key, None, create, 0, 0.0) for key, create in (("k/1", 4), ("k/2", 3), ("k/3", 5))
    ]
    assert log.store.revision == 9 and log.store.keys_of("s1") == [] and log.locks.attached("s1") == []
    assert [r.key for r in log.store.range()[0]] == ["other", "plain"]


def test_a_session_expiry_deletes_its_keys_and_a_stale_one_does_not() -> None:
    log = Cluster()
    log(SessionGrant("s1", "c", 10.0))  # 1
    log(key_put("a", "s1"))  # 2
    log(key_put("b", "s1"))  # 3
    log(SessionKeepalive("s1"))  # 4: lease 4
    log(SessionExpire("s1", 1))  # 5: stale
    assert log.store.keys_of("s1") == ["a", "b"] and log.store.revision == 3
    batch = log(ExpireBatch([SessionExpire("s1", 4)]))  # 6
    ended = batch.results[0]
    assert isinstance(ended, SessionEnded) and ended.reason == "expired"
    assert ended.attached["keys"] == KvDeleted(2, 6, ["a", "b"])
    assert log.store.range() == ([], False) and log.store.revision == 6
    assert [(e.revision, e.type) for e in log.store.events_since(6) or []] == [(6, "delete"), (6, "delete")]


def test_a_session_without_keys_ends_without_changing_the_map() -> None:
    log = Cluster()
    log(KvPut("a", b"1"))  # 1
    log(SessionGrant("s1", "c", 10.0))  # 2
    ended = log(SessionRevoke("s1"))  # 3
    assert isinstance(ended, SessionEnded) and ended.attached["keys"] == KvDeleted(0, 1, [])
    assert log.store.revision == 1


def test_refused_session_key_puts_change_nothing() -> None:
    log = Cluster()
    log(SessionGrant("s1", "c", 10.0))  # 1
    before = log.registry.state()
    assert log(key_put("a", "gone")) == Refused("session_not_found", "no session 'gone'")
    refused = log(key_put("a", "s1", client_id="intruder"))
    assert isinstance(refused, Refused) and refused.code == "invalid"
    refused = log(KvPut("a", b"1", session_id="s1"))  # a plain put cannot attach a key
    assert isinstance(refused, Refused) and refused.code == "invalid"
    refused = log(SessionKeyPut(KvPut("a", b"1")))  # no session_id
    assert isinstance(refused, Refused) and refused.code == "invalid"
    assert log.registry.state() == before and log.store.get("a") is None


def test_without_the_keys_hook_a_session_key_put_is_refused() -> None:
    machine = CoordinationMachine([LockTable()])
    machine.apply(1, SessionGrant("s1", "c", 10.0))
    refused = machine.apply(2, key_put("a", "s1"))
    assert isinstance(refused, Refused) and refused.code == "invalid"


def test_session_view_lists_the_keys() -> None:
    log = Cluster()
    log(SessionGrant("s1", "c", 10.0))  # 1
    log(key_put("z", "s1"))
    log(key_put("a", "s1"))
    log(KvPut("z", b"2"))  # detached by a plain put
    before = log.registry.state()
    view = log.machine.session_view("s1")
    assert view is not None and view["keys"] == ["a"] and view["locks"] == []
    assert log.registry.state() == before


def test_a_snapshot_keeps_the_session_keys() -> None:
    log = Cluster()
    log(SessionGrant("s1", "c", 10.0))
    log(key_put("a", "s1"))
    log(key_put("b", "s1"))
    twin = Cluster()
    twin.registry.restore(log.registry.snapshot())
    assert twin.registry.state() == log.registry.state()
    assert twin.machine.session_view("s1") == log.machine.session_view("s1")
    twin.index = log.index
    assert twin(SessionRevoke("s1")) == log(SessionRevoke("s1"))
    assert twin.registry.state() == log.registry.state()


def test_the_registry_round_trips_a_session_key_put() -> None:
    registry = Cluster().registry
    command = key_put("a", "s1", now=3.0, if_revision=0)
    assert msgspec.msgpack.decode(registry.encode(command), type=SessionKeyPut) == command
