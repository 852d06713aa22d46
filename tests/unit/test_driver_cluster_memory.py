"""Three real ``RaftDriver``s in one event loop over the transport's in-memory twin.

Each node has an in-memory log and a state machine that records what it
applies; the network is ``rakit.transport.memory``, its faults switched
while the drivers run.  Every wait is for a condition, with a deadline.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from driver_stubs import until

from rakit.errors import NotLeader, ProposalDropped
from rakit.metrics import NodeMetrics
from rakit.node.driver import RaftDriver
from rakit.raft.config import RaftConfig
from rakit.storage.memory import MemoryLogStore
from rakit.transport.memory import MemoryNetwork

IDS = ("n1", "n2", "n3")
TICK = 0.01  # an election timeout of 10-20 ticks: 0.1-0.2 s
DEADLINE = 10.0  # generous: the machine is shared


class Recording:
    """A state machine that keeps every command it applies, in order."""

    def __init__(self) -> None:
        self.applied: list[tuple[int, bytes]] = []

    def apply(self, index: int, command: bytes) -> Any:
        self.applied.append((index, command))
        return command

    def snapshot(self) -> bytes:
        return b""

    def restore(self, data: bytes) -> None:
        pass

    def commands(self) -> list[bytes]:
        return [command for _, command in self.applied if command]


class Cluster:
    def __init__(self, seed: int = 1) -> None:
        self.network = MemoryNetwork(rng=random.Random(seed))
        self.machines = {n: Recording() for n in IDS}
        self.drivers: dict[str, RaftDriver] = {}
        self.tasks: list[asyncio.Task[None]] = []
        for number, node in enumerate(IDS):
            transport = self.network.transport(node)
            driver = RaftDriver(
                node,
                list(IDS),
                store=MemoryLogStore(),
                machine=self.machines[node],
                transport=transport,
                metrics=NodeMetrics(node),
                config=RaftConfig(election_ticks=10),
                tick_seconds=TICK,
                rng=random.Random(seed * 100 + number),
            )
            self.network.attach(node, driver.receive)
            self.drivers[node] = driver
            self.tasks.append(asyncio.create_task(driver.run(), name=f"driver-{node}"))
            self.tasks.append(asyncio.create_task(transport.run(), name=f"transport-{node}"))

    def leader(self, among: tuple[str, ...] = IDS) -> str | None:
        """The one node of ``among`` that leads and that all of ``among`` follow, if there is one."""
        leaders = [n for n in among if self.drivers[n].is_leader]
        if len(leaders) != 1 or any(self.drivers[n].leader_id != leaders[0] for n in among):
            return None
        return leaders[0]

    def applied_everywhere(self, command: bytes, among: tuple[str, ...] = IDS) -> bool:
        return all(command in self.machines[n].commands() for n in among)

    def converged(self) -> bool:
        """One leader, one log: every node applied the same entries up to the same commit index."""
        if self.leader() is None:
            return False
        drivers = self.drivers.values()
        if len({(d.core.term, d.core.commit_index, d.core.applied_index) for d in drivers}) != 1:
            return False
        return len({tuple(m.applied) for m in self.machines.values()}) == 1

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for task in self.tasks:  # nothing crashed while it ran
            assert task.cancelled(), task


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    running = Cluster()
    yield running
    await running.stop()


async def test_a_leader_is_elected_and_a_proposal_commits_on_all_three(cluster: Cluster) -> None:
    leader = await until(cluster.leader, DEADLINE, "a leader all three follow")
    result = await asyncio.wait_for(cluster.drivers[leader].propose(b"first"), DEADLINE)
    assert result == b"first"
    await until(lambda: cluster.applied_everywhere(b"first"), DEADLINE, "the proposal applied on all three")
    assert cluster.network.stats["delivered"] > 0


async def test_proposals_commit_on_a_lossy_slow_network(cluster: Cluster) -> None:
    cluster.network.drop(rate=0.2)
    cluster.network.delay(0.002, jitter=0.004)
    leader = await until(cluster.leader, DEADLINE, "a leader on a lossy network")
    for number in range(5):
        command = b"lossy-%d" % number
        try:
            await asyncio.wait_for(cluster.drivers[leader].propose(command, timeout=DEADLINE), DEADLINE)
        except (NotLeader, ProposalDropped):  # leadership may move when heartbeats are lost: once more
            leader = await until(cluster.leader, DEADLINE, "a leader again")
            await asyncio.wait_for(cluster.drivers[leader].propose(command, timeout=DEADLINE), DEADLINE)
    cluster.network.heal()
    await until(cluster.converged, DEADLINE, "one log on all three once healed")
    assert all(cluster.applied_everywhere(b"lossy-%d" % n) for n in range(5))
    assert cluster.network.stats["rule"] > 0


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_partitioned_leader_is_replaced_and_heal_converges(seed: int) -> None:
    cluster = Cluster(seed)
    try:
        await _partition_and_heal(cluster)
    finally:
        await cluster.stop()


async def _partition_and_heal(cluster: Cluster) -> None:
    old = await until(cluster.leader, DEADLINE, "a leader all three follow")
    await asyncio.wait_for(cluster.drivers[old].propose(b"before"), DEADLINE)
    old_term = cluster.drivers[old].core.term

    majority = tuple(n for n in IDS if n != old)
    cluster.network.partition([old])
    new = await until(lambda: cluster.leader(majority), DEADLINE, "a leader on the majority side")
    assert new != old and cluster.drivers[new].core.term > old_term
    await asyncio.wait_for(cluster.drivers[new].propose(b"during"), DEADLINE)
    await until(lambda: cluster.applied_everywhere(b"during", majority), DEADLINE, "the majority to apply it")
    assert b"during" not in cluster.machines[old].commands()  # the cut-off node cannot have it
    await until(lambda: not cluster.drivers[old].is_leader, DEADLINE, "the cut-off leader to step down")

    cluster.network.heal()
    await until(lambda: cluster.applied_everywhere(b"during"), DEADLINE, "the old leader to catch up")
    leader = await until(cluster.leader, DEADLINE, "one leader after the heal")
    await asyncio.wait_for(cluster.drivers[leader].propose(b"after"), DEADLINE)
    await until(lambda: cluster.applied_everywhere(b"after") and cluster.converged(), DEADLINE, "one log on all three")
    assert cluster.machines[old].commands() == [b"before", b"during", b"after"]
    assert cluster.network.stats["cut"] > 0
