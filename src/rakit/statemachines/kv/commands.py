"""The KV store's commands, results and records (msgspec Structs; values are JSON bytes).

Every write carries ``now``: the proposer's wall-clock seconds, used only to
age the change history (``rakit.statemachines.kv.history``), so the machine
reads no clock.  Commands written before a field existed decode with its
default (a ``kv.put`` of the demo map is a plain put).
"""

from __future__ import annotations

import msgspec

# -- records and events ------------------------------------------------------------------


class KvRecord(msgspec.Struct):
    """One live key.  ``lease`` is the index of the put that set its ttl (0: no ttl)."""

    key: str
    value: bytes  # the JSON encoding, as the client sent it
    create_revision: int
    mod_revision: int
    version: int  # puts since creation (1 on creation)
    ttl: float | None = None
    lease: int = 0
    session_id: str | None = None


class KvEvent(msgspec.Struct, array_like=True, frozen=True):
    """One change of the map, as a watcher sees it."""

    revision: int
    type: str  # "put" | "delete"
    key: str
    value: bytes | None  # None for a delete
    create_revision: int
    version: int  # the key's version after the change (0 after a delete)
    at: float  # the proposer's wall clock, for the history's age bound


# -- commands --------------------------------------------------------------------------------


class KvPut(msgspec.Struct, tag="kv.put", frozen=True):
    """Put ``value``; with ``if_revision`` only if the key's mod_revision equals it (0: absent)."""

    key: str
    value: bytes
    if_revision: int | None = None
    ttl: float | None = None
    session_id: str | None = None  # set only inside ``coordination.SessionKeyPut``
    now: float = 0.0


class KvDelete(msgspec.Struct, tag="kv.del", frozen=True):
    """Delete ``key`` (if ``if_revision`` matches) or, with ``prefix``, every key starting with it."""

    key: str
    if_revision: int | None = None
    prefix: bool = False
    now: float = 0.0


class KvIncr(msgspec.Struct, tag="kv.incr", frozen=True):
    key: str
    delta: int
    now: float = 0.0


class Compare(msgspec.Struct, frozen=True):
    key: str
    target: str  # "mod_revision" | "create_revision" | "version" | "value" | "exists"
    op: str  # "==" | "!=" | "<" | ">"
    value: bytes  # JSON


class TxnPut(msgspec.Struct, tag="put", frozen=True):
    key: str
    value: bytes


class TxnDelete(msgspec.Struct, tag="delete", frozen=True):
    key: str


class TxnGet(msgspec.Struct, tag="get", frozen=True):
    key: str


TxnOp = TxnPut | TxnDelete | TxnGet


class KvTxn(msgspec.Struct, tag="kv.txn", frozen=True):
    compare: list[Compare]
    success: list[TxnOp]
    failure: list[TxnOp]
    now: float = 0.0


class KvExpire(msgspec.Struct, frozen=True):
    """The leader's timer ran out for ``key`` whose ttl was set by the put at ``lease``."""

    key: str
    lease: int


class KvExpireBatch(msgspec.Struct, tag="kv.expire", frozen=True):
    items: list[KvExpire]
    now: float = 0.0


KvCommand = KvPut | KvDelete | KvIncr | KvTxn | KvExpireBatch

# -- results ---------------------------------------------------------------------------------


class KvPutDone(msgspec.Struct, frozen=True):
    key: str
    revision: int
    previous_revision: int | None  # the key's mod_revision before, None if it was absent


class KvMismatch(msgspec.Struct, frozen=True):
    """A condition was false: nothing changed."""

    key: str
    current_revision: int | None  # the key's mod_revision, None if absent


class KvDeleted(msgspec.Struct, frozen=True):
    deleted: int
    revision: int  # the map's revision after the command
    keys: list[str] = []


class KvIncremented(msgspec.Struct, frozen=True):
    key: str
    value: bytes
    revision: int


class TxnPutDone(msgspec.Struct, frozen=True):
    revision: int


class TxnDeleteDone(msgspec.Struct, frozen=True):
    revision: int
    deleted: int


class KvTxnDone(msgspec.Struct, frozen=True):
    succeeded: bool
    revision: int  # the map's revision after the txn
    results: list[TxnPutDone | TxnDeleteDone | KvRecord | None]


class KvExpired(msgspec.Struct, frozen=True):
    revision: int
    keys: list[str]  # the keys deleted; stale expiries are left out
