"""The driver's time comes from its Clock: with the ManualClock twin, ticks and proposal deadlines
happen when the test moves time, not when the wall clock does."""

from __future__ import annotations

import asyncio

import pytest
from driver_stubs import Echo, nowhere

from rakit.errors import Unavailable
from rakit.metrics import NodeMetrics
from rakit.node.clock import ManualClock
from rakit.node.driver import RaftDriver
from rakit.raft.config import RaftConfig
from rakit.raft.messages import RequestVoteResp
from rakit.storage.memory import MemoryLogStore

TICK = 1.0


def make(clock: ManualClock) -> RaftDriver:
    return RaftDriver(
        "n1",
        ["n1", "n2", "n3"],
        store=MemoryLogStore(),
        machine=Echo(),
        transport=nowhere("n1"),
        metrics=NodeMetrics("n1"),
        config=RaftConfig(election_ticks=10, pre_vote=False),
        tick_seconds=TICK,
        clock=clock,
    )


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_no_election_starts_until_the_clock_moves_past_the_timeout() -> None:
    clock = ManualClock()
    driver = make(clock)
    task = asyncio.create_task(driver.run())
    try:
        await settle()
        await clock.advance(9 * TICK)  # below the shortest randomized timeout (10 ticks)
        await settle()
        assert driver.core.term == 0
        await clock.advance(11 * TICK)  # past the longest (19 ticks)
        await settle()
        assert driver.core.term == 1 and driver.role == "candidate"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_proposal_fails_when_the_clock_passes_its_deadline_and_not_before() -> None:
    clock = ManualClock()
    driver = make(clock)
    task = asyncio.create_task(driver.run())
    try:
        await settle()
        await clock.advance(20 * TICK)
        await settle()
        driver.receive([RequestVoteResp(src="n2", dst="n1", term=driver.core.term, granted=True)])
        await settle()
        assert driver.is_leader
        proposal = asyncio.ensure_future(driver.propose(b"x", timeout=2 * TICK))
        await settle()
        await clock.advance(1 * TICK)
        await settle()
        assert not proposal.done()  # no follower acked, and the deadline is not reached
        await clock.advance(1.5 * TICK)
        await settle()
        with pytest.raises(Unavailable, match="not committed within 2s"):
            proposal.result()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
