"""The lock checker: mutual exclusion, fencing tokens, and no grant from a minority.

Input: the ``locks`` ops — ``acquire`` (args ``resource``, ``client_id``,
``mode``, ``ttl``, ``timeout``; an ok result carries ``fencing_token`` and
``ttl``) and ``release`` (args ``resource``, ``client_id``) — and the faults.
An op is ``ok`` (happened between invoke and complete), ``fail`` (never
happened) or ``info`` (may take effect at any time after invoke, even after
complete).  Every rule below only flags what no such history could explain.

1. **Mutual exclusion.**  Each ok acquire ``A`` of client ``c`` on resource
   ``r`` gives a *hold* ``[A.complete, end)``: the client knows it holds the
   lock from the answer on, and it stops using it at the earliest moment the
   lease may end.  The grant was applied at some ``g`` in
   ``[A.invoke, A.complete]`` with a lease of ``ttl`` that is never cut short
   (a new leader restarts it at full ttl), so the lease lasts at least until
   ``A.invoke + ttl``, unless another request of the same ``(r, c)`` ended or
   shortened it.  Such a request ``X`` (any type but fail, and not one that
   completed before ``A`` was invoked) takes effect at some time
   ``>= max(X.invoke, A.invoke)``; a release ends the hold there, a
   re-acquire in the same mode restarts the lease at its own ttl (so the hold
   lasts at least ``max(X.invoke, A.invoke) + X.ttl``), a request in the
   other mode may change the mode there.  A release invoked after ``A`` ends
   the hold at its invoke whatever its outcome, even fail: the client stops
   using the lock when it sends the release.  ``end`` is the minimum of all
   these bounds, which for the usual "acquire, then release" of a fresh
   client id is ``min(A.invoke + ttl, release.invoke)``.  During its hold the
   client uses the lock and the server certainly counts it as a holder in
   that mode, so two holds of one resource by different clients that overlap
   (``a.start < b.end`` and ``b.start < a.end``), one of them exclusive, are a
   violation.  Shared with shared is fine.
2. **Fencing tokens.**  For ok acquires ``a``, ``b`` of one resource with
   ``a.complete < b.invoke``, ``b`` was granted after ``a``, so its token must
   be greater: a smaller one is reported as going *backwards*, an equal one as
   *repeated* — except when both are shared (shared holders granted together
   share a token) or both have the same client and mode (an idempotent
   re-acquire returns the same token).
3. **No grant from a minority.**  An ok acquire answered by a node in a
   fault's ``minority`` and made entirely while the fault was in place
   (``fault.start <= invoke`` and ``complete <= fault.end``) was granted by a
   node that could not reach a majority for the whole request, so it could
   not have committed the grant.

Each rule costs O(n log n): holds per ``(resource, client)`` use sorted
invokes, suffix minima and a heap; exclusion sweeps each resource's holds by
start keeping the two latest-ending holds of distinct clients; fencing sorts
by complete and bisects each invoke into prefix summaries; the minority rule
bisects each fault's interval into acquires sorted by invoke.

Stats: ``<f>_<type>`` counts (``acquire_ok``, ``release_info``, ...),
``holds``, ``resources``, ``minority_grants``,
``majority_grants_during_partitions`` (ok acquires made entirely inside a
fault with a minority, answered by a node outside it), ``partition_seconds``
(time covered by such faults, overlaps merged), ``majority_grant_rate``
(those grants per partition second, 0 if none), ``acquires_without_token``
(ok acquires whose answer had no integer token, left out of rule 2) and
``mutual_exclusion_violations`` and ``fencing_violations``.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rakit.chaos.checkers._common import (
    INF,
    Findings,
    count_types,
    fmt_op,
    fmt_span,
    merged_length,
    partition_faults,
    result_of,
    suffix_min,
)
from rakit.chaos.history import Fault, Op, Verdict

DEFAULT_TTL = 30.0
EXCLUSIVE, SHARED = "exclusive", "shared"
MODES = (EXCLUSIVE, SHARED)

MUTEX = "mutual exclusion"
FENCING = "fencing"
MINORITY = "minority grant"


@dataclass(frozen=True, slots=True)
class LockOp:
    """An acquire or release, with its resource, client, mode, ttl and (ok acquires) token."""

    op: Op
    resource: str
    client: str
    mode: str
    ttl: float
    token: int | None

    @property
    def is_acquire(self) -> bool:
        return self.op.f == "acquire"

    def describe(self) -> str:
        mode = self.mode if self.is_acquire else None
        return fmt_op(self.op, resource=self.resource, client=self.client, mode=mode, token=self.token)


@dataclass(frozen=True, slots=True)
class Hold:
    """The time ``[start, end)`` during which ``acquire``'s client certainly held the lock."""

    acquire: LockOp
    start: float
    end: float

    @property
    def client(self) -> str:
        return self.acquire.client

    @property
    def exclusive(self) -> bool:
        return self.acquire.mode == EXCLUSIVE

    def describe(self) -> str:
        return f"hold {fmt_span(self.start, self.end)} from {self.acquire.describe()}"


