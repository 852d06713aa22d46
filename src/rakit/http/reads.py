"""Linearizable reads on any node: ReadIndex here when leading, else a read index from the leader.

A follower does not forward a read: it asks the leader for a read index
(``rakit.node.read_index``: the leader confirms its leadership with a quorum
and answers its applied index, which covers every write committed before
the read began), waits until its own state machine has applied that index,
and answers from its own state (etcd's ReadIndex from followers).  The
whole read is bounded by ``READ_DEADLINE`` seconds, else ``503``.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from starlette.requests import Request

from rakit.errors import NoLeader, NotLeader, RakitError
from rakit.http.forward import RETRY_PAUSE

if TYPE_CHECKING:
    from rakit.node.runtime import NodeRuntime

READ_DEADLINE = 5.0


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
                index = await runtime.read_index_batch.index()
                if isinstance(index, int):
                    await driver.wait_applied(index, timeout=max(0.1, deadline - time.monotonic()))
                    return
                last_error = index
        if time.monotonic() >= deadline:
            raise last_error
        await asyncio.sleep(RETRY_PAUSE)


async def leader_read_index(runtime: NodeRuntime, follower: str | None) -> int:
    """On the leader: confirm leadership (ReadIndex), then the applied index a follower must reach.

    The follower is sent the commit index at once (it may not know yet that the entries it
    holds are committed: a commit index alone rides on the next heartbeat).
    """
    driver = runtime.driver
    if not driver.is_leader:
        raise NotLeader(driver.leader_id)
    await driver.read_barrier()
    index = int(driver.core.applied_index)
    if follower is not None:
        await driver.send_commit(follower)
    return index
