"""Stand-ins a test RaftDriver runs with: a state machine, a network that goes nowhere, a deadline wait.

Shared by ``test_driver_lazy``, ``test_driver_answers``, ``test_driver_cluster_memory``
and ``test_transport_memory``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from rakit.transport.memory import MemoryNetwork, MemoryTransport


class Echo:
    """A state machine whose result is the command itself."""

    def apply(self, index: int, command: bytes) -> Any:
        return command

    def snapshot(self) -> bytes:
        return b""

    def restore(self, data: bytes) -> None:
        pass


def nowhere(node_id: str) -> MemoryTransport:
    """A transport on a network of its own: whatever ``node_id`` sends reaches no one."""
    return MemoryNetwork().transport(node_id)


async def until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.005) -> Any:
    """``condition()``'s first true value, checked every ``interval`` s; AssertionError after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if value:
            return value
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)
