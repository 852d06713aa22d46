"""The state-machine seam: what Raft applies committed commands to.

A state machine is deterministic: the same commands at the same indexes give
the same results and the same snapshot on every replica.  Time and identity
travel inside commands; refusals ("conflict", "not_holder") are results, not
exceptions.
"""

from __future__ import annotations

from typing import Any, Protocol


class StateMachine(Protocol):
    def apply(self, index: int, command: bytes) -> Any:
        """Apply the committed command at ``index``; return its result."""
        ...

    def snapshot(self) -> bytes:
        """The whole state, encoded (no pickle)."""
        ...

    def restore(self, data: bytes) -> None:
        """Replace the whole state with a snapshot's."""
        ...
