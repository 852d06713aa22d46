"""Cache versions: a totally ordered (counter, node) pair and the clock that issues them.

Pure: no clock is read here; the caller passes the wall time in microseconds.

Rules
-----
1.  A ``Version`` is ``(counter, node)``, compared by counter, then by node id
    (plain string order).  Two writes never share a version: a node never
    issues the same counter twice, and node ids differ.  ``Version(c, "")``
    is the lowest version with counter ``c`` (no node id is empty); it serves
    as a *floor* ("nothing older than this"), never as a write's version.
2.  The encoded form is the string ``"<counter>.<node>"`` (decimal counter,
    then everything after the first dot).  It is the version the API shows:
    opaque to clients, and the same on every node for one write, since the
    writer's version travels inside the invalidation and the fetch answers.
3.  ``HybridClock.tick(now_us)`` issues ``counter = max(last + 1, now_us)``:
    above everything this clock issued or observed (the Lamport part), and
    never below the wall clock (the physical floor).
4.  ``HybridClock.observe(v)`` raises ``last`` to ``v.counter``: the next tick
    is then above ``v`` whatever its node id.  Every version a node learns of
    (invalidation, fetch answer) is observed, so a node's writes always beat
    what it has seen, and concurrent writers converge on the highest version.

Why a physical floor
--------------------
A node keeps its clock in memory only.  After a restart it knows nothing of
the versions it issued before, and a pure Lamport counter would start again
at 1: its new writes would *lose* to its own pre-restart writes still cached
on peers (an invalidation older than the peer's copy drops nothing), so an
acknowledged write would be invisible.  With ``counter >= now_us`` a
restarted node issues versions above everything it issued before its
restart, given a non-decreasing wall clock and fewer than one write per
microsecond on average (a counter can run ahead of the wall clock only by
the number of writes issued within the same microseconds, or by observing a
peer whose clock runs ahead).  Versions stay ints of about 2**51 (JSON-safe).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MIN_VERSION", "HybridClock", "Version"]


@dataclass(frozen=True, slots=True, order=True)
class Version:
    """One write's version: ``(counter, node)``, totally ordered (rule 1)."""

    counter: int
    node: str

    def __post_init__(self) -> None:
        if not isinstance(self.counter, int) or isinstance(self.counter, bool):
            raise TypeError(f"version counter must be an int, not {self.counter!r}")
        if self.counter < 0:
            raise ValueError(f"version counter must be >= 0, not {self.counter}")
        if not isinstance(self.node, str):
            raise TypeError(f"version node must be a str, not {self.node!r}")

    def encode(self) -> str:
        """The wire and API form, ``"<counter>.<node>"`` (rule 2)."""
        return f"{self.counter}.{self.node}"

    @classmethod
    def decode(cls, text: str) -> Version:
        """Parse :meth:`encode`'s form; ``ValueError`` if malformed."""
        if not isinstance(text, str):
            raise ValueError(f"a version is a string, not {type(text).__name__}")
        counter, dot, node = text.partition(".")
        if not dot or not counter.isascii() or not counter.isdigit():
            raise ValueError(f"malformed version {text!r}")
        return cls(int(counter), node)

    def __str__(self) -> str:
        return self.encode()


MIN_VERSION = Version(0, "")
"""Below every version a clock issues (rule 1)."""


class HybridClock:
    """A Lamport clock that never runs below the wall clock (rules 3 and 4).

    ``floor`` (a counter) starts the clock above a known value, e.g. one
    persisted by the caller; by default the first tick is just ``now_us``.
    """

    __slots__ = ("_last", "node")

    def __init__(self, node: str, floor: int = 0) -> None:
        if not node:
            raise ValueError("a clock needs a non-empty node id")
        self.node = node
        self._last = floor

    @property
    def last(self) -> int:
        """The highest counter issued or observed so far."""
        return self._last

    def tick(self, now_us: int) -> Version:
        """A new version above every version issued or observed before."""
        self._last = max(self._last + 1, int(now_us))
        return Version(self._last, self.node)

    def observe(self, version: Version) -> None:
        """Raise the clock past ``version`` (seen in a message)."""
        if version.counter > self._last:
            self._last = version.counter

    def __repr__(self) -> str:
        return f"HybridClock({self.node!r}, last={self._last})"
