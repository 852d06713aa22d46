"""What a node checks in every cache frame a peer sends it, on every path.

A peer's ``Batch`` (``/cache/stream``, ``/cache/internal/batch``,
``/cache/invalidate``) and a peer's ``BatchReply`` (the answers that come
back on this node's own stream, ``rakit.cache.peers``) are checked before
they touch the cache: keys of the API's form, well-formed versions, the
sender it claims to be, and no clock or version counter more than
``MAX_CLOCK_AHEAD_US`` ahead of this node's wall clock.  A node observes
every clock and version it is sent (``rakit.cache.rules.versions`` rule 4), so one
hostile counter would otherwise push its clock out of the range of msgpack's
integers (every later batch it sends fails to encode) or years ahead.

``now_us`` is passed in: this module reads no clock.
"""

from __future__ import annotations

import re

from rakit.cache.rules.messages import Batch, BatchReply, Fence, FetchResult, Invalidate, InvalidateResult
from rakit.cache.rules.versions import Version
from rakit.errors import InvalidRequest

# How far (microseconds) a peer's clock or version may run ahead of this node's wall clock: far
# beyond any skew between synchronised clocks, far below anything that could overflow.
MAX_CLOCK_AHEAD_US = 24 * 3600 * 1_000_000
MAX_VERSION_CHARS = 200  # "<counter>.<node id>": about 16 digits and an id of at most 64 characters
_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,128}", re.ASCII)


def _check_version(text: str, limit: int, what: str) -> None:
    try:
        if len(text) > MAX_VERSION_CHARS:
            raise ValueError(f"a version of {len(text)} characters")
        counter = Version.decode(text).counter
    except ValueError as exc:
        raise InvalidRequest(f"{what}: {exc}") from None
    if counter > limit:
        raise InvalidRequest(f"{what}: version {text[:60]!r} is too far ahead")


def check_batch(batch: Batch, now_us: int) -> Batch:
    """``batch`` if it is fit to handle, else InvalidRequest."""
    limit = now_us + MAX_CLOCK_AHEAD_US
    if not 0 <= batch.clock <= limit:
        raise InvalidRequest(f"cache batch clock {batch.clock} is out of range")
    for op in batch.ops:
        key = op.target if isinstance(op, Fence) else op.key
        if _KEY.fullmatch(key) is None:
            raise InvalidRequest(f"cache batch: {key[:140]!r} is not a key or node of the API's form")
        if isinstance(op, Invalidate):
            _check_version(op.version, limit, "cache batch")
    return batch


def check_reply(reply: BatchReply, peer: str, now_us: int) -> BatchReply:
    """``reply`` (to a frame this node sent ``peer``) if it is fit to handle, else InvalidRequest."""
    limit = now_us + MAX_CLOCK_AHEAD_US
    if reply.node != peer:
        raise InvalidRequest(f"cache reply from {peer!r} claims to be from {reply.node[:64]!r}")
    if not 0 <= reply.clock <= limit:
        raise InvalidRequest(f"cache reply clock {reply.clock} is out of range")
    for result in reply.results:
        if isinstance(result, InvalidateResult) and result.held is not None:
            _check_version(result.held, limit, "cache reply")
        elif isinstance(result, FetchResult):
            for version in (result.version, result.watermark):
                if version is not None:
                    _check_version(version, limit, "cache reply")
            if result.ttl_left is not None and not 0 <= result.ttl_left <= 2**32:
                raise InvalidRequest(f"cache reply: ttl_left {result.ttl_left} is out of range")
    return reply
