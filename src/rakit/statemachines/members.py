"""The cluster's address book: node id -> URL, replicated with the membership.

Raft's configuration (``ConfState``) names voters and learners by id only;
the URL a node serves at travels in the ``add_learner`` change that brought
it in.  The driver feeds every *committed* configuration entry to
``apply_conf``, so the book is part of the state machines' snapshot and
survives log compaction; entries still uncommitted are read straight from
the log by the driver (a configuration takes effect when appended).
The initial ``--peers`` are the book's base: they need no entry.

It also keeps the committed member set and its *generation* — the index of
the entry that last changed the set (a promotion does not) — which the
cache follows (``rakit.cache.service``, "Membership").  ``members`` is None
until such an entry is applied: the configuration is still the initial one.
"""

from __future__ import annotations

import msgspec

from rakit.raft.messages import ConfEntry


class _Book(msgspec.Struct):
    addresses: dict[str, str] = {}
    generation: int = 0
    members: list[str] | None = None


class MembersMachine:
    name = "members"
    commands: tuple[type, ...] = ()

    def __init__(self) -> None:
        self.addresses: dict[str, str] = {}
        self.generation = 0
        self.members: tuple[str, ...] | None = None

    def apply(self, index: int, command: object) -> None:  # pragma: no cover - owns no command
        raise TypeError("the address book changes only through configuration entries")

    def apply_conf(self, index: int, conf_entry: ConfEntry) -> None:
        change = conf_entry.change
        if change.op == "add_learner" and change.url:
            self.addresses[change.node] = change.url
        elif change.op == "remove":
            self.addresses.pop(change.node, None)
        members = conf_entry.conf.members
        if members != self.members:
            self.members, self.generation = members, index

    def snapshot(self) -> bytes:
        members = None if self.members is None else list(self.members)
        return msgspec.msgpack.encode(_Book(dict(sorted(self.addresses.items())), self.generation, members))

    def restore(self, data: bytes) -> None:
        book = msgspec.msgpack.decode(data, type=_Book) if data else _Book()
        self.addresses = dict(book.addresses)
        self.generation = book.generation
        self.members = None if book.members is None else tuple(book.members)
