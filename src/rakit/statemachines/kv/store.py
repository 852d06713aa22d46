"""The KV store: revisions, conditional writes, txns, TTL and session keys, a change history.

A deterministic state machine (name ``"kv"``): no clock, no I/O.  Values are
JSON bytes kept as the client sent them.

Rules
-----
1.  The map has one ``revision``: the index of the last entry that changed
    it (0 before any).  A command that changes nothing leaves it as it is.
2.  A put creates a key (``create_revision`` = ``mod_revision`` = this
    index, ``version`` 1) or replaces its value (``mod_revision`` = this
    index, ``version`` + 1); the answer has the key's ``mod_revision``
    before (None: it was absent).
3.  ``if_revision`` = R: the write happens only if the key's mod_revision
    is R (R = 0: only if it is absent); otherwise ``KvMismatch`` with the
    current mod_revision, nothing changed.  A delete with a condition false
    is the same.
4.  A put with ``ttl`` stamps the key with lease = this index; a put
    without it (or with a session) removes the ttl.  ``KvExpireBatch``
    deletes each named key whose lease is the one named, all in this index;
    other items are stale and change nothing.  ``leases()`` lists what a
    leader must time (a new leader restarts each at full ttl).
5.  A put with ``session_id`` (only through ``SessionKeyPut``, which checks
    the session) attaches the key to the session; ``end_session`` deletes
    every key attached to it in that index (``keys_of`` lists them).  A
    later put without it detaches the key.
6.  A delete removes a key (``deleted`` 1) or nothing (0, revision
    unchanged); with ``prefix`` every key that starts with it, in one index.
7.  ``KvIncr`` adds ``delta`` to an integer value (an absent key is 0) as a
    put that keeps the key's ttl lease and session; a value that is not an
    integer is ``Refused("not_integer")``, nothing changed.
8.  ``KvTxn``: every compare is evaluated on the map before the txn; if all
    hold, the ``success`` ops run in order, else the ``failure`` ops; a get
    sees the puts and deletes before it in the same txn.  Every write has
    this index as its revision.  Two writes of one key in one branch are
    ``Refused("invalid")``, nothing changed.  Compares on an absent key:
    mod/create revision and version are 0, ``exists`` is false, and a
    ``value`` compare is false.
9.  Every change is one ``KvEvent`` in the history (``history`` rules);
    events of one command share its revision, in the order applied.
10. Reads change nothing: ``get``, ``range`` (key order, one cut),
    ``events_since``.
11. ``snapshot``/``restore`` round-trip exactly, history included; a
    snapshot of the demo map (``data``/``revisions``) restores as keys of
    version 1.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from typing import Any

import msgspec

from rakit.statemachines.holds import Refused
from rakit.statemachines.kv import values
from rakit.statemachines.kv.commands import (
    Compare,
    KvCommand,
    KvDelete,
    KvDeleted,
    KvEvent,
    KvExpireBatch,
    KvExpired,
    KvIncr,
    KvIncremented,
    KvMismatch,
    KvPut,
    KvPutDone,
    KvRecord,
    KvTxn,
    KvTxnDone,
    TxnDelete,
    TxnDeleteDone,
    TxnGet,
    TxnPut,
    TxnPutDone,
)
from rakit.statemachines.kv.history import History

SNAPSHOT_VERSION = 2


class _Snapshot(msgspec.Struct):
    version: int
    revision: int
    clock: float
    records: list[KvRecord]
    history: bytes


class _DemoSnapshot(msgspec.Struct):
    data: dict[str, bytes]
    revisions: dict[str, int]


class KvStore:
    name = "kv"
    commands: tuple[type[msgspec.Struct], ...] = (KvPut, KvDelete, KvIncr, KvTxn, KvExpireBatch)

    def __init__(self, history: History | None = None) -> None:
        self.records: dict[str, KvRecord] = {}
        self._sorted: list[str] = []  # the keys, in order (range and prefix delete)
        self._by_session: dict[str, set[str]] = {}  # session id -> its keys
        self.revision = 0
        self.clock = 0.0  # the newest ``now`` seen: the time of changes whose command carries none
        self.history = history if history is not None else History()
        self._pending: list[KvEvent] = []

    # -- apply -----------------------------------------------------------------------------

    def apply(self, index: int, command: KvCommand) -> Any:
        self.clock = max(self.clock, command.now)
        try:
            return self._apply(index, command)
        finally:
            self._flush(index)

    def _apply(self, index: int, command: KvCommand) -> Any:
        match command:
            case KvPut(session_id=str()):
                return Refused("invalid", "a session key's put travels in coordination.SessionKeyPut")
            case KvPut():
                return self._put_checked(index, command)
            case KvDelete(prefix=True):
                return self._delete_prefix(index, command.key)
            case KvDelete():
                return self._delete_checked(index, command)
            case KvIncr():
                return self._incr(index, command)
            case KvTxn():
                return self._txn(index, command)
            case KvExpireBatch():
                return self._expire(index, command)
        raise TypeError(f"not a kv command: {command!r}")

    def _flush(self, index: int) -> None:
        if self._pending:
            self.revision = index  # rule 1
            self.history.append(self._pending)
            self._pending = []

    def _mismatch(self, key: str, if_revision: int | None) -> KvMismatch | None:
        """Rule 3."""
        if if_revision is None:
            return None
        current = self.records.get(key)
        actual = current.mod_revision if current is not None else 0
        return None if actual == if_revision else KvMismatch(key, current.mod_revision if current else None)

    def _put_checked(self, index: int, put: KvPut) -> KvPutDone | KvMismatch | Refused:
        if put.ttl is not None and not put.ttl > 0:
            return Refused("invalid", "ttl must be positive")
        mismatch = self._mismatch(put.key, put.if_revision)
        if mismatch is not None:
            return mismatch
        ttl = None if put.session_id is not None else put.ttl
        return self._put(index, put.key, put.value, ttl, index if ttl is not None else 0, put.session_id)

    def _put(
        self, index: int, key: str, value: bytes, ttl: float | None, lease: int, session_id: str | None
    ) -> KvPutDone:
        """Rule 2 (and 4, 5: the ttl lease and session the key has after the put)."""
        old = self.records.get(key)
        if old is None:
            record = KvRecord(key, value, index, index, 1, ttl, lease, session_id)
            bisect.insort(self._sorted, key)
        else:
            record = KvRecord(key, value, old.create_revision, index, old.version + 1, ttl, lease, session_id)
            self._detach(old)
        self.records[key] = record
        if session_id is not None:
            self._by_session.setdefault(session_id, set()).add(key)
        self._pending.append(KvEvent(index, "put", key, value, record.create_revision, record.version, self.clock))
        return KvPutDone(key, index, old.mod_revision if old is not None else None)

    def _remove(self, index: int, key: str) -> bool:
        old = self.records.pop(key, None)
        if old is None:
            return False
        del self._sorted[bisect.bisect_left(self._sorted, key)]
        self._detach(old)
        self._pending.append(KvEvent(index, "delete", key, None, old.create_revision, 0, self.clock))
        return True

    def _detach(self, record: KvRecord) -> None:
        if record.session_id is not None:
            keys = self._by_session.get(record.session_id)
            if keys is not None:
                keys.discard(record.key)
                if not keys:
                    del self._by_session[record.session_id]

    def _after(self) -> int:
        """The revision once this command's changes are flushed (rule 1)."""
        return self._pending[-1].revision if self._pending else self.revision

    def _delete_checked(self, index: int, delete: KvDelete) -> KvDeleted | KvMismatch:
        mismatch = self._mismatch(delete.key, delete.if_revision)
        if mismatch is not None:
            return mismatch
        removed = self._remove(index, delete.key)
        return KvDeleted(int(removed), self._after(), [delete.key] if removed else [])

    def _delete_prefix(self, index: int, prefix: str) -> KvDeleted:
        """Rule 6."""
        keys = list(self._prefixed(prefix))
        for key in keys:
            self._remove(index, key)
        return KvDeleted(len(keys), self._after(), keys)

    def _incr(self, index: int, incr: KvIncr) -> KvIncremented | Refused:
        """Rule 7."""
        old = self.records.get(incr.key)
        number = 0 if old is None else values.as_integer(old.value)
        if number is None:
            return Refused("not_integer", f"the value of {incr.key!r} is not an integer")
        value = msgspec.json.encode(number + incr.delta)
        if old is None:
            self._put(index, incr.key, value, None, 0, None)
        else:
            self._put(index, incr.key, value, old.ttl, old.lease, old.session_id)
        return KvIncremented(incr.key, value, index)

    # -- txn (rule 8) -------------------------------------------------------------------------

    def _holds(self, compare: Compare) -> bool:
        record = self.records.get(compare.key)
        if compare.target == "exists":
            expected = values.decode(compare.value)
            return ((record is not None) == bool(expected)) == (compare.op == "==")
        if compare.target == "value":
            return record is not None and values.compare(record.value, compare.op, compare.value)
        actual = 0 if record is None else int(getattr(record, compare.target))
        return values.compare(msgspec.json.encode(actual), compare.op, compare.value)

    def _txn(self, index: int, txn: KvTxn) -> KvTxnDone | Refused:
        refused = _check_txn(txn)
        if refused is not None:
            return refused
        succeeded = all(self._holds(c) for c in txn.compare)
        results: list[TxnPutDone | TxnDeleteDone | KvRecord | None] = []
        for op in txn.success if succeeded else txn.failure:
            match op:
                case TxnPut():
                    self._put(index, op.key, op.value, None, 0, None)
                    results.append(TxnPutDone(index))
                case TxnDelete():
                    removed = self._remove(index, op.key)
                    results.append(TxnDeleteDone(self._after(), int(removed)))
                case TxnGet():
                    results.append(self.records.get(op.key))
        return KvTxnDone(succeeded, self._after(), results)

    # -- leases and sessions (rules 4, 5) ------------------------------------------------------

    def _expire(self, index: int, batch: KvExpireBatch) -> KvExpired:
        keys: list[str] = []
        for item in batch.items:
            record = self.records.get(item.key)
            if record is not None and record.lease == item.lease and record.ttl is not None:
                self._remove(index, item.key)
                keys.append(item.key)
        return KvExpired(self._after(), keys)

    def leases(self) -> Iterator[tuple[str, float, int]]:
        """(key, ttl, lease) for every key with a ttl: what a leader times."""
        for record in self.records.values():
            if record.ttl is not None:
                yield record.key, record.ttl, record.lease

    def keys_of(self, session_id: str) -> list[str]:
        return sorted(self._by_session.get(session_id, ()))

    def end_session(self, index: int, session_id: str) -> KvDeleted:
        """Rule 5: called inside the coordination machine's apply of the session's end."""
        keys = self.keys_of(session_id)
        for key in keys:
            self._remove(index, key)
        result = KvDeleted(len(keys), self._after(), keys)
        self._flush(index)
        return result

    def put_for_session(self, index: int, put: KvPut) -> KvPutDone | KvMismatch | Refused:
        """Rule 5: a put the coordination machine checked (the session lives)."""
        try:
            return self._put_checked(index, put)
        finally:
            self._flush(index)

    # -- reads (rule 10) -------------------------------------------------------------------------

    def get(self, key: str) -> KvRecord | None:
        return self.records.get(key)

    def _prefixed(self, prefix: str, after: str | None = None) -> Iterator[str]:
        if after is not None and after >= prefix:
            i = bisect.bisect_right(self._sorted, after)
        else:
            i = bisect.bisect_left(self._sorted, prefix)
        while i < len(self._sorted) and self._sorted[i].startswith(prefix):
            yield self._sorted[i]
            i += 1

    def range(self, prefix: str = "", limit: int = 1000, after: str | None = None) -> tuple[list[KvRecord], bool]:
        """Up to ``limit`` records whose key starts with ``prefix`` and is > ``after``; and whether more follow."""
        items: list[KvRecord] = []
        for key in self._prefixed(prefix, after):
            if len(items) == limit:
                return items, True
            items.append(self.records[key])
        return items, False

    def events_since(
        self, revision: int, match: Callable[[str], bool] | None = None, limit: int | None = None
    ) -> list[KvEvent] | None:
        return self.history.since(revision, match, limit)

    def scan_events(
        self, revision: int, match: Callable[[str], bool] | None = None, limit: int | None = None
    ) -> tuple[list[KvEvent], int] | None:
        return self.history.scan(revision, match, limit)

    # -- snapshot (rule 11) --------------------------------------------------------------------

    def snapshot(self) -> bytes:
        records = [self.records[k] for k in self._sorted]
        return msgspec.msgpack.encode(
            _Snapshot(SNAPSHOT_VERSION, self.revision, self.clock, records, self.history.snapshot())
        )

    def restore(self, data: bytes) -> None:
        self._pending = []
        if not data:
            self.records, self._sorted, self._by_session, self.revision, self.clock = {}, [], {}, 0, 0.0
            self.history.restore(b"")
            return
        raw = msgspec.msgpack.decode(data)
        if isinstance(raw, dict) and "data" in raw:  # the demo map's snapshot
            demo = msgspec.msgpack.decode(data, type=_DemoSnapshot)
            self.records = {
                k: KvRecord(k, v, demo.revisions.get(k, 0), demo.revisions.get(k, 0), 1) for k, v in demo.data.items()
            }
            self.revision = max(demo.revisions.values(), default=0)
            self.clock = 0.0
            self.history.restore(b"")
            self.history.trimmed_upto = self.revision
        else:
            state = msgspec.msgpack.decode(data, type=_Snapshot)
            if state.version != SNAPSHOT_VERSION:
                raise ValueError(f"kv snapshot version {state.version} (this node reads {SNAPSHOT_VERSION})")
            self.records = {r.key: r for r in state.records}
            self.revision, self.clock = state.revision, state.clock
            self.history.restore(state.history)
        self._sorted = sorted(self.records)
        self._by_session = {}
        for record in self.records.values():
            if record.session_id is not None:
                self._by_session.setdefault(record.session_id, set()).add(record.key)


