"""What cache nodes say to each other, in msgpack: one batch of operations per request.

``POST /cache/internal/batch`` carries a ``Batch`` (the sender, its clock, its
operations, its configuration generation) and answers a ``BatchReply`` (the
answerer's clock, whether it acked the sender — see ``rakit.cache.rules.contact``
rule 1 —, whether it serves, one result per operation, in order, and its own
generation).  An empty batch is a ping.  ``conf`` is the generation of the
cache's membership (``rakit.cache.service``, "Membership"): leases are only
given and counted between nodes of the same generation.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "Batch",
    "BatchReply",
    "Fence",
    "FenceResult",
    "Fetch",
    "FetchResult",
    "Invalidate",
    "InvalidateResult",
    "Operation",
    "Result",
    "decode_batch",
    "decode_reply",
    "encode",
]


class Invalidate(msgspec.Struct, tag="inv", array_like=True, frozen=True):
    key: str
    version: str  # Version.encode()


class Fetch(msgspec.Struct, tag="fetch", array_like=True, frozen=True):
    key: str


class Fence(msgspec.Struct, tag="fence", array_like=True, frozen=True):
    target: str


Operation = Invalidate | Fetch | Fence


class InvalidateResult(msgspec.Struct, tag="inv", array_like=True, frozen=True):
    dropped: bool  # a live copy older than the invalidation was held, and dropped
    held: str | None  # the version held now (newer than the invalidation), if any


class FetchResult(msgspec.Struct, tag="fetch", array_like=True, frozen=True):
    value: bytes | None  # None: no copy (or the answerer does not serve)
    version: str | None
    ttl_left: float | None
    watermark: str | None  # the highest write or invalidation of the key seen there


class FenceResult(msgspec.Struct, tag="fence", array_like=True, frozen=True):
    granted: bool


Result = InvalidateResult | FetchResult | FenceResult


class Batch(msgspec.Struct, frozen=True):
    src: str
    clock: int
    ops: list[Operation] = []
    conf: int = -1  # the sender's membership generation (-1: not a member yet)


class BatchReply(msgspec.Struct, frozen=True):
    node: str
    clock: int
    acked: bool
    serving: bool
    results: list[Result] = []
    conf: int = -1


_encoder = msgspec.msgpack.Encoder()
_batch_decoder = msgspec.msgpack.Decoder(Batch)
_reply_decoder = msgspec.msgpack.Decoder(BatchReply)


def encode(message: Batch | BatchReply) -> bytes:
    return _encoder.encode(message)


def decode_batch(data: bytes) -> Batch:
    """``msgspec.ValidationError``/``DecodeError`` on a malformed body, and nothing else
    (msgspec's ``UnicodeDecodeError`` and ``RecursionError`` become ``DecodeError``)."""
    try:
        return _batch_decoder.decode(data)
    except (UnicodeDecodeError, RecursionError) as exc:
        raise msgspec.DecodeError(f"malformed batch: {exc}") from None


def decode_reply(data: bytes) -> BatchReply:
    return _reply_decoder.decode(data)
