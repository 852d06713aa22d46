"""Stand-ins a test RaftDriver runs with: a state machine and a transport that goes nowhere.

Shared by ``test_driver_lazy`` and ``test_driver_answers``.
"""

from __future__ import annotations

import asyncio
from typing import Any


class Echo:
    """A state machine whose result is the command itself."""

    def apply(self, index: int, command: bytes) -> Any:
        return command

    def snapshot(self) -> bytes:
        return b""

    def restore(self, data: bytes) -> None:
        pass


class Nowhere:
    sends_at_once = False

    def send(self, messages: list[Any]) -> None:
        pass

    async def run(self) -> None:
        await asyncio.Event().wait()
