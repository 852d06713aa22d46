"""Lazy proposals in the Raft driver: they wait for the next eager one (or their timer) and go first.

A one-node driver on an in-memory log; each proposal batch the driver hands
its core is recorded.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rakit.metrics import NodeMetrics
from rakit.node import driver as driver_module
from rakit.node.driver import RaftDriver
from rakit.raft.config import RaftConfig
from rakit.storage.memory import MemoryLogStore


class Echo:
    """A state machine whose result is the command itself."""

    def apply(self, index: int, command: bytes) -> Any:
        return command

    def snapshot(self) -> bytes:
        return b""

    def restore(self, data: bytes) -> None:
        pass


class Nowhere:
    def send(self, messages: list[Any]) -> None:
        pass

    async def run(self) -> None:
        await asyncio.Event().wait()


async def leading_driver() -> tuple[RaftDriver, asyncio.Task[None], list[list[bytes]]]:
    driver = RaftDriver("n1", ["n1"], store=MemoryLogStore(), machine=Echo(), transport=Nowhere(),
                        metrics=NodeMetrics("n1"), config=RaftConfig(election_ticks=2), tick_seconds=0.002)
    batches: list[list[bytes]] = []
    propose_batch = driver._propose_batch

    def recording(batch: list[tuple[bytes, asyncio.Future[Any]]]) -> None:
        batches.append([command for command, _ in batch])
        propose_batch(batch)

    driver._propose_batch = recording  # type: ignore[method-assign]
    task = asyncio.create_task(driver.run())
    assert await driver.wait_for_leader(5.0) == "n1"
    await driver.propose(b"first")  # the leader's own term is under way
    return driver, task, batches


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_a_lazy_proposal_waits_for_an_eager_one_and_goes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(driver_module, "LAZY_DELAY", 30.0)

    async def main() -> None:
        driver, task, batches = await leading_driver()
        try:
            lazy = asyncio.create_task(driver.propose(b"lazy", lazy=True))
            last = driver.core.last_index
            await driver.read_barrier()  # the loop has run turns since: the lazy one stayed back
            await driver.read_barrier()
            assert driver.core.last_index == last and not lazy.done()
            assert await driver.propose(b"eager") == b"eager"
            assert await asyncio.wait_for(lazy, 5.0) == b"lazy"
            assert batches[-1] == [b"lazy", b"eager"]  # one batch, in arrival order
        finally:
            await stop(task)

    asyncio.run(main())


def test_a_lazy_proposal_alone_goes_out_on_its_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(driver_module, "LAZY_DELAY", 0.01)

    async def main() -> None:
        driver, task, batches = await leading_driver()
        try:
            assert await asyncio.wait_for(driver.propose(b"alone", lazy=True), 5.0) == b"alone"
            assert batches[-1] == [b"alone"]
        finally:
            await stop(task)

    asyncio.run(main())


def test_lazy_proposals_fail_like_the_others_when_the_driver_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(driver_module, "LAZY_DELAY", 30.0)

    async def main() -> None:
        driver, task, _ = await leading_driver()
        lazy = asyncio.create_task(driver.propose(b"never", lazy=True))
        await driver.read_barrier()
        await stop(task)
        with pytest.raises(driver_module.Unavailable):
            await lazy

    asyncio.run(main())
