"""The KV's answers (docs/api.md v2 "KV"), for the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

AnyJson = Annotated[Any, Meta(description="Any JSON value, returned exactly as it was written.")]
Revision = Annotated[int, Meta(ge=0, description="A revision of the map: the Raft index of a change.")]


class KvPut(Struct):
    key: str
    revision: Revision
    previous_revision: Annotated[int | None, Meta(description="The key's mod_revision before; null: it was absent.")]
    index: Annotated[int, Meta(ge=0, description="The same as `revision` (the v1 name).")]


class KvItem(Struct):
    key: str
    value: AnyJson
    create_revision: Revision
    mod_revision: Revision
    version: Annotated[int, Meta(ge=1, description="Puts since the key was created.")]


class KvValue(Struct):
    key: str
    value: AnyJson
    create_revision: Revision
    mod_revision: Revision
    version: int
    revision: Annotated[int, Meta(ge=0, description="The map's revision at the read.")]
    index: Annotated[int, Meta(ge=0, description="The same as `mod_revision` (the v1 name).")]


class KvRange(Struct):
    items: list[KvItem]
    more: bool
    revision: Revision


class KvDeleted(Struct):
    deleted: Annotated[int, Meta(ge=0, description="How many keys were deleted.")]
    revision: Revision
    index: int


class KvIncremented(Struct):
    key: str
    value: int
    revision: Revision
    index: int


class TxnResult(Struct):
    revision: Revision | None = None
    deleted: int | None = None


class KvTxn(Struct):
    succeeded: bool
    revision: Revision
    results: Annotated[
        list[Any],
        Meta(description="Per op: put -> {revision}; delete -> {revision, deleted}; get -> a KvValue or null."),
    ]


class KvEvent(Struct):
    type: Literal["put", "delete", "compacted"]
    key: str | None = None
    value: AnyJson = None
    mod_revision: int | None = None
    create_revision: int | None = None
    version: int | None = None
    revision: int | None = None
    compact_revision: int | None = None


class KvWatchBatch(Struct):
    events: list[KvEvent]
    revision: Revision


class KvMismatch(Struct):
    error: Literal["revision_mismatch"]
    detail: str
    current_revision: int | None


class ReadIndex(Struct):
    index: int
