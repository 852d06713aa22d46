"""Several state machines behind one Raft log.

Each machine declares the command Structs it handles (msgspec tagged
Structs); the registry decodes a committed entry once, hands it to the
machine owning its type, and snapshots every machine into one blob.
Commands are msgpack (versioned by their tag), never pickle.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec


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

    def encode(self, command: msgspec.Struct) -> bytes:
        return self._encoder.encode(command)

    def apply(self, index: int, data: bytes) -> Any:
        try:
            command = self._decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            # Deterministic on every replica: the entry is skipped the same way.
            return UnknownCommand(detail=str(exc))
        return self._owner[type(command)].apply(index, command)

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode({name: m.snapshot() for name, m in self.machines.items()}, order="sorted")

    def restore(self, data: bytes) -> None:
        parts = msgspec.msgpack.decode(data, type=dict[str, bytes])
        for name, machine in self.machines.items():
            machine.restore(parts.get(name, b""))


def union_of(types: tuple[type, ...]) -> Any:
    result: Any = types[0]
    for t in types[1:]:
        result = result | t
    return result
