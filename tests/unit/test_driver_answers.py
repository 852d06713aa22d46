"""A follower's answer to a leader's frame leaves once the frame's entries are on disk, before it applies.

A follower driver on an in-memory log, stepped by ``exchange`` as the Raft
stream route does; its state machine records, at each apply, whether the
answer of the frame that committed the entry was already handed out.
"""

from __future__ import annotations

import asyncio
from typing import Any

from driver_stubs import Echo, nowhere

from rakit.metrics import NodeMetrics
from rakit.node.driver import RaftDriver
from rakit.raft.config import RaftConfig
from rakit.raft.messages import AppendEntries, AppendEntriesResp, Entry
from rakit.storage.memory import MemoryLogStore


class Recorder(Echo):
    def __init__(self) -> None:
        self.answer: asyncio.Future[Any] | None = None
        self.applied: list[tuple[int, bool]] = []  # (index, was the answer out)

    def apply(self, index: int, command: bytes) -> Any:
        self.applied.append((index, self.answer is not None and self.answer.done()))
        return None


async def test_the_ack_is_handed_out_before_the_commit_it_carries_is_applied() -> None:
    machine = Recorder()
    driver = RaftDriver(
        "n2",
        ["n1", "n2", "n3"],
        store=MemoryLogStore(),
        machine=machine,
        transport=nowhere("n2"),
        metrics=NodeMetrics("n2"),
        config=RaftConfig(election_ticks=1000),
        tick_seconds=1.0,
    )
    task = asyncio.create_task(driver.run())
    try:
        first = AppendEntries(
            src="n1",
            dst="n2",
            term=1,
            prev_index=0,
            prev_term=0,
            entries=[Entry(1, 1, data=b"a"), Entry(1, 2, data=b"b")],
            commit=0,
        )
        answer = await asyncio.wait_for(driver.exchange("n1", [first]), 5)
        assert [(type(m), m.index) for m in answer] == [(AppendEntriesResp, 2)]
        assert machine.applied == []

        second = AppendEntries(
            src="n1", dst="n2", term=1, prev_index=2, prev_term=1, entries=[Entry(1, 3, data=b"c")], commit=2
        )
        machine.answer = driver.exchange("n1", [second])
        answer = await asyncio.wait_for(machine.answer, 5)
        assert [(type(m), m.success, m.index) for m in answer] == [(AppendEntriesResp, True, 3)]
        for _ in range(100):
            if len(machine.applied) == 2:
                break
            await asyncio.sleep(0.01)
        assert machine.applied == [(1, True), (2, True)]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class FailingStore(MemoryLogStore):
    def save(self, *args: Any) -> None:
        raise OSError("disk gone")


async def test_a_failed_save_hands_out_no_ack() -> None:
    driver = RaftDriver(
        "n2",
        ["n1", "n2", "n3"],
        store=FailingStore(),
        machine=Recorder(),
        transport=nowhere("n2"),
        metrics=NodeMetrics("n2"),
        config=RaftConfig(election_ticks=1000),
        tick_seconds=1.0,
    )
    task = asyncio.create_task(driver.run())
    append = AppendEntries(
        src="n1", dst="n2", term=1, prev_index=0, prev_term=0, entries=[Entry(1, 1, data=b"a")], commit=0
    )
    answer = await asyncio.wait_for(driver.exchange("n1", [append]), 5)
    assert answer == []  # the entry never reached the disk: no ack, no vote, nothing
    assert isinstance(await asyncio.gather(task, return_exceptions=True), list)
    assert isinstance(task.exception(), OSError)
