"""Lease reasoning shared by the semaphore and election checkers (pure).

A *lease op* is one request of one client on one named object: a ``grant``
(acquire, campaign), an ``extend`` (renew) or an ``end`` (release, resign),
with the ttl it (re)starts and, for grants, the token it was answered.

1. **Holds.**  Each ok grant or extend ``A`` gives a hold
   ``[A.complete, end)``: it took effect at some ``g`` in
   ``[A.invoke, A.complete]`` and restarted the lease at full ttl, which
   nothing shortens (a new leader restarts leases at full ttl), so it lasts
   at least until ``A.invoke + ttl`` unless another request ``X`` of the same
   client on the same object (not a fail, and not one completed before ``A``
   was invoked) shortened or ended it.  ``X`` takes effect at some time
   ``>= max(X.invoke, A.invoke)``: a grant or extend restarts the lease at
   ``X.ttl`` there, an end ends it there.  An end or extend invoked after
   ``A`` ends the hold at its invoke even when it failed: the client stops
   using its hold when it sends a release, and a refused renew
   (``not_holder``) says the hold was already gone.  ``end`` is the minimum
   of these bounds, exactly as in the lock checker.
2. **Capacity.**  During its hold the server certainly counts the client as
   a holder, so at no instant may the holds of distinct clients on one
   object carry more than ``limit`` permits.  A client's own holds are
   merged first (one server-side holder, counted once).
3. **Tokens.**  For ok grants ``a``, ``b`` of one object with
   ``a.complete < b.invoke``, ``b`` was granted after ``a``: its token must be
   greater, or equal only when both are the same client.  A client answered
   a token it was answered before was re-granted idempotently (same token,
   maybe after grants to others with greater ones), so each (client, token)
   is judged once, by its earliest invoke and earliest complete.

Costs: holds per client use sorted invokes, suffix minima and a heap
(O(n log n)); capacity is one sweep per object; tokens sort by complete and
bisect each invoke into prefix summaries.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

from rakit.chaos.checkers._common import INF, Findings, fmt_op, fmt_span, suffix_min
from rakit.chaos.history import Op

GRANT, EXTEND, END = "grant", "extend", "end"
MAX_LISTED = 6  # holders named in one capacity violation


@dataclass(frozen=True, slots=True)
class LeaseOp:
    """One grant/extend/end of ``client`` on ``name``, with the ttl it restarts and its token."""

    op: Op
    name: str
    client: str
    effect: str  # GRANT | EXTEND | END
    ttl: float
    token: int | None = None
    permits: int = 1

    def describe(self) -> str:
        permits = self.permits if self.effect == GRANT and self.permits != 1 else None
        return fmt_op(self.op, name=self.name, client=self.client, permits=permits, token=self.token)


@dataclass(frozen=True, slots=True)
class Hold:
    """The time ``[start, end)`` during which ``since``'s client certainly held ``permits``."""

    since: LeaseOp
    start: float
    end: float
    permits: int

    @property
    def client(self) -> str:
        return self.since.client

    def describe(self) -> str:
        return f"hold {fmt_span(self.start, self.end)} from {self.since.describe()}"


def _lease_after(x: LeaseOp) -> float:
    """How long after it takes effect ``x`` lets its client's hold last at least."""
    return x.ttl if x.effect != END and x.op.type != "fail" else 0.0


def _pending_minima(starters: list[LeaseOp], live: list[LeaseOp]) -> list[float]:
    """For each starter A (sorted by invoke): the least ``_lease_after`` of a request invoked
    before A that may still take effect after A was invoked (info, or ok completing after A.invoke)."""
    out: list[float] = []
    heap: list[tuple[float, float]] = []  # (lease after, may take effect until)
    i = 0
    for a in starters:
        while i < len(live) and live[i].op.invoke < a.op.invoke:
            x = live[i]
            heapq.heappush(heap, (_lease_after(x), INF if x.op.type == "info" else x.op.complete))
            i += 1
        while heap and heap[0][1] <= a.op.invoke:
            heapq.heappop(heap)
        out.append(heap[0][0] if heap else INF)
    return out


