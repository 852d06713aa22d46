"""Several state machines behind one Raft log.

Each machine declares the command Structs it handles (msgspec tagged
Structs); the registry decodes a committed entry once, hands it to the
machine owning its type, and snapshots every machine into one blob.
Commands are msgpack (versioned by their tag), never pickle.

It also folds every entry it applies into a *log chain*: ``chain =
blake2b(chain | index | data)``, kept in its snapshot (so a replica that
installs a snapshot continues the same chain) with the index the chain
starts after (``chain_base``: 0, or just before the first entry applied
after restoring a snapshot written before chains existed; -1 until then).
Replicas that applied the same entries show the same chain at the same
index; a checkpoint is kept at each ``CHECKPOINT_EVERY`` boundary crossed
(the first entry applied at or past it), the last
``CHECKPOINTS_KEPT`` of them, so replicas at different indexes can be
compared (``rakit.node.consistency``).  A replica that lost or altered an
entry shows another chain from there on.
"""

from __future__ import annotations

import hashlib
from collections import deque
from typing import Any, Protocol

import msgspec

CHAIN_KEY = "_log_chain"  # in the snapshot, beside the machines' parts
CHECKPOINT_EVERY = 256
CHECKPOINTS_KEPT = 64
_ZERO_CHAIN = bytes(16)


class Machine(Protocol):
    name: str

    @property
    def commands(self) -> tuple[type[msgspec.Struct], ...]: ...  # read-only: each machine's own tuple

    def apply(self, index: int, command: Any) -> Any: ...
    def snapshot(self) -> bytes: ...
    def restore(self, data: bytes) -> None: ...


class UnknownCommand(msgspec.Struct, frozen=True):
    """The result of applying bytes no machine understands (a newer node's command)."""

    detail: str


class Registry:
    """The one ``StateMachine`` the Raft driver applies entries to."""

    def __init__(self, machines: list[Machine]) -> None:
        self.machines = {m.name: m for m in machines}
        self._owner: dict[type, Machine] = {}
        for m in machines:
            for cmd in m.commands:
                self._owner[cmd] = m
        union = tuple(self._owner)
        self._decoder = msgspec.msgpack.Decoder(union[0] if len(union) == 1 else union_of(union))
        self._encoder = msgspec.msgpack.Encoder()
        self.chain = _ZERO_CHAIN
        self.chain_index = 0  # the last index folded in
        self.chain_base = 0  # the chain covers the entries after this index
        self.checkpoints: deque[tuple[int, str]] = deque(maxlen=CHECKPOINTS_KEPT)

    def encode(self, command: msgspec.Struct) -> bytes:
        return self._encoder.encode(command)

    def apply(self, index: int, data: bytes) -> Any:
        self._fold(index, data)
        try:
            command = self._decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            # Deterministic on every replica: the entry is skipped the same way.
            return UnknownCommand(detail=str(exc))
        return self._owner[type(command)].apply(index, command)

    def _fold(self, index: int, data: bytes) -> None:
        if self.chain_base == -1:  # restored from a chainless snapshot: the chain starts here
            self.chain_base = index - 1
        self.chain = hashlib.blake2b(self.chain + index.to_bytes(8, "big") + data, digest_size=16).digest()
        boundary = index - index % CHECKPOINT_EVERY
        if self.chain_index < boundary:
            self.checkpoints.append((boundary, self.chain.hex()))
        self.chain_index = index

    def state(self) -> bytes:
        """The machines' state alone (no chain): what replicas at one index must agree on."""
        return msgspec.msgpack.encode({name: m.snapshot() for name, m in self.machines.items()}, order="sorted")

    def snapshot(self) -> bytes:
        parts = {name: m.snapshot() for name, m in self.machines.items()}
        parts[CHAIN_KEY] = self.chain_index.to_bytes(8, "big") + self.chain_base.to_bytes(8, "big") + self.chain
        return msgspec.msgpack.encode(parts, order="sorted")

    def restore(self, data: bytes) -> None:
        parts = msgspec.msgpack.decode(data, type=dict[str, bytes])
        for name, machine in self.machines.items():
            machine.restore(parts.get(name, b""))
        chain = parts.get(CHAIN_KEY, b"")
        self.checkpoints.clear()
        if len(chain) == 32:
            self.chain_index = int.from_bytes(chain[:8], "big")
            self.chain_base = int.from_bytes(chain[8:16], "big")
            self.chain = chain[16:]
        else:  # a snapshot from before chains: the chain starts at the next entry applied
            self.chain, self.chain_index, self.chain_base = _ZERO_CHAIN, 0, -1


def union_of(types: tuple[type, ...]) -> Any:
    result: Any = types[0]
    for t in types[1:]:
        result = result | t
    return result
