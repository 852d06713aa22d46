"""Lazy proposals in the Raft driver: they wait for the next eager one (or their timer) and go first.

A one-node driver on an in-memory log; each proposal batch the driver hands
its core is recorded.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from driver_stubs import Echo, nowhere

from rakit.metrics import NodeMetrics
from rakit.node import driver as driver_module
from rakit.node.driver import RaftDriver
from rakit.raft.config import RaftConfig
from rakit.storage.memory import MemoryLogStore


class Leader:
    """A one-node driver that leads, its loop task, and the proposal batches its core was handed."""

    def __init__(self) -> None:
        self.driver = RaftDriver(
            "n1",
            ["n1"],
            store=MemoryLogStore(),
            machine=Echo(),
            transport=nowhere("n1"),
            metrics=NodeMetrics("n1"),
            config=RaftConfig(election_ticks=2),
            tick_seconds=0.002,
        )
        self.batches: list[list[bytes]] = []
        propose_batch = self.driver._propose_batch

        def recording(batch: list[tuple[bytes, asyncio.Future[Any]]]) -> None:
            self.batches.append([command for command, _ in batch])
            propose_batch(batch)

        self.driver._propose_batch = recording  # type: ignore[method-assign]
        self.task = asyncio.create_task(self.driver.run())

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
async def leader() -> Any:
    node = Leader()
    assert await node.driver.wait_for_leader(5.0) == "n1"
    await node.driver.propose(b"first")  # the leader's own term is under way
    yield node
    await node.stop()


async def test_a_lazy_proposal_waits_for_an_eager_one_and_goes_first(
    leader: Leader, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(driver_module, "LAZY_DELAY", 30.0)
    driver = leader.driver
    lazy = asyncio.create_task(driver.propose(b"lazy", lazy=True))
    last = driver.core.last_index
    await driver.read_barrier()  # the loop has run turns since: the lazy one stayed back
    await driver.read_barrier()
    assert driver.core.last_index == last and not lazy.done()
    assert await driver.propose(b"eager") == b"eager"
    assert await asyncio.wait_for(lazy, 5.0) == b"lazy"
    assert leader.batches[-1] == [b"lazy", b"eager"]  # one batch, in arrival order


async def test_a_lazy_proposal_alone_goes_out_on_its_timer(leader: Leader, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(driver_module, "LAZY_DELAY", 0.01)
    assert await asyncio.wait_for(leader.driver.propose(b"alone", lazy=True), 5.0) == b"alone"
    assert leader.batches[-1] == [b"alone"]


async def test_lazy_proposals_fail_like_the_others_when_the_driver_stops(
    leader: Leader, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(driver_module, "LAZY_DELAY", 30.0)
    lazy = asyncio.create_task(leader.driver.propose(b"never", lazy=True))
    await leader.driver.read_barrier()
    await leader.stop()
    with pytest.raises(driver_module.Unavailable):
        await lazy
