"""The lockstep test network for the pure Raft core: cores, their stores, a message queue, faults.

Shared by ``test_raft_core`` and ``test_raft_membership``.  Each node keeps a
``Store`` as the driver would (hard state, snapshot, entries) and restarts
from it; ``add`` brings in a node with an empty data dir (membership tests).
Messages move only when ``deliver``/``drain`` say so; ``cut_links``,
``isolate``, ``stopped`` and ``drop`` are the faults.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from rakit.raft.config import RaftConfig
from rakit.raft.core import RaftCore
from rakit.raft.messages import (
    ENTRY_NORMAL,
    AnyMessage,
    ConfState,
    Entry,
    HardState,
    Snapshot,
)
from rakit.raft.ready import Ready

ABC = ["a", "b", "c"]
CFG = RaftConfig(election_ticks=10, heartbeat_ticks=1)


@dataclass
class Store:
    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: list[Entry] = field(default_factory=list)

    def save(self, rd: Ready) -> None:
        if rd.hard_state is not None:
            self.hard_state = rd.hard_state
        if rd.snapshot is not None:
            self.snapshot = rd.snapshot
            self.entries = [e for e in self.entries if e.index > rd.snapshot.meta.index]
        if rd.entries:
            first = rd.entries[0].index
            self.entries = [e for e in self.entries if e.index < first] + rd.entries


class Net:
    def __init__(self, ids: list[str] = ABC, *, seed: int = 0, config: RaftConfig = CFG) -> None:
        self.initial = list(ids)
        self.seed = seed
        self.ids: list[str] = []
        self.config = config
        self.cores: dict[str, RaftCore] = {}
        self.stores: dict[str, Store] = {}
        self.applied: dict[str, list[bytes]] = {}
        self.confs: dict[str, list[ConfState]] = {}  # every Ready.conf_state seen, per node
        self.read_states: dict[str, list] = {}
        self.queue: list[AnyMessage] = []
        self.sent: list[AnyMessage] = []
        self.cut_links: set[tuple[str, str]] = set()
        self.stopped: set[str] = set()
        self.drop: Callable[[AnyMessage], bool] = lambda m: False
        for node in ids:
            self.add(node)

    def add(self, node: str) -> RaftCore:
        """A node with an empty data dir, given the cluster's initial voters (as the driver would)."""
        self.ids.append(node)
        self.stores[node] = Store()
        self.applied[node] = []
        self.confs[node] = []
        self.read_states[node] = []
        self.cores[node] = self._core(node)
        return self.cores[node]

    def _core(self, node: str) -> RaftCore:
        s = self.stores[node]
        return RaftCore(
            node,
            self.initial,
            config=self.config,
            rng=random.Random(f"{self.seed}/{node}"),
            hard_state=s.hard_state,
            snapshot=s.snapshot,
            entries=list(s.entries),
        )

    def restart(self, node: str) -> RaftCore:
        self.stopped.discard(node)
        self.cores[node] = self._core(node)
        s = self.stores[node]
        self.applied[node] = s.snapshot.data.split(b"|") if s.snapshot and s.snapshot.data else []
        return self.cores[node]

    def __getitem__(self, node: str) -> RaftCore:
        return self.cores[node]

    def isolate(self, node: str) -> None:
        for other in self.ids:
            if other != node:
                self.cut_links |= {(node, other), (other, node)}

    def heal(self) -> None:
        self.cut_links.clear()

    def process(self, node: str) -> Ready:
        core = self.cores[node]
        rd = core.ready()
        self.stores[node].save(rd)
        if rd.conf_state is not None:
            self.confs[node].append(rd.conf_state)
        for m in rd.all_messages():
            self.sent.append(m)
            if (m.src, m.dst) not in self.cut_links and not self.drop(m):
                self.queue.append(m)
        if rd.snapshot is not None:
            self.applied[node] = rd.snapshot.data.split(b"|") if rd.snapshot.data else []
        self.applied[node] += [e.data for e in rd.committed_entries if e.kind == ENTRY_NORMAL]
        self.read_states[node] += rd.read_states
        core.advance(rd)
        return rd

    def deliver(self) -> None:
        msgs, self.queue = self.queue, []
        for m in msgs:
            if m.dst not in self.stopped and m.dst in self.cores:
                self.cores[m.dst].step(m)

    def drain(self, max_rounds: int = 1000) -> None:
        for _ in range(max_rounds):
            busy = False
            for node in self.ids:
                if node not in self.stopped and self.cores[node].has_ready():
                    busy = True
                    self.process(node)
            if self.queue:
                busy = True
                self.deliver()
            if not busy:
                return
        raise AssertionError("network did not settle")

    def tick(self, n: int = 1, nodes: list[str] | None = None) -> None:
        for _ in range(n):
            for node in nodes or self.ids:
                if node not in self.stopped:
                    self.cores[node].tick()
            self.drain()

    def elect(self, node: str) -> RaftCore:
        self.cores[node].campaign()
        self.drain()
        assert self.cores[node].role == "leader"
        return self.cores[node]

    def leaders(self) -> list[str]:
        return [n for n in self.ids if n not in self.stopped and self.cores[n].role == "leader"]

    def compact(self, node: str) -> Snapshot:
        core = self.cores[node]
        snap = core.compact(core.applied_index, b"|".join(self.applied[node]))
        store = self.stores[node]
        store.snapshot = snap
        store.entries = [e for e in store.entries if e.index > snap.meta.index]
        return snap


def of_type(msgs: list[AnyMessage], kind: type, dst: str | None = None) -> list:
    return [m for m in msgs if isinstance(m, kind) and (dst is None or m.dst == dst)]
