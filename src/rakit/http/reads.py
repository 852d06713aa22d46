"""Linearizable reads on any node: ReadIndex here when leading, else a read index from the leader.

A follower does not forward a read: it asks the leader for a read index
(``GET /kv/internal/read_index``: the leader confirms its leadership with a
quorum and answers its applied index, which covers every write committed
before the read began), waits until its own state machine has applied that
index, and answers from its own state (etcd's ReadIndex from followers).
Each step is bounded: the whole read within ``READ_DEADLINE`` seconds, else
``503``.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import msgspec
from starlette.requests import Request

from rakit.errors import NoLeader, NotLeader, RakitError, Unavailable
from rakit.http.forward import RETRY_PAUSE, hops_of, identity_headers
from rakit.relay import relayed_error

if TYPE_CHECKING:
    from rakit.node.runtime import NodeRuntime

READ_INDEX_PATH = "/kv/internal/read_index"
READ_DEADLINE = 5.0


class _ReadIndex(msgspec.Struct):
    index: int


_decode_index = msgspec.json.Decoder(_ReadIndex).decode


async def linearizable(runtime: NodeRuntime, request: Request) -> None:
    """Return once this node's state reflects every write committed before the call."""
    driver = runtime.driver
    deadline = time.monotonic() + READ_DEADLINE
    last_error: RakitError = NoLeader()
    while True:
        remaining = deadline - time.monotonic()
        if driver.is_leader:
            try:
                await driver.read_barrier(timeout=max(0.1, remaining))
                return
            except NotLeader as exc:
                last_error = exc
        else:
            leader = driver.leader_id or await driver.wait_for_leader(max(0.0, remaining))
            if leader is not None and leader != runtime.node_id:
                index = await _leader_index(runtime, request, leader, max(0.1, remaining))
                if isinstance(index, int):
                    await driver.wait_applied(index, timeout=max(0.1, deadline - time.monotonic()))
                    return
                last_error = index
        if time.monotonic() >= deadline:
            raise last_error
        await asyncio.sleep(RETRY_PAUSE)


async def _leader_index(runtime: NodeRuntime, request: Request, leader: str, timeout: float) -> int | RakitError:
    base = runtime.driver.addresses.get(leader)
    if base is None:
        return NoLeader()
    headers = identity_headers(request, leader, b"", method="GET", target=READ_INDEX_PATH)
    try:
        answer = await runtime.relay.call(
            leader,
            "GET",
            base + READ_INDEX_PATH,
            b"",
            headers,
            hops=hops_of(request),
            remaining=timeout,
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


async def leader_read_index(runtime: NodeRuntime) -> int:
    """On the leader: confirm leadership (ReadIndex), then the applied index a follower must reach."""
    driver = runtime.driver
    if not driver.is_leader:
        raise NotLeader(driver.leader_id)
    await driver.read_barrier()
    return int(driver.core.applied_index)
