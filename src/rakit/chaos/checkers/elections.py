"""The election checker: one leader at a time, terms that only grow, observers that never go back.

Input: the ``elections`` ops — ``campaign`` (args ``name``,
``candidate_id``, ``ttl``, ``timeout``; an ok result carries ``leader`` and
``term``), ``renew`` (args ``name``, ``candidate_id``, ``ttl``), ``resign``
(args ``name``, ``candidate_id``) and ``observe`` (args ``name``,
``after_term``; an ok result ``leader``, ``term``, ``changed``).  An op is
``ok``, ``fail`` or ``info`` (may take effect at any time after invoke);
only what no such history explains is flagged.

1. **One leader.**  Leaderships are holds as in ``_leases`` rule 1: an ok
   campaign or renew starts one at its answer, ending at the earliest moment
   the lease may end (``invoke + ttl``) or when the candidate sent a resign,
   or a renew that was refused.  Two holds of one election by distinct
   candidates that overlap are a violation (a semaphore of one permit).
2. **Terms.**  For ok campaigns ``a``, ``b`` of one election with
   ``a.complete < b.invoke``, ``b``'s term is greater than ``a``'s, or equal
   only for the same candidate (campaigning again while leader).
3. **Observers.**  Each observer process's ok answers on one election, in
   the order it made them (one request at a time), never show a term below
   an earlier answer's term (nor none after one); and an answer with
   ``changed: true`` has an integer term greater than its ``after_term``.

Stats: ``<f>_<type>`` counts, ``leaderships`` (holds), ``elections``,
``observations``, ``campaigns_without_term`` and the violations per rule.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from rakit.chaos.checkers._common import Findings, count_types, fmt_op, result_of
from rakit.chaos.checkers._leases import END, EXTEND, GRANT, Hold, LeaseOp, check_capacity, check_tokens, holds_of
from rakit.chaos.history import Fault, Op, Verdict

DEFAULT_TTL = 10.0
EFFECTS = {"campaign": GRANT, "renew": EXTEND, "resign": END}

LEADERS = "two leaders"
TERMS = "terms"
OBSERVERS = "observer"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def parse_election_op(op: Op) -> LeaseOp | None:
    """The lease view of a campaign/renew/resign (None for other ops or ones lacking a name/candidate)."""
    effect = EFFECTS.get(op.f)
    if effect is None:
        return None
    result = result_of(op) if op.type == "ok" else {}
    name = op.args.get("name", result.get("name"))
    candidate = op.args.get("candidate_id", result.get("leader") if effect == GRANT else None)
    if name is None or candidate is None:
        return None
    ttls = [t for t in (_number(op.args.get("ttl")), _number(result.get("ttl"))) if t is not None]
    ttl = min(ttls) if ttls else (DEFAULT_TTL if effect == GRANT else 0.0)
    term = _int(result.get("term")) if effect == GRANT else None
    return LeaseOp(op, str(name), str(candidate), effect, ttl, term)


def check_observers(ops: Sequence[Op], findings: Findings) -> int:
    """Rule 3; returns how many ok observe answers there were."""
    seen: dict[tuple[int, str], tuple[int | None, Op]] = {}
    count = 0
    for op in sorted((o for o in ops if o.f == "observe" and o.type == "ok"), key=lambda o: o.invoke):
        count += 1
        result = result_of(op)
        name = str(op.args.get("name", result.get("name")))
        term, after = _int(result.get("term")), _int(op.args.get("after_term"))
        if result.get("changed") is True and (term is None or (after is not None and term <= after)):
            findings.add(OBSERVERS, f"{name}: changed with term {term} not above after_term {after}: {fmt_op(op)}")
        key = (op.process, name)
        if key in seen:
            before, earlier = seen[key]
            if before is not None and (term is None or term < before):
                findings.add(
                    OBSERVERS,
                    f"{name}: term went back from {before} to {term}: {fmt_op(op)} after {fmt_op(earlier)}",
                )
                continue  # judge later answers against the highest term seen
        seen[key] = (term, op)
    return count


def check_elections(ops: Sequence[Op], faults: Sequence[Fault] = ()) -> Verdict:
    """Check an elections history: one leader at a time, growing terms, observers never going back."""
    findings = Findings()
    parsed = [x for x in map(parse_election_op, ops) if x is not None]
    groups: dict[tuple[str, str], list[LeaseOp]] = defaultdict(list)
    for x in parsed:
        groups[(x.name, x.client)].append(x)
    holds_by_name: dict[str, list[Hold]] = defaultdict(list)
    for (name, _), group in groups.items():
        holds_by_name[name].extend(holds_of(group))
    for name, holds in holds_by_name.items():
        check_capacity(name, [Hold(h.since, h.start, h.end, 1) for h in holds], 1, LEADERS, findings)

    elected = [x for x in parsed if x.effect == GRANT and x.op.type == "ok"]
    terms_by_name: dict[str, list[LeaseOp]] = defaultdict(list)
    for a in elected:
        if a.token is not None:
            terms_by_name[a.name].append(a)
    for grants in terms_by_name.values():
        check_tokens(grants, TERMS, findings, word="term")

    observations = check_observers(ops, findings)
    stats: dict[str, Any] = count_types(ops, ("campaign", "renew", "resign", "observe"))
    stats.update(
        leaderships=sum(len(h) for h in holds_by_name.values()),
        elections=len({x.name for x in parsed}),
        observations=observations,
        campaigns_without_term=sum(1 for a in elected if a.token is None),
        two_leader_violations=findings.counts[LEADERS],
        term_violations=findings.counts[TERMS],
        observer_violations=findings.counts[OBSERVERS],
    )
    return Verdict("elections", findings.lines(), stats)
