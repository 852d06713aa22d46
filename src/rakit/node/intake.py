"""What comes into the Raft driver's loop: commands to propose, peers' messages, calls into the core.

``ProposalIntake`` (rules 1-5) queues the commands request handlers propose;
``PeerInbox`` (rules 6-8) the messages peers send and their exchanges' answers;
``CoreCalls`` (rule 9) the calls request handlers make into the core.

Rules:
1. A command is queued with its future; the loop drains the queue each turn
   (``take_batch``) and proposes what it got as one batch (one AppendEntries
   round, one fsync); at most ``max_batch`` commands a turn, the rest wake
   the loop again.
2. An eager command wakes the loop at once.  A lazy one (its caller will not
   be answered soon anyway) waits for the next eager one, or for its timer
   (``lazy_delay`` seconds on the event loop), whichever comes first; lazy
   commands queued before eager ones go out before them, in arrival order.
3. A command whose future is done (timed out, cancelled) is left out of the batch.
4. Every command has a deadline (``submit``'s ``timeout``, read on the
   clock); ``expire(now)`` fails the futures past theirs with
   ``Unavailable`` (outcome unknown), queued or already proposed.  Deadlines
   are kept in FIFO order, which holds while every caller uses the same
   timeout: one sweep per tick instead of one timer per command.
5. ``fail_queued`` fails every command not yet handed to the loop (a lost
   leadership, a stop); proposed ones are the loop's to answer.
6. The inbox holds at most ``max_messages``: what would overflow it is
   dropped (Raft retransmits), and an exchange dropped so is answered at
   once with nothing.
7. Exchanges queued between turns belong to the next turn (``start_turn``):
   while it runs, messages for those peers are held back from the transport
   (``route``) and handed over by ``answer_turn``, once the first Ready of
   the turn is on disk -- to each peer's latest request; its earlier ones
   get an empty list.  What later Readies have for them goes through the
   transport.
8. ``stop`` answers every exchange with nothing: what was held may not be
   on disk (a failed or cancelled save).
9. A call into the core (a leadership transfer, a membership change) runs
   when the loop drains the queue (``run``), never from the handler: nothing
   may call the core between a Ready and its advance.  Its future gets the
   call's result or exception; one whose future is done is skipped.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from rakit.errors import RakitError, Unavailable
from rakit.node.clock import Clock
from rakit.raft.messages import AnyMessage

MAX_PROPOSALS_PER_TURN = 4096
MAX_INBOX = 50_000

Queued = tuple[bytes, "asyncio.Future[Any]"]
T = TypeVar("T")


class ProposalIntake:
    def __init__(self, clock: Clock, wake: Callable[[], None], *, max_batch: int = MAX_PROPOSALS_PER_TURN) -> None:
        self.clock = clock
        self.wake = wake  # wakes the driver's loop
        self.max_batch = max_batch
        self._eager: list[Queued] = []
        self._lazy: list[Queued] = []
        self._lazy_timer: asyncio.TimerHandle | None = None
        self._deadlines: deque[tuple[float, float, asyncio.Future[Any]]] = deque()

    def __len__(self) -> int:
        """Commands queued and not yet handed to the loop."""
        return len(self._eager) + len(self._lazy)

    def submit(
        self, command: bytes, timeout: float, *, lazy: bool = False, lazy_delay: float = 0.0
    ) -> asyncio.Future[Any]:
        """Queue ``command``; the future the loop answers (or ``expire`` fails after ``timeout``)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._deadlines.append((self.clock.monotonic() + timeout, timeout, future))
        if lazy:
            self._lazy.append((command, future))
            if self._lazy_timer is None:
                self._lazy_timer = loop.call_later(lazy_delay, self.wake)
        else:
            self._eager.append((command, future))
            self.wake()
        return future

    def take_batch(self) -> list[Queued]:
        """What the loop proposes this turn (rules 1-3): possibly nothing."""
        if self._lazy and (
            self._eager or self._lazy_timer is None or self._lazy_timer.when() <= asyncio.get_running_loop().time()
        ):
            self._eager[:0], self._lazy = self._lazy, []
            if self._lazy_timer is not None:
                self._lazy_timer.cancel()
                self._lazy_timer = None
        if not self._eager:
            return []
        batch = self._eager[: self.max_batch]
        del self._eager[: self.max_batch]
        if self._eager:
            self.wake()
        return [(command, future) for command, future in batch if not future.done()]

    def expire(self, now: float) -> None:
        """Fail the futures whose deadline is ``now`` or earlier (rule 4)."""
        deadlines = self._deadlines
        while deadlines and (deadlines[0][0] <= now or deadlines[0][2].done()):
            _, timeout, future = deadlines.popleft()
            if not future.done():
                future.set_exception(
                    Unavailable(f"the command was not committed within {timeout:g}s; its outcome is unknown")
                )

    def fail_queued(self, error: RakitError) -> None:
        """Fail every command still queued, lazy ones too (rule 5)."""
        queued, self._eager, self._lazy = [*self._lazy, *self._eager], [], []
        for _, future in queued:
            if not future.done():
                future.set_exception(error)


