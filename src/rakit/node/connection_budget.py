"""How many connections a node takes, from whom, and how long idle ones may stay.

A pure rule book (no sockets, no clocks: the caller passes the time): the
HTTP protocol asks it at every new connection (``admit``), tells it when one
closes (``release``) and when a trial connection carried a reserved request
(``prove``), closes the connections it evicts (``take_evicted``), and asks it
which timeouts apply (``head_timeout``, ``idle_timeout``).  Rules:

1. **Client key.**  A connection counts against its client: an IPv4 address
   as it is, an IPv6 address by its /64 (one host commonly holds a whole
   /64), an IPv4-mapped IPv6 address as its IPv4 address; no address (a Unix
   socket) is the key ``""``.
2. **General pool.**  A new connection is admitted *open* while fewer than
   ``total - reserve`` connections are open and its client holds fewer than
   ``per_client`` of them.
3. **Reserve.**  Otherwise it is admitted *on trial*, into the reserve,
   while fewer than ``reserve`` trial connections are open and its client
   holds fewer than ``reserve_per_client`` of them.  A trial connection
   serves only reserved requests (``serves``): a peer's (signed headers) or
   ``GET /health``; the protocol answers any other ``503`` and closes it.  So
   a flood that fills the general pool leaves room for peers and health
   checks, and one address never holds more than ``reserve_per_client`` of
   that room.  When the reserve (or the client's share of it) is full, a new
   connection takes the place of the oldest trial connection that has not
   carried a reserved request yet and has been open at least
   ``trial_grace`` seconds (one of the same client's, when its share is
   full): that one is evicted (the protocol closes it).  So silent
   connections, from however many addresses, cannot hold the reserve
   against peers and health checks, whose first request comes at once.
4. **Shedding.**  Otherwise the new connection is shed: answered ``503
   unavailable`` with ``Retry-After`` and closed (a ``shed`` ticket), while
   fewer than ``max_shedding`` shed connections are still closing; beyond
   that it is closed at once (``admit`` returns None).  Connections already
   admitted are never shed: only new ones are refused.
5. **Exact accounting.**  Every ticket is released once, whichever way its
   connection ends (a second ``release`` of a ticket changes nothing); the
   counts are then what is open, and a client with no connection left is
   forgotten (the table holds only clients with connections).
6. **Pressure.**  The node is under pressure while more than
   ``pressure_at`` connections (open and trial; 3/4 of ``total``) are in
   use.  Under pressure, and always on a trial connection, the first-byte and
   head timeout is at most ``pressure_head_timeout`` and the keep-alive idle
   timeout at most ``pressure_idle_timeout``.  ``onsets`` counts the times
   pressure began, so the protocol can shorten the timers of connections
   that were waiting before (idle ones are reclaimed within a second, not
   after their 30 s).
7. **Limits.**  ``Limits.of(total, per_client)``: ``reserve`` is a tenth of
   the total, ``reserve_per_client`` an eighth of the reserve (at least 1),
   ``max_shedding`` a tenth of the total (at least 1), ``trial_grace`` half
   a second (time for a TLS handshake and a request over a slow link).  Both
   caps must be positive.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final

OPEN: Final = "open"
TRIAL: Final = "trial"
SHED: Final = "shed"

PRESSURE_HEAD_TIMEOUT = 2.0
PRESSURE_IDLE_TIMEOUT = 1.0
TRIAL_GRACE = 0.5


@dataclass(frozen=True, slots=True)
class Limits:
    total: int
    per_client: int
    reserve: int
    reserve_per_client: int
    max_shedding: int
    pressure_at: int
    pressure_head_timeout: float = PRESSURE_HEAD_TIMEOUT
    pressure_idle_timeout: float = PRESSURE_IDLE_TIMEOUT
    trial_grace: float = TRIAL_GRACE

    @classmethod
    def of(cls, total: int, per_client: int) -> Limits:
        """The limits for ``total`` connections, ``per_client`` of them per client (rule 7)."""
        if total < 1 or per_client < 1:
            raise ValueError(f"connection caps must be positive (total {total}, per client {per_client})")
        reserve = total // 10
        return cls(
            total=total,
            per_client=per_client,
            reserve=reserve,
            reserve_per_client=max(1, reserve // 8),
            max_shedding=max(1, total // 10),
            pressure_at=total * 3 // 4,
        )


class Ticket:
    """One admitted (or shed) connection: its client key and its kind (``OPEN``, ``TRIAL``, ``SHED``)."""

    __slots__ = ("key", "kind", "released", "since")

    def __init__(self, key: str, kind: str, since: float = 0.0) -> None:
        self.key = key
        self.kind = kind
        self.released = False
        self.since = since  # when it was admitted (the caller's clock)

    def __repr__(self) -> str:
        return f"Ticket({self.key!r}, {self.kind}{', released' if self.released else ''})"


def client_key(host: str | None) -> str:
    """The key a client's connections count against (rule 1)."""
    if not host:
        return ""
    if ":" not in host:
        return host  # IPv4 (or a name): as it is
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return f"{ipaddress.IPv6Address(int(address) >> 64 << 64)}/64"