def parse_lock_op(op: Op) -> LockOp | None:
    """The lock view of an acquire/release op (None for other ops or ones lacking a resource/client)."""
    if op.f not in ("acquire", "release"):
        return None
    result = result_of(op) if op.type == "ok" else {}
    resource = op.args.get("resource", result.get("resource"))
    client = op.args.get("client_id", result.get("client_id"))
    if resource is None or client is None:
        return None
    mode = str(result.get("mode") or op.args.get("mode") or EXCLUSIVE)
    ttls = [float(t) for t in (op.args.get("ttl"), result.get("ttl")) if t is not None and _is_number(t)]
    ttl = min(ttls) if ttls else DEFAULT_TTL
    token = result.get("fencing_token")
    token = token if isinstance(token, int) and not isinstance(token, bool) else None
    return LockOp(op, str(resource), str(client), mode, ttl, token)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _lease_after(x: LockOp, mode: str) -> float:
    """How long after it takes effect ``x`` lets a hold in ``mode`` of its client last at least."""
    return x.ttl if x.is_acquire and x.mode == mode else 0.0


def _pending_minima(acquires: list[LockOp], live: list[LockOp], mode: str) -> list[float]:
    """For each acquire A (sorted by invoke): the least ``_lease_after`` of a request X invoked
    before A that may still take effect after A was invoked (info, or ok completing after A.invoke)."""
    out: list[float] = []
    heap: list[tuple[float, float]] = []  # (lease after, may take effect until)
    i = 0
    for a in acquires:
        while i < len(live) and live[i].op.invoke < a.op.invoke:
            x = live[i]
            until = INF if x.op.type == "info" else x.op.complete
            heapq.heappush(heap, (_lease_after(x, mode), until))
            i += 1
        while heap and heap[0][1] <= a.op.invoke:
            heapq.heappop(heap)
        out.append(heap[0][0] if heap else INF)
    return out


def holds_of(group: Sequence[LockOp]) -> list[Hold]:
    """The non-empty holds of one ``(resource, client)`` (see rule 1 of the module docstring)."""
    live = sorted((x for x in group if x.op.type != "fail"), key=lambda x: x.op.invoke)
    # a release of any type invoked after the acquire ends the hold: the client stops using the lock
    enders = sorted((x for x in group if x.op.type != "fail" or not x.is_acquire), key=lambda x: x.op.invoke)
    invokes = [x.op.invoke for x in enders]
    holds: list[Hold] = []
    for mode in MODES:
        acquires = [x for x in live if x.is_acquire and x.op.type == "ok" and x.mode == mode]
        if not acquires:
            continue
        later = suffix_min([x.op.invoke + _lease_after(x, mode) for x in enders])
        earlier = _pending_minima(acquires, live, mode)
        for a, lease in zip(acquires, earlier, strict=True):
            end = min(a.op.invoke + a.ttl, later[bisect_left(invokes, a.op.invoke)][0], a.op.invoke + lease)
            if end > a.op.complete:
                holds.append(Hold(a, a.op.complete, end))
    return holds


class _LatestEnds:
    """The latest-ending hold of each of the (at most) two clients whose holds end last."""

    def __init__(self) -> None:
        self.top: list[Hold] = []

    def add(self, hold: Hold) -> None:
        for i, other in enumerate(self.top):
            if other.client == hold.client:
                if hold.end > other.end:
                    self.top[i] = hold
                break
        else:
            self.top.append(hold)
        self.top.sort(key=lambda h: h.end, reverse=True)
        del self.top[2:]

    def overlapping(self, hold: Hold) -> Hold | None:
        """A hold of another client, started no later than ``hold``, that is still on at its start."""
        for other in self.top:
            if other.client != hold.client:
                return other if other.end > hold.start else None
        return None


def check_mutual_exclusion(holds: Sequence[Hold], findings: Findings) -> None:
    """Rule 1 on the holds of one resource: a sweep by start time."""
    any_mode, exclusive = _LatestEnds(), _LatestEnds()
    for hold in sorted(holds, key=lambda h: h.start):
        other = (any_mode if hold.exclusive else exclusive).overlapping(hold)
        if other is not None:
            findings.add(MUTEX, f"resource {hold.acquire.resource}: {other.describe()} overlaps {hold.describe()}")
        any_mode.add(hold)
        if hold.exclusive:
            exclusive.add(hold)


