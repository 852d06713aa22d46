"""The KV's request bodies (docs/api.md v2 "KV"): what is malformed is a 422 before anything is proposed."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from rakit.http.json import KEY_PATTERN, Key, Name
from rakit.raft.messages import MAX_WIRE_INT

MAX_KV_TTL = 2_592_000  # 30 days
MAX_COMPARES = 64
MAX_OPS = 64
MAX_RANGE_LIMIT = 10_000
MAX_WATCH_WAIT = 60.0

PREFIX_PATTERN = KEY_PATTERN.replace("+$", "*$")  # a key's alphabet, possibly empty
Prefix = Annotated[str, msgspec.Meta(max_length=128, pattern=PREFIX_PATTERN)]
Revision = Annotated[int, msgspec.Meta(ge=0, le=MAX_WIRE_INT)]
KvTtl = Annotated[float, msgspec.Meta(ge=1, le=MAX_KV_TTL)]
Delta = Annotated[int, msgspec.Meta(ge=-(2**53), le=2**53)]


class KvPutBody(msgspec.Struct):
    key: Key
    value: msgspec.Raw
    if_revision: Revision | None = None
    if_absent: bool = False
    ttl: KvTtl | None = None
    session_id: Key | None = None
    client_id: Name | None = None


class KvDeleteBody(msgspec.Struct):
    key: Key | None = None
    prefix: Key | None = None  # a prefix delete names at least one character
    if_revision: Revision | None = None


class IncrBody(msgspec.Struct):
    key: Key
    delta: Delta = 1


class CompareBody(msgspec.Struct):
    key: Key
    target: Literal["mod_revision", "create_revision", "version", "value", "exists"]
    op: Literal["==", "!=", "<", ">"]
    value: msgspec.Raw


class KeyValue(msgspec.Struct):
    key: Key
    value: msgspec.Raw


class KeyOnly(msgspec.Struct):
    key: Key


class OpBody(msgspec.Struct, omit_defaults=True):
    """Exactly one of ``put``, ``delete``, ``get``."""

    put: KeyValue | None = None
    delete: KeyOnly | None = None
    get: KeyOnly | None = None


class TxnBody(msgspec.Struct):
    compare: Annotated[list[CompareBody], msgspec.Meta(max_length=MAX_COMPARES)] = []
    success: Annotated[list[OpBody], msgspec.Meta(max_length=MAX_OPS)] = []
    failure: Annotated[list[OpBody], msgspec.Meta(max_length=MAX_OPS)] = []