def holds_of(group: Sequence[LeaseOp]) -> list[Hold]:
    """The non-empty holds of one ``(name, client)``, merged where they overlap (rules 1 and 2)."""
    live = sorted((x for x in group if x.op.type != "fail"), key=lambda x: x.op.invoke)
    enders = sorted((x for x in group if x.op.type != "fail" or x.effect != GRANT), key=lambda x: x.op.invoke)
    invokes = [x.op.invoke for x in enders]
    later = suffix_min([x.op.invoke + _lease_after(x) for x in enders])
    starters = [x for x in live if x.op.type == "ok" and x.effect != END]
    grants = [x.permits for x in live if x.effect == GRANT]
    permits = min(grants) if grants else 1
    raw: list[Hold] = []
    for a, lease in zip(starters, _pending_minima(starters, live), strict=True):
        end = min(a.op.invoke + a.ttl, later[bisect_left(invokes, a.op.invoke)][0], a.op.invoke + lease)
        if end > a.op.complete:
            raw.append(Hold(a, a.op.complete, end, permits))
    merged: list[Hold] = []
    for hold in sorted(raw, key=lambda h: h.start):
        if merged and hold.start <= merged[-1].end:
            last = merged[-1]
            merged[-1] = Hold(last.since, last.start, max(last.end, hold.end), permits)
        else:
            merged.append(hold)
    return merged


def check_capacity(name: str, holds: Sequence[Hold], limit: int, kind: str, findings: Findings) -> int:
    """Rule 2 on the (per-client merged) holds of one object; returns the most permits held at once."""
    events = sorted(
        [(h.end, 0, i) for i, h in enumerate(holds)] + [(h.start, 1, i) for i, h in enumerate(holds)]
    )  # ends before starts at one instant: holds are half-open
    active: dict[int, Hold] = {}
    held = peak = 0
    for _, is_start, i in events:
        hold = holds[i]
        if not is_start:
            held -= active.pop(i).permits
            continue
        active[i] = hold
        held += hold.permits
        peak = max(peak, held)
        if held > limit:
            others = [h for j, h in active.items() if j != i][:MAX_LISTED]
            listed = "; ".join(h.describe() for h in others)
            findings.add(
                kind,
                f"{name}: {held} > limit {limit} permits held at {hold.start:.3f}: {hold.describe()} while {listed}",
            )
    return peak


@dataclass(frozen=True, slots=True)
class _Grant:
    """The grants of one token to one client: the first took effect after ``invoke``, by ``complete``."""

    first: LeaseOp  # the one invoked first, to name in findings
    token: int
    invoke: float  # the earliest invoke among them
    complete: float  # the earliest complete among them


def _grants(acquires: Sequence[LeaseOp]) -> list[_Grant]:
    by_token: dict[tuple[str, int], list[LeaseOp]] = {}
    for a in acquires:
        assert a.token is not None
        by_token.setdefault((a.client, a.token), []).append(a)
    out = []
    for (_, token), group in by_token.items():
        first = min(group, key=lambda a: a.op.invoke)
        out.append(_Grant(first, token, first.op.invoke, min(a.op.complete for a in group)))
    return out


@dataclass(frozen=True, slots=True)
class _TopToken:
    """The highest token among the grants completed so far, and up to two distinct clients answered it."""

    top: _Grant
    clients: tuple[_Grant, ...]

    def extend(self, g: _Grant) -> _TopToken:
        if g.token > self.top.token:
            return _TopToken(g, (g,))
        if g.token < self.top.token or len(self.clients) >= 2:
            return self
        return _TopToken(self.top, (*self.clients, g))


def check_tokens(acquires: Sequence[LeaseOp], kind: str, findings: Findings, word: str = "token") -> None:
    """Rule 3 on the ok grants (with tokens) of one object.

    A client answered the same token again was re-granted idempotently, maybe
    after grants to others with greater tokens: so each (client, token) is
    judged once, as its first grant, against the grants completed before the
    earliest invoke among those answers.
    """
    grants = _grants(acquires)
    by_complete = sorted(grants, key=lambda g: g.complete)
    completes = [g.complete for g in by_complete]
    prefixes: list[_TopToken | None] = [None]
    for g in by_complete:
        last = prefixes[-1]
        prefixes.append(_TopToken(g, (g,)) if last is None else last.extend(g))
    for b in grants:
        prefix = prefixes[bisect_left(completes, b.invoke)]
        if prefix is None:
            continue
        if b.token < prefix.top.token:
            findings.add(kind, f"{word} went backwards: {b.first.describe()} after {prefix.top.first.describe()}")
        elif b.token == prefix.top.token:
            other = next((g for g in prefix.clients if g.first.client != b.first.client), None)
            if other is not None:
                findings.add(kind, f"{word} repeated: {b.first.describe()} after {other.first.describe()}")
