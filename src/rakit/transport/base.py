"""The transport seam: how Raft messages leave a node.

``send`` never blocks and never raises: delivery is best effort, and Raft
retransmits what is lost.  Incoming messages reach the driver through its
``receive`` method (called by the HTTP routes or by a test network).
"""

from __future__ import annotations

from typing import Protocol

from rakit.raft.messages import AnyMessage


class Transport(Protocol):
    # True when ``send`` hands messages to open connections before it returns, so a
    # driver may block right after it (a small fsync) without holding them back.
    sends_at_once: bool

    def send(self, messages: list[AnyMessage]) -> None:
        """Queue messages for their destinations (``msg.dst``)."""
        ...

    async def run(self) -> None:
        """Deliver queued messages until cancelled."""
        ...
