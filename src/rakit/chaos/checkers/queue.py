"""The queue checker: no loss, no phantom or corrupt delivery, first deliveries in push order.

Input: the ``queue`` ops — ``push`` (args ``topic``, ``message_id``,
``message``), ``pop`` (args ``topic``, ``consumer_id``,
``visibility_timeout``; an ok answer is ``{"empty": true}`` or carries
``message_id``, ``message`` and ``delivery_count``; pops of the final drain
have ``args["final"]`` and count like any pop) and ``ack``.  An op is ``ok``
(happened between invoke and complete), ``fail`` (never happened) or
``info`` (may take effect at any time after invoke, even after complete).
Messages are told apart by ``(topic, message_id)``; each rule only flags
what no such history could explain.

1. **No loss.**  Every message of an ok push must show up in an ok non-empty
   pop (or a non-fail ack, which needs a delivery too).  This presumes the
   history ends with a drain that popped every topic until it was empty,
   after every visibility timeout had run out.  A message can also leave
   unseen: each info pop may have taken one message and lost the answer, and
   after ``max_deliveries`` such deliveries the message is dead-lettered.  So
   with ``P`` info pops on a topic at most ``P // max_deliveries`` of its
   undelivered messages are explained; the topic is reported only when more
   are missing than that, listing every undelivered id (capped) after a
   summary line giving the count that is certainly lost.
2. **No phantom, no corruption.**  An ok pop of an id that no push of that
   topic carried (of any type), or that completed before any push of it was
   invoked, is a phantom; one whose ``message`` differs from the message of
   every push of that id is corrupt.
3. **First deliveries in push order.**  Message ``a`` was certainly enqueued
   by ``enq_by(a)``, the earliest complete of its ok pushes; message ``b``
   certainly not before ``enq_after(b)``, the earliest invoke of its non-fail
   pushes.  When ``enq_by(a) < enq_after(b)``, ``a`` must be delivered first.
   Let ``fa``/``fb`` be the earliest-completing ok pops of each.  ``a`` is
   judged only when ``fa`` has ``delivery_count == 1``: then ``fa`` *is* its
   first delivery, which happened after ``fa.invoke`` (if the first observed
   count is higher, the real first delivery was an unseen info pop at an
   unknown time).  ``b``'s first delivery happened by ``fb.complete``.  So
   ``fb.complete < fa.invoke`` means ``b`` was first delivered before ``a``.
   Per topic the ``b``'s are sorted by ``enq_after`` with suffix minima of
   ``fb.complete``, and each ``a`` bisects its ``enq_by`` into them:
   O(n log n).

Stats: ``<f>_<type>`` counts where ``pop_ok`` counts non-empty pops and
``pop_empty`` the empty ones, ``topics``, ``delivered`` (distinct messages
in ok pops), ``redeliveries`` (ok pops with ``delivery_count > 1``),
``duplicate_first_deliveries`` (messages with two or more ok pops of
``delivery_count == 1``), ``final_pops``, ``undelivered`` (ok-pushed
messages never seen delivered), ``lost`` (how many of them are certainly
lost), ``phantoms``, ``corrupt`` and ``order_violations``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rakit.chaos.checkers._common import (
    INF,
    Findings,
    count_types,
    fmt_op,
    freeze,
    result_of,
    suffix_min,
)
from rakit.chaos.history import Fault, Op, Verdict

DEFAULT_MAX_DELIVERIES = 5

LOST = "lost"
PHANTOM = "phantom"
CORRUPT = "corrupt"
ORDER = "order"


@dataclass(slots=True)
class Message:
    """Everything the history says about one ``(topic, message_id)``."""

    topic: str
    message_id: str
    pushes: list[Op] = field(default_factory=list)  # every push, of any type
    pops: list[Op] = field(default_factory=list)  # ok non-empty pops
    acked: bool = False  # a non-fail ack was sent for it

    @property
    def enq_by(self) -> float:
        """The time by which it was certainly enqueued (inf without an ok push)."""
        return min((p.complete for p in self.pushes if p.type == "ok"), default=INF)

    @property
    def enq_after(self) -> float:
        """The time before which it was certainly not enqueued (inf if every push failed)."""
        return min((p.invoke for p in self.pushes if p.type != "fail"), default=INF)

    @property
    def first_pop(self) -> Op | None:
        return min(self.pops, key=lambda p: p.complete, default=None)

    def first_push(self, ok_only: bool = False) -> Op | None:
        return min((p for p in self.pushes if p.type == "ok" or not ok_only), key=lambda p: p.invoke, default=None)

    def describe(self, op: Op | None) -> str:
        if op is None:
            return "(none)"
        if op.f == "pop":
            return fmt_op(op, topic=self.topic, id=self.message_id, delivery_count=_count(op))
        return fmt_op(op, topic=self.topic, id=self.message_id)


def _count(pop: Op) -> int | None:
    count = result_of(pop).get("delivery_count")
    return count if isinstance(count, int) and not isinstance(count, bool) else None


def _topic(op: Op) -> str | None:
    topic = op.args.get("topic", result_of(op).get("topic"))
    return None if topic is None else str(topic)


def is_delivery(op: Op) -> bool:
    """An ok pop that returned a message."""
    result = result_of(op)
    return op.f == "pop" and op.type == "ok" and not result.get("empty") and "message_id" in result


@dataclass(slots=True)
class _Topics:
    """The history grouped by topic and message."""

    messages: dict[tuple[str, str], Message] = field(default_factory=dict)
    info_pops: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    empty_pops: int = 0

    def message(self, topic: str, message_id: Any) -> Message:
        key = (topic, str(message_id))
        if key not in self.messages:
            self.messages[key] = Message(topic, str(message_id))
        return self.messages[key]

    def add(self, op: Op) -> None:
        topic = _topic(op)
        if topic is None:
            return
        if op.f == "push":
            message_id = op.args.get("message_id", result_of(op).get("message_id"))
            if message_id is not None:
                self.message(topic, message_id).pushes.append(op)
        elif is_delivery(op):
            self.message(topic, result_of(op)["message_id"]).pops.append(op)
        elif op.f == "pop" and op.type == "ok":
            self.empty_pops += 1
        elif op.f == "pop" and op.type == "info":
            self.info_pops[topic] += 1
        elif op.f == "ack" and op.type != "fail" and op.args.get("message_id") is not None:
            self.message(topic, op.args["message_id"]).acked = True

    def by_topic(self) -> dict[str, list[Message]]:
        out: dict[str, list[Message]] = defaultdict(list)
        for message in self.messages.values():
            out[message.topic].append(message)
        return out


def check_loss(
    topic: str, messages: Sequence[Message], info_pops: int, max_deliveries: int, findings: Findings
) -> tuple[int, int]:
    """Rule 1 on one topic; returns (ok-pushed messages never seen delivered, how many are certainly lost)."""
    missing = [m for m in messages if m.enq_by < INF and not m.pops and not m.acked]
    explained = info_pops // max_deliveries if max_deliveries > 0 else len(missing)
    if len(missing) > explained:
        findings.note(
            LOST,
            f"topic {topic}: {len(missing)} ok-pushed messages never delivered to an ok pop; at most {explained} "
            f"could have been dead-lettered through the {info_pops} info pops (max_deliveries {max_deliveries}), "
            f"so at least {len(missing) - explained} are lost",
        )
        for m in sorted(missing, key=lambda m: m.enq_by):
            findings.add(LOST, f"topic {topic} id {m.message_id} pushed by {m.describe(m.first_push(ok_only=True))}")
    return len(missing), max(0, len(missing) - explained)


def check_phantoms(message: Message, findings: Findings) -> None:
    """Rule 2 on one message's ok pops."""
    if not message.pops:
        return
    if not message.pushes:
        for pop in message.pops:
            findings.add(PHANTOM, f"{message.describe(pop)} delivered a message that no push carried")
        return
    first_push = message.first_push()
    assert first_push is not None
    sent = {freeze(p.args["message"]) for p in message.pushes if "message" in p.args}
    for pop in message.pops:
        if pop.complete < first_push.invoke:
            findings.add(
                PHANTOM,
                f"{message.describe(pop)} delivered it before any push of it began ({message.describe(first_push)})",
            )
        elif sent and "message" in result_of(pop) and freeze(result_of(pop)["message"]) not in sent:
            findings.add(
                CORRUPT,
                f"{message.describe(pop)} delivered message {result_of(pop)['message']!r:.80} "
                f"but it was pushed as {sorted(map(str, sent))!r:.80}",
            )