@dataclass(frozen=True, slots=True)
class _TokenPrefix:
    """What matters about the highest token among the acquires completed so far."""

    top: LockOp
    shared: LockOp | None  # a shared acquire with the top token
    exclusive: tuple[LockOp, ...]  # exclusive acquires with the top token, of at most two distinct clients

    def extend(self, a: LockOp) -> _TokenPrefix:
        assert a.token is not None and self.top.token is not None
        if a.token > self.top.token:
            return _TokenPrefix.of(a)
        if a.token < self.top.token:
            return self
        if a.mode != EXCLUSIVE:
            return self if self.shared else _TokenPrefix(self.top, a, self.exclusive)
        if len(self.exclusive) >= 2 or any(x.client == a.client for x in self.exclusive):
            return self
        return _TokenPrefix(self.top, self.shared, (*self.exclusive, a))

    @classmethod
    def of(cls, a: LockOp) -> _TokenPrefix:
        if a.mode == EXCLUSIVE:
            return cls(a, None, (a,))
        return cls(a, a, ())

    def repeated_by(self, b: LockOp) -> LockOp | None:
        """An acquire with the top token that ``b`` may not share it with, if any."""
        if b.mode != EXCLUSIVE:
            return self.exclusive[0] if self.exclusive else None
        if self.shared is not None:
            return self.shared
        return next((x for x in self.exclusive if x.client != b.client), None)


def check_fencing(acquires: Sequence[LockOp], findings: Findings) -> None:
    """Rule 2 on the ok acquires (with tokens) of one resource."""
    by_complete = sorted(acquires, key=lambda a: a.op.complete)
    completes = [a.op.complete for a in by_complete]
    prefixes: list[_TokenPrefix | None] = [None]
    for a in by_complete:
        last = prefixes[-1]
        prefixes.append(_TokenPrefix.of(a) if last is None else last.extend(a))
    for b in acquires:
        prefix = prefixes[bisect_left(completes, b.op.invoke)]
        if prefix is None:
            continue
        assert b.token is not None and prefix.top.token is not None
        if b.token < prefix.top.token:
            findings.add(FENCING, f"token went backwards: {b.describe()} after {prefix.top.describe()}")
        elif b.token == prefix.top.token and (earlier := prefix.repeated_by(b)) is not None:
            findings.add(FENCING, f"token repeated: {b.describe()} after {earlier.describe()}")


def check_minority(acquires: Sequence[LockOp], faults: Sequence[Fault], findings: Findings) -> int:
    """Rule 3; returns how many ok acquires made inside a partition were granted by majority nodes."""
    by_invoke = sorted(acquires, key=lambda a: a.op.invoke)
    invokes = [a.op.invoke for a in by_invoke]
    minority_ids: set[int] = set()
    majority_ids: set[int] = set()
    for fault in partition_faults(faults):
        i = bisect_left(invokes, fault.start)
        while i < len(by_invoke) and by_invoke[i].op.invoke <= fault.end:
            a = by_invoke[i]
            if a.op.complete <= fault.end and a.op.node not in fault.minority:
                majority_ids.add(i)
            elif a.op.complete <= fault.end and i not in minority_ids:
                minority_ids.add(i)
                findings.add(
                    MINORITY,
                    f"{a.describe()} granted by node {a.op.node} on the minority side of "
                    f"{fault.nemesis} {fmt_span(fault.start, fault.end)} (minority {','.join(fault.minority)})",
                )
            i += 1
    return len(majority_ids - minority_ids)


def check_locks(ops: Sequence[Op], faults: Sequence[Fault] = ()) -> Verdict:
    """Check a locks history: mutual exclusion, fencing tokens, no grant from a minority."""
    findings = Findings()
    parsed = [x for x in map(parse_lock_op, ops) if x is not None]
    groups: dict[tuple[str, str], list[LockOp]] = defaultdict(list)
    for x in parsed:
        groups[(x.resource, x.client)].append(x)
    holds_by_resource: dict[str, list[Hold]] = defaultdict(list)
    for (resource, _), group in groups.items():
        holds_by_resource[resource].extend(holds_of(group))
    for holds in holds_by_resource.values():
        check_mutual_exclusion(holds, findings)

    granted = [x for x in parsed if x.is_acquire and x.op.type == "ok"]
    tokens_by_resource: dict[str, list[LockOp]] = defaultdict(list)
    for a in granted:
        if a.token is not None:
            tokens_by_resource[a.resource].append(a)
    for acquires in tokens_by_resource.values():
        check_fencing(acquires, findings)

    majority_grants = check_minority(granted, faults, findings)
    partition_seconds = merged_length((f.start, f.end) for f in partition_faults(faults))
    stats: dict[str, Any] = count_types(ops, ("acquire", "release"))
    stats.update(
        holds=sum(len(h) for h in holds_by_resource.values()),
        resources=len({x.resource for x in parsed}),
        acquires_without_token=sum(1 for a in granted if a.token is None),
        minority_grants=findings.counts[MINORITY],
        majority_grants_during_partitions=majority_grants,
        partition_seconds=round(partition_seconds, 6),
        majority_grant_rate=round(majority_grants / partition_seconds, 6) if partition_seconds > 0 else 0.0,
        mutual_exclusion_violations=findings.counts[MUTEX],
        fencing_violations=findings.counts[FENCING],
    )
    return Verdict("locks", findings.lines(), stats)