class ConnectionBudget:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.open = 0
        self.trial = 0
        self.shedding = 0
        self._open_by: dict[str, int] = {}
        self._trial_by: dict[str, int] = {}
        self._unproven: dict[Ticket, None] = {}  # trial tickets with no reserved request yet, oldest first
        self._evicted: list[Ticket] = []
        self.pressed = False
        self.onsets = 0

    @property
    def in_use(self) -> int:
        return self.open + self.trial

    def held(self, key: str) -> tuple[int, int]:
        """(open, trial) connections of the client ``key``."""
        return self._open_by.get(key, 0), self._trial_by.get(key, 0)

    def clients(self) -> int:
        """How many clients hold connections."""
        return len(self._open_by.keys() | self._trial_by.keys())

    def admit(self, key: str, now: float = 0.0) -> Ticket | None:
        """The ticket of a new connection from ``key`` at ``now`` (rules 2-4); None: close it at once."""
        limits = self.limits
        held = self._open_by.get(key, 0)
        if self.open < limits.total - limits.reserve and held < limits.per_client:
            self.open += 1
            self._open_by[key] = held + 1
            self._update_pressure()
            return Ticket(key, OPEN, now)
        if limits.reserve > 0:
            own_full = self._trial_by.get(key, 0) >= limits.reserve_per_client
            if own_full or self.trial >= limits.reserve:
                self._evict(key if own_full else None, now)
            held = self._trial_by.get(key, 0)
            if self.trial < limits.reserve and held < limits.reserve_per_client:
                self.trial += 1
                self._trial_by[key] = held + 1
                ticket = Ticket(key, TRIAL, now)
                self._unproven[ticket] = None
                self._update_pressure()
                return ticket
        if self.shedding < limits.max_shedding:
            self.shedding += 1
            return Ticket(key, SHED, now)
        return None

    def _evict(self, key: str | None, now: float) -> None:
        """Make room in the reserve: the oldest unproven trial ticket past its grace (of ``key``, if given)."""
        oldest = now - self.limits.trial_grace
        for ticket in self._unproven:
            if ticket.since > oldest:
                return  # the rest are younger still
            if key is None or ticket.key == key:
                self.release(ticket)
                self._evicted.append(ticket)
                return

    def take_evicted(self) -> list[Ticket]:
        """The tickets evicted since the last call: their connections are to be closed."""
        evicted, self._evicted = self._evicted, []
        return evicted

    def prove(self, ticket: Ticket) -> None:
        """The trial connection carried a reserved request: it is no longer evicted for a newcomer."""
        self._unproven.pop(ticket, None)

    def release(self, ticket: Ticket) -> None:
        """The ticket's connection is closed (rule 5: once; again changes nothing)."""
        if ticket.released:
            return
        ticket.released = True
        if ticket.kind == SHED:
            self.shedding -= 1
            return
        counts = self._open_by if ticket.kind == OPEN else self._trial_by
        left = counts[ticket.key] - 1
        if left:
            counts[ticket.key] = left
        else:
            del counts[ticket.key]
        if ticket.kind == OPEN:
            self.open -= 1
        else:
            self.trial -= 1
            self._unproven.pop(ticket, None)
        self._update_pressure()

    def _update_pressure(self) -> None:
        pressed = self.open + self.trial > self.limits.pressure_at
        if pressed and not self.pressed:
            self.onsets += 1
        self.pressed = pressed

    @staticmethod
    def serves(ticket: Ticket, reserved: bool) -> bool:
        """May this connection carry this request (rule 3: a trial connection only a reserved one)?"""
        return ticket.kind != TRIAL or reserved

    def head_timeout(self, ticket: Ticket, normal: float) -> float:
        """Seconds a connection has for its first byte and a request for its head (rule 6)."""
        if self.pressed or ticket.kind == TRIAL:
            return min(normal, self.limits.pressure_head_timeout)
        return normal

    def idle_timeout(self, ticket: Ticket, normal: float) -> float:
        """Seconds an idle keep-alive connection stays open (rule 6)."""
        if self.pressed or ticket.kind == TRIAL:
            return min(normal, self.limits.pressure_idle_timeout)
        return normal
