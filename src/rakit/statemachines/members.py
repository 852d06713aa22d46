"""The cluster's address book: node id -> URL, replicated with the membership.

Raft's configuration (``ConfState``) names voters and learners by id only;
the URL a node serves at travels in the ``add_learner`` change that brought
it in.  The driver feeds every *committed* configuration entry to
``apply_conf``, so the book is part of the state machines' snapshot and
survives log compaction; entries still uncommitted are read straight from
the log by the driver (a configuration takes effect when appended).
The initial ``--peers`` are the book's base: they need no entry.
"""

from __future__ import annotations

import msgspec

from rakit.raft.messages import ConfChange


class _Book(msgspec.Struct):
    addresses: dict[str, str] = {}


class MembersMachine:
    name = "members"
    commands: tuple[type, ...] = ()

    def __init__(self) -> None:
        self.addresses: dict[str, str] = {}

    def apply(self, index: int, command: object) -> None:  # pragma: no cover - owns no command
        raise TypeError("the address book changes only through configuration entries")

    def apply_conf(self, change: ConfChange) -> None:
        if change.op == "add_learner" and change.url:
            self.addresses[change.node] = change.url
        elif change.op == "remove":
            self.addresses.pop(change.node, None)

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(_Book(dict(sorted(self.addresses.items()))))

    def restore(self, data: bytes) -> None:
        self.addresses = dict(msgspec.msgpack.decode(data, type=_Book).addresses) if data else {}
