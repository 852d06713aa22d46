"""The semaphore checker: never more than ``limit`` permits held, tokens that only grow, sane snapshots.

Input: the ``semaphores`` ops — ``acquire`` (args ``name``, ``client_id``,
``limit``, ``permits``, ``ttl``, ``timeout``; an ok result carries
``permits``, ``limit``, ``available`` and ``fencing_token``), ``renew``
(args ``name``, ``client_id``, ``ttl``; an ok result ``ttl``), ``release``
(args ``name``, ``client_id``) and ``status`` (args ``name``; an ok result is
the ``GET /semaphore/status/{name}`` answer).  An op is ``ok``, ``fail`` or
``info`` (may take effect at any time after invoke); only what no such
history explains is flagged.

1. **Capacity.**  Holds are derived as in ``_leases`` rule 1: an ok acquire
   or renew starts one at its answer, ending at the earliest moment the lease
   may end (``invoke + ttl``, measured from the invoke, before the leader
   could have started it) or when the client sent a release, or a renew that
   was refused.  At no instant may the holds of distinct clients of one
   semaphore carry more than its ``limit`` permits.  The limit is the
   greatest one any ok acquire was answered (or asked, when none said).
2. **Fencing.**  For ok acquires ``a``, ``b`` of one semaphore with
   ``a.complete < b.invoke``, ``b``'s token is greater than ``a``'s, or equal
   only for the same client (an idempotent re-acquire).
3. **Snapshots.**  An ok status answer with a ``limit`` has
   ``sum(holders.permits) <= limit`` and ``available == limit - sum``; one
   without a limit (unused name) has no holders.  An ok acquire answer has
   ``0 <= available <= limit - permits`` (the grant's own permits are taken).

Stats: ``<f>_<type>`` counts, ``holds``, ``semaphores``, ``peak_permits``
(most permits held at once by certain holds, over all semaphores),
``snapshots``, ``acquires_without_token`` and the violations per rule.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from rakit.chaos.checkers._common import Findings, count_types, fmt_op, result_of
from rakit.chaos.checkers._leases import END, EXTEND, GRANT, Hold, LeaseOp, check_capacity, check_tokens, holds_of
from rakit.chaos.history import Fault, Op, Verdict

DEFAULT_TTL = 30.0
EFFECTS = {"acquire": GRANT, "renew": EXTEND, "release": END}

CAPACITY = "capacity"
FENCING = "fencing"
SNAPSHOT = "snapshot"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def parse_semaphore_op(op: Op) -> LeaseOp | None:
    """The lease view of an acquire/renew/release (None for other ops or ones lacking a name/client)."""
    effect = EFFECTS.get(op.f)
    if effect is None:
        return None
    result = result_of(op) if op.type == "ok" else {}
    name, client = op.args.get("name", result.get("name")), op.args.get("client_id", result.get("client_id"))
    if name is None or client is None:
        return None
    ttls = [t for t in (_number(op.args.get("ttl")), _number(result.get("ttl"))) if t is not None]
    # a renew that names no ttl keeps one we cannot know: it is taken to extend nothing
    ttl = min(ttls) if ttls else (DEFAULT_TTL if effect == GRANT else 0.0)
    permits = _int(result.get("permits")) or _int(op.args.get("permits")) or 1
    token = _int(result.get("fencing_token")) if effect == GRANT else None
    return LeaseOp(op, str(name), str(client), effect, ttl, token, permits)


def limits_of(ops: Sequence[Op]) -> dict[str, int]:
    """Each semaphore's limit: the greatest answered by an ok acquire, else the greatest asked."""
    answered: dict[str, int] = {}
    asked: dict[str, int] = {}
    for op in ops:
        if op.f != "acquire" or "name" not in op.args:
            continue
        name = str(op.args["name"])
        if op.type == "ok" and (limit := _int(result_of(op).get("limit"))) is not None:
            answered[name] = max(limit, answered.get(name, limit))
        if (limit := _int(op.args.get("limit"))) is not None:
            asked[name] = max(limit, asked.get(name, limit))
    return {**asked, **answered}


def check_snapshot(op: Op, findings: Findings) -> None:
    """Rule 3 on one ok status or acquire answer."""
    result = result_of(op)
    limit = _int(result.get("limit"))
    if op.f == "acquire":
        available, permits = _int(result.get("available")), _int(result.get("permits"))
        if limit is not None and available is not None and permits is not None:
            if not 0 <= available <= limit - permits:
                findings.add(
                    SNAPSHOT, f"grant left available={available} of limit {limit} after {permits}: {fmt_op(op)}"
                )
        return
    holders = result.get("holders")
    holders = holders if isinstance(holders, list) else []
    held = sum(_int(h.get("permits")) or 0 for h in holders if isinstance(h, dict))
    name = op.args.get("name", result.get("name"))
    if limit is None:
        if holders:
            findings.add(SNAPSHOT, f"{name}: {len(holders)} holders of a semaphore without a limit: {fmt_op(op)}")
        return
    if held > limit:
        findings.add(SNAPSHOT, f"{name}: holders hold {held} > limit {limit}: {fmt_op(op)}")
    if result.get("available") != limit - held:
        findings.add(
            SNAPSHOT,
            f"{name}: available={result.get('available')} but limit {limit} - held {held} = {limit - held}: "
            f"{fmt_op(op)}",
        )


def check_semaphores(ops: Sequence[Op], faults: Sequence[Fault] = ()) -> Verdict:
    """Check a semaphores history: capacity, fencing tokens, status snapshots."""
    findings = Findings()
    parsed = [x for x in map(parse_semaphore_op, ops) if x is not None]
    groups: dict[tuple[str, str], list[LeaseOp]] = defaultdict(list)
    for x in parsed:
        groups[(x.name, x.client)].append(x)
    holds_by_name: dict[str, list[Hold]] = defaultdict(list)
    for (name, _), group in groups.items():
        holds_by_name[name].extend(holds_of(group))
    limits = limits_of(ops)
    peak = 0
    for name, holds in holds_by_name.items():
        if name in limits:
            peak = max(peak, check_capacity(name, holds, limits[name], CAPACITY, findings))

    granted = [x for x in parsed if x.effect == GRANT and x.op.type == "ok"]
    tokens_by_name: dict[str, list[LeaseOp]] = defaultdict(list)
    for a in granted:
        if a.token is not None:
            tokens_by_name[a.name].append(a)
    for grants in tokens_by_name.values():
        check_tokens(grants, FENCING, findings)

    snapshots = [op for op in ops if op.type == "ok" and op.f in ("status", "acquire")]
    for op in snapshots:
        check_snapshot(op, findings)

    stats: dict[str, Any] = count_types(ops, ("acquire", "renew", "release", "status"))
    stats.update(
        holds=sum(len(h) for h in holds_by_name.values()),
        semaphores=len({x.name for x in parsed}),
        peak_permits=peak,
        snapshots=sum(1 for op in snapshots if op.f == "status"),
        acquires_without_token=sum(1 for a in granted if a.token is None),
        capacity_violations=findings.counts[CAPACITY],
        fencing_violations=findings.counts[FENCING],
        snapshot_violations=findings.counts[SNAPSHOT],
    )
    return Verdict("semaphores", findings.lines(), stats)
