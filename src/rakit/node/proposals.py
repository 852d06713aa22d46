"""Futures of proposed commands and of linearizable reads, by log index.

A proposal is answered when the entry at its index is applied: with the
state machine's result if the entry still carries the proposal's term, with
``ProposalDropped`` if another leader's entry took the index (hashicorp's
"a Raft failure is kept apart from the state machine's answer").
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from collections.abc import Callable
from typing import Any

from rakit.errors import NotLeader, ProposalDropped, RakitError


class PendingProposals:
    def __init__(self) -> None:
        self._by_index: dict[int, tuple[int, asyncio.Future[Any]]] = {}

    def __len__(self) -> int:
        return len(self._by_index)

    def add(self, term: int, index: int, future: asyncio.Future[Any]) -> None:
        self._by_index[index] = (term, future)

    def applied(self, index: int, term: int, result: Any) -> None:
        pending = self._by_index.pop(index, None)
        if pending is None:
            return
        proposed_term, future = pending
        if future.done():
            return
        if proposed_term == term:
            future.set_result(result)
        else:
            future.set_exception(ProposalDropped("leadership changed before the command committed"))

    def drop_through(self, index: int) -> None:
        """A snapshot replaced the log through ``index``: outcomes there are unknown."""
        for i in [i for i in self._by_index if i <= index]:
            _, future = self._by_index.pop(i)
            if not future.done():
                future.set_exception(ProposalDropped("log replaced by a snapshot; outcome unknown"))

    def fail_all(self, error: RakitError) -> None:
        for _, future in self._by_index.values():
            if not future.done():
                future.set_exception(error)
        self._by_index.clear()


class PendingReads:
    """ReadIndex waiters: requested -> sent with a ctx -> confirmed -> applied."""

    def __init__(self) -> None:
        self.requested: list[asyncio.Future[None]] = []
        self.by_ctx: dict[int, list[asyncio.Future[None]]] = {}
        self.confirmed: deque[tuple[int, list[asyncio.Future[None]]]] = deque()
        self._next_ctx = 0

    def next_ctx(self) -> int:
        self._next_ctx += 1
        return self._next_ctx

    def confirm(self, ctx: int, index: int) -> None:
        waiters = self.by_ctx.pop(ctx, None)
        if waiters:
            self.confirmed.append((index, waiters))

    def release_applied(self, applied: int) -> None:
        while self.confirmed and self.confirmed[0][0] <= applied:
            _, waiters = self.confirmed.popleft()
            for future in waiters:
                if not future.done():
                    future.set_result(None)

    def fail_all(self, error: RakitError) -> None:
        groups = [self.requested, *self.by_ctx.values(), *(w for _, w in self.confirmed)]
        for waiters in groups:
            for future in waiters:
                if not future.done():
                    future.set_exception(error)
        self.requested = []
        self.by_ctx.clear()
        self.confirmed.clear()

    def send(self, read_index: Callable[[int], None]) -> None:
        """Hand every requested read to the core under one ctx (``read_index(ctx)``); NotLeader fails them."""
        if not self.requested:
            return
        waiters, self.requested = self.requested, []
        try:
            ctx = self.next_ctx()
            read_index(ctx)
            self.by_ctx[ctx] = waiters
        except NotLeader as exc:
            for future in waiters:
                if not future.done():
                    future.set_exception(exc)

    def fail_unconfirmed(self, leader_id: str | None) -> None:
        """Leadership moved: reads not yet confirmed must be retried at the leader."""
        error = NotLeader(leader_id)
        for waiters in [self.requested, *self.by_ctx.values()]:
            for future in waiters:
                if not future.done():
                    future.set_exception(error)
        self.requested = []
        self.by_ctx.clear()


class AppliedWaiters:
    """Futures waiting for the state machine to reach an index (a follower's ReadIndex from the leader)."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = 0

    def add(self, index: int, future: asyncio.Future[None]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (index, self._seq, future))

    def release(self, applied: int) -> None:
        while self._heap and self._heap[0][0] <= applied:
            future = heapq.heappop(self._heap)[2]
            if not future.done():
                future.set_result(None)

    def fail_all(self, error: RakitError) -> None:
        for _, _, future in self._heap:
            if not future.done():
                future.set_exception(error)
        self._heap = []
