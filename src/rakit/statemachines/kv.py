"""A tiny replicated key-value map: the demo / diagnostic state machine.

Reachable over HTTP under ``/kv`` (see README).  It exists to exercise Raft
end to end (benchmarks, failover tests); values are opaque JSON bytes.
"""

from __future__ import annotations

import msgspec


class KvPut(msgspec.Struct, tag="kv.put", frozen=True):
    key: str
    value: bytes  # the JSON encoding of the value


class KvDelete(msgspec.Struct, tag="kv.del", frozen=True):
    key: str


class KvIncr(msgspec.Struct, tag="kv.incr", frozen=True):
    key: str
    delta: int


class KvResult(msgspec.Struct, frozen=True):
    index: int
    value: bytes | None = None
    existed: bool = True


class KvSnapshot(msgspec.Struct):
    data: dict[str, bytes]
    revisions: dict[str, int]


class KvMachine:
    name = "kv"
    commands = (KvPut, KvDelete, KvIncr)

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.revisions: dict[str, int] = {}

    def apply(self, index: int, command: KvPut | KvDelete | KvIncr) -> KvResult:
        if isinstance(command, KvPut):
            self.data[command.key] = command.value
            self.revisions[command.key] = index
            return KvResult(index, command.value)
        if isinstance(command, KvDelete):
            existed = self.data.pop(command.key, None) is not None
            self.revisions.pop(command.key, None)
            return KvResult(index, None, existed)
        current = self.data.get(command.key, b"0")
        try:
            number = int(msgspec.json.decode(current))
        except (msgspec.DecodeError, TypeError, ValueError):
            return KvResult(index, current, existed=False)
        value = msgspec.json.encode(number + command.delta)
        self.data[command.key] = value
        self.revisions[command.key] = index
        return KvResult(index, value)

    def get(self, key: str) -> tuple[bytes, int] | None:
        value = self.data.get(key)
        return None if value is None else (value, self.revisions[key])

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(KvSnapshot(self.data, self.revisions), order="sorted")

    def restore(self, data: bytes) -> None:
        if not data:
            self.data, self.revisions = {}, {}
            return
        state = msgspec.msgpack.decode(data, type=KvSnapshot)
        self.data, self.revisions = state.data, state.revisions