TARGETS = frozenset({"mod_revision", "create_revision", "version", "value", "exists"})
OPS = frozenset({"==", "!=", "<", ">"})


def _check_txn(txn: KvTxn) -> Refused | None:
    """Rule 8's refusals (the HTTP layer refuses the same with a 422 first)."""
    for compare in txn.compare:
        try:
            expected = values.decode(compare.value)
        except msgspec.DecodeError:
            return Refused("invalid", f"a compare on {compare.key!r} holds no JSON value")
        if compare.target not in TARGETS or compare.op not in OPS:
            return Refused("invalid", f"no compare {compare.target!r} {compare.op!r}")
        if compare.target == "exists" and (compare.op not in ("==", "!=") or not isinstance(expected, bool)):
            return Refused("invalid", "an exists compare is == or != true or false")
        if compare.target not in ("exists", "value") and (not isinstance(expected, int) or isinstance(expected, bool)):
            return Refused("invalid", f"a {compare.target} compare needs an integer")
    for branch in (txn.success, txn.failure):
        written = [op.key for op in branch if isinstance(op, TxnPut | TxnDelete)]
        if len(written) != len(set(written)):
            return Refused("invalid", "a txn branch writes one key twice")
    return None


class KvSessionKeys:
    """The store as a session attachment (``coordination.SessionAttachment``, name "keys")."""

    name = "keys"

    def __init__(self, store: KvStore) -> None:
        self.store = store

    def attached(self, session_id: str) -> list[str]:
        return self.store.keys_of(session_id)

    def end_session(self, index: int, session_id: str, lock_delay: float) -> KvDeleted:
        return self.store.end_session(index, session_id)

    def apply(self, index: int, command: Any) -> Any:
        if not isinstance(command, KvPut):
            return Refused("invalid", "only a kv put attaches to a session")
        return self.store.put_for_session(index, command)
