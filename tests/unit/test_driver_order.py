"""The driver runs a Ready's effects in the order ``rakit.raft.turn.plan`` gives.

A driver on an in-memory log whose store and transport write into one
journal: a candidate's vote request leaves only after its new term and vote
are saved, a follower's ack only after the entries it acknowledges, and a
leader's AppendEntries leave *before* its own save of those entries (thesis
10.2.1) -- the order the simulation checks.
"""

from __future__ import annotations

import asyncio
from typing import Any

from driver_stubs import Echo, until

from rakit.metrics import NodeMetrics
from rakit.node.driver import RaftDriver
from rakit.raft.config import RaftConfig
from rakit.raft.messages import AppendEntries, AppendEntriesResp, Entry, RequestVote, RequestVoteResp
from rakit.storage.memory import MemoryLogStore


class Journal:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def index(self, pred: Any) -> int:
        return next(i for i, e in enumerate(self.events) if pred(e))


class JournalStore(MemoryLogStore):
    def __init__(self, journal: Journal) -> None:
        super().__init__()
        self.journal = journal

    def save(self, hard_state: Any, entries: Any, snapshot: Any) -> None:
        super().save(hard_state, entries, snapshot)
        self.journal.events.append(("save", (hard_state, [e.index for e in entries])))


class JournalTransport:
    sends_at_once = False

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def send(self, messages: list[Any]) -> None:
        for m in messages:
            self.journal.events.append(("send", m))

    async def run(self) -> None:
        await asyncio.Event().wait()


def make(journal: Journal, node: str = "n1") -> RaftDriver:
    return RaftDriver(
        node,
        ["n1", "n2", "n3"],
        store=JournalStore(journal),
        machine=Echo(),
        transport=JournalTransport(journal),
        metrics=NodeMetrics(node),
        config=RaftConfig(election_ticks=10, heartbeat_ticks=1, pre_vote=False),
        tick_seconds=0.01,
    )


def is_send(kind: type, pred: Any = lambda m: True) -> Any:
    return lambda e: e[0] == "send" and isinstance(e[1], kind) and pred(e[1])


def saved(pred: Any) -> Any:
    return lambda e: e[0] == "save" and pred(*e[1])


async def test_votes_wait_for_the_disk_and_a_leaders_appends_do_not() -> None:
    journal = Journal()
    driver = make(journal)
    task = asyncio.create_task(driver.run())
    try:
        await until(lambda: any(is_send(RequestVote)(e) for e in journal.events), 5.0, "a vote request")
        ask = journal.index(is_send(RequestVote))
        term = journal.events[ask][1].term
        assert journal.index(saved(lambda hs, _: hs is not None and hs.term == term and hs.vote == "n1")) < ask
        driver.receive([RequestVoteResp(src="n2", dst="n1", term=term, granted=True)])
        await until(lambda: driver.is_leader, 5.0, "leadership")
        # The leader's first entry (its no-op) leaves before its own save of it.
        await until(lambda: any(saved(lambda hs, idx: 1 in idx)(e) for e in journal.events), 5.0, "the no-op saved")
        first_append = journal.index(is_send(AppendEntries, lambda m: any(x.index == 1 for x in m.entries)))
        assert first_append < journal.index(saved(lambda hs, idx: 1 in idx))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_followers_ack_waits_for_the_entries_it_acknowledges() -> None:
    journal = Journal()
    driver = make(journal, "n2")
    task = asyncio.create_task(driver.run())
    try:
        driver.receive(
            [
                AppendEntries(
                    src="n1",
                    dst="n2",
                    term=1,
                    prev_index=0,
                    prev_term=0,
                    entries=[Entry(1, 1, data=b"a"), Entry(1, 2, data=b"b")],
                    commit=0,
                )
            ]
        )
        ack = is_send(AppendEntriesResp, lambda m: m.success and m.index == 2)
        await until(lambda: any(ack(e) for e in journal.events), 5.0, "the ack")
        assert journal.index(saved(lambda hs, idx: 2 in idx)) < journal.index(ack)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