PeerWaiter = tuple[str, "asyncio.Future[list[AnyMessage]]"]


class PeerInbox:
    def __init__(self, wake: Callable[[], None], *, max_messages: int = MAX_INBOX) -> None:
        self.wake = wake
        self.max_messages = max_messages
        self._messages: list[AnyMessage] = []
        self._queued: list[PeerWaiter] = []
        self._turn: list[PeerWaiter] = []  # exchanges fed this turn
        self._held: dict[str, list[AnyMessage]] = {}

    def receive(self, messages: list[AnyMessage]) -> bool:
        """Queue ``messages``; False if they were dropped (rule 6)."""
        if len(self._messages) + len(messages) > self.max_messages:
            return False
        self._messages.extend(messages)
        self.wake()
        return True

    def exchange(self, src: str, messages: list[AnyMessage]) -> asyncio.Future[list[AnyMessage]]:
        """Queue ``src``'s messages; the future gets what the turn that steps them has for ``src``."""
        future: asyncio.Future[list[AnyMessage]] = asyncio.get_running_loop().create_future()
        if self.receive(messages):
            self._queued.append((src, future))
        else:
            future.set_result([])
        return future

    def start_turn(self) -> None:
        self._turn, self._queued = self._queued, []
        self._held = {src: [] for src, _ in self._turn}

    def take(self) -> list[AnyMessage]:
        """The messages to step this turn, in arrival order."""
        messages, self._messages = self._messages, []
        return messages

    @property
    def answering(self) -> bool:
        """Exchanges of this turn are still unanswered."""
        return bool(self._turn)

    def route(self, messages: list[AnyMessage]) -> list[AnyMessage]:
        """Keep messages for peers whose exchanges await an answer; return the rest (rule 7)."""
        if not self._held:
            return messages
        outgoing = []
        for message in messages:
            held = self._held.get(message.dst)
            if held is None:
                outgoing.append(message)
            else:
                held.append(message)
        return outgoing

    def answer_turn(self) -> None:
        waiters, self._turn = self._turn, []
        self._answer(waiters)

    def stop(self) -> None:
        self._held = {}
        self.answer_turn()
        waiters, self._queued = self._queued, []
        self._answer(waiters)

    def _answer(self, waiters: list[PeerWaiter]) -> None:
        latest = {src: future for src, future in waiters}
        for src, future in waiters:
            if not future.done():
                future.set_result(self._held.get(src, []) if latest[src] is future else [])
        self._held = {}


class CoreCalls:
    def __init__(self, wake: Callable[[], None]) -> None:
        self.wake = wake
        self._queued: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []

    def submit(self, action: Callable[[], T]) -> asyncio.Future[T]:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queued.append((action, future))
        self.wake()
        return future

    def run(self) -> None:
        """Run every queued call, in order (rule 9)."""
        queued, self._queued = self._queued, []
        for action, future in queued:
            if future.done():
                continue
            try:
                future.set_result(action())
            except Exception as exc:
                future.set_exception(exc)

    def fail_all(self, error: RakitError) -> None:
        queued, self._queued = self._queued, []
        for _, future in queued:
            if not future.done():
                future.set_exception(error)


__all__ = ["MAX_INBOX", "MAX_PROPOSALS_PER_TURN", "CoreCalls", "PeerInbox", "ProposalIntake"]
