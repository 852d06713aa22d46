"""A follower's read index from the leader, for linearizable reads served where they land.

``ReadIndexBatch.index()`` asks the leader (``GET /kv/internal/read_index``,
signed as this node) for an index covering every write committed before the
call.  Concurrent callers share requests: a caller joins the next request to
be *sent*, never one already in flight (whose index may predate the call), so
at most one request is in flight and each caller waits at most two leader
round trips.  Failures are values (``RakitError``), for the caller to retry
within its own deadline.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import msgspec

from rakit.errors import NoLeader, NotLeader, RakitError, Unavailable
from rakit.relay import relayed_error
from rakit.security.tokens import IDENTITY_HEADER, SYSTEM, identity_binding

if TYPE_CHECKING:
    from rakit.node.runtime import NodeRuntime

READ_INDEX_PATH = "/kv/internal/read_index"
ASK_TIMEOUT = 2.0


class _ReadIndex(msgspec.Struct):
    index: int


_decode_index = msgspec.json.Decoder(_ReadIndex).decode


class ReadIndexBatch:
    def __init__(self, runtime: NodeRuntime) -> None:
        self.runtime = runtime
        self._next: asyncio.Future[int | RakitError] | None = None  # the request not yet sent
        self._sending = False
        self.requests = 0  # sent to the leader (each shared by the reads that joined it)

    async def index(self) -> int | RakitError:
        loop = asyncio.get_running_loop()
        if self._next is None:
            self._next = loop.create_future()
            if not self._sending:
                self._sending = True
                loop.create_task(self._send())
        return await asyncio.shield(self._next)

    async def _send(self) -> None:
        try:
            while self._next is not None:
                joined, self._next = self._next, None
                self.requests += 1
                try:
                    joined.set_result(await self._ask())
                except Exception as exc:  # an unexpected failure fails this round's reads, not the next
                    joined.set_result(Unavailable(f"read index: {type(exc).__name__}"))
        finally:
            self._sending = False

    async def _ask(self) -> int | RakitError:
        runtime = self.runtime
        leader = runtime.driver.leader_id
        if leader is None or leader == runtime.node_id:
            return NoLeader() if leader is None else NotLeader(leader)
        base = runtime.driver.addresses.get(leader)
        if base is None:
            return NoLeader()
        target = f"{READ_INDEX_PATH}?node={runtime.node_id}"
        headers: dict[str, str] = {}
        if runtime.internal_auth.enabled:
            binding = identity_binding(SYSTEM.name, b"")
            headers = runtime.internal_auth.headers("GET", target, binding, dst=leader)
            headers[IDENTITY_HEADER] = SYSTEM.name
        try:
            answer = await runtime.relay.call(
                leader,
                "GET",
                base + target,
                b"",
                headers,
                hops=0,
                remaining=ASK_TIMEOUT,
                slack=0.0,
                retry_safe=True,
                what="the leader",
            )
        except Unavailable as exc:
            return exc
        if answer is None:
            return Unavailable(f"the leader {leader} could not be reached")
        if answer.status != 200:
            error = relayed_error(answer, "the leader")
            return error if isinstance(error, NotLeader | Unavailable) else Unavailable(str(error))
        try:
            return _decode_index(answer.body).index
        except msgspec.DecodeError:
            return Unavailable("the leader's read index answer was not understood")