def check_order(messages: Sequence[Message], findings: Findings) -> None:
    """Rule 3 on one topic's messages."""
    later = sorted((m for m in messages if m.pops and m.enq_after < INF), key=lambda m: m.enq_after)
    afters = [m.enq_after for m in later]
    minima = suffix_min([min(p.complete for p in m.pops) for m in later])
    for a in messages:
        fa = a.first_pop
        if fa is None or _count(fa) != 1 or a.enq_by == INF:
            continue
        earliest, index = minima[bisect_right(afters, a.enq_by)]
        if earliest < fa.invoke:
            b = later[index]
            findings.add(
                ORDER,
                f"topic {a.topic}: {b.describe(b.first_pop)} delivered {b.message_id} before the first delivery "
                f"of {a.message_id} began ({a.describe(fa)}), though {a.message_id} was pushed "
                f"({a.describe(a.first_push(ok_only=True))}) before any push of {b.message_id} began "
                f"({b.describe(b.first_push())})",
            )


def check_queue(
    ops: Sequence[Op], faults: Sequence[Fault] = (), *, max_deliveries: int = DEFAULT_MAX_DELIVERIES
) -> Verdict:
    """Check a queue history: no loss, no phantom or corrupt delivery, first deliveries in push order.

    ``faults`` are not needed by these rules (accepted for a uniform signature);
    ``max_deliveries`` is the nodes' setting (see rule 1 of the module docstring).
    """
    findings = Findings()
    topics = _Topics()
    for op in ops:
        topics.add(op)
    undelivered = lost = 0
    for topic, messages in topics.by_topic().items():
        missing, certain = check_loss(topic, messages, topics.info_pops[topic], max_deliveries, findings)
        undelivered, lost = undelivered + missing, lost + certain
        for message in messages:
            check_phantoms(message, findings)
        check_order(messages, findings)

    messages = list(topics.messages.values())
    stats: dict[str, Any] = count_types(ops, ("push", "pop", "ack"))
    stats["pop_ok"] -= topics.empty_pops
    firsts = [sum(1 for p in m.pops if _count(p) == 1) for m in messages]
    stats.update(
        pop_empty=topics.empty_pops,
        topics=len({m.topic for m in messages}),
        delivered=sum(1 for m in messages if m.pops),
        redeliveries=sum(1 for m in messages for p in m.pops if (_count(p) or 0) > 1),
        duplicate_first_deliveries=sum(1 for n in firsts if n > 1),
        final_pops=sum(1 for op in ops if op.f == "pop" and op.args.get("final")),
        undelivered=undelivered,
        lost=lost,
        phantoms=findings.counts[PHANTOM],
        corrupt=findings.counts[CORRUPT],
        order_violations=findings.counts[ORDER],
    )
    return Verdict("queue", findings.lines(), stats)
