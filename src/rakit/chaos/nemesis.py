"""The nemesis plan: which faults happen when, drawn from a seed (pure: no clocks, no I/O).

A run's faults are a sequence of ``Step``\\ s, one at a time: each starts after
a quiet gap, lasts a bounded random time and is then healed, so the cluster
always gets a chance to recover before the next one.  The kinds are drawn at
random from the chosen nemeses with one ``random.Random(seed)``, so one seed
always gives the same plan (the leader, which some steps target, is only
known when the step runs; the plan says "the leader" and the runner resolves
it).

Kinds (``NEMESES``):

- ``partition``: the nodes split into two random halves (a minority and a majority);
- ``isolate-leader``: the current leader alone on one side;
- ``asymmetric``: one node (the leader half the time) is heard by nobody
  while it still hears everyone (one-way cuts from it to every other node);
- ``bridge``: two halves that overlap in one node, which hears both;
- ``kill``: SIGKILL one node (the leader half the time), restart it when healed;
- ``pause``: SIGSTOP one node (the leader half the time), SIGCONT when healed;
- ``redis-kill``: SIGKILL Redis, restart it (same append-only file) when healed;
- ``member``: remove one node (the leader half the time) from the
  configuration, SIGKILL it and wipe its data dir; when healed it starts
  empty with ``--join``, catches up as a learner and is promoted again;
- ``corrupt``: SIGKILL one node (the leader half the time) and flip bytes in
  the middle of its Raft log; when healed it is started and must refuse
  (``checkers.disk``), then it is removed, wiped and joins again as
  ``member`` does.

``minority()`` says which nodes a set of cuts leaves unable to exchange
messages with a majority: the chaos checkers require that those nodes grant
no lock while the cuts last.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

NETWORK = ("partition", "isolate-leader", "asymmetric", "bridge")
PROCESS = ("kill", "pause", "redis-kill")
MEMBERSHIP = ("member",)
DISK = ("corrupt",)
NEMESES: tuple[str, ...] = NETWORK + PROCESS + MEMBERSHIP + DISK
#: Short names accepted on the command line.
ALIASES = {
    "isolate": "isolate-leader",
    "redis": "redis-kill",
    "membership": "member",
    "disk": "corrupt",
    "all": ",".join(NEMESES),
}
LEADER = "<leader>"  # a step's target to be resolved when it runs


class NemesisError(ValueError):
    """A bad nemesis list or plan setting, with a one-line message."""


def parse_nemeses(text: str) -> tuple[str, ...]:
    """``"partition,bridge,kill"`` -> the kinds, checked; ``"none"`` -> ()."""
    out: list[str] = []
    for part in text.split(","):
        name = part.strip().lower()
        if not name or name == "none":
            continue
        for kind in ALIASES.get(name, name).split(","):
            if kind not in NEMESES:
                raise NemesisError(f"unknown nemesis {kind!r}: choose from {', '.join(NEMESES)} (or all, none)")
            if kind not in out:
                out.append(kind)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Step:
    """One fault: ``kind`` begins at ``at`` seconds into the run and is healed ``duration`` s later.

    For network kinds ``cuts`` lists the directed (src, dst) cuts (src's
    packets to dst are dropped); ``target`` is the node a process fault acts
    on, or the node a leader-targeting network step is built around, or
    ``LEADER`` when only the leader at run time can say (the runner then
    builds the cuts with ``resolve``).
    """

    kind: str
    at: float
    duration: float
    target: str | None = None
    cuts: tuple[tuple[str, str], ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)


def plan(
    seed: int,
    duration: float,
    nemeses: Sequence[str],
    nodes: Sequence[str],
    *,
    fault_seconds: tuple[float, float] = (4.0, 8.0),
    gap_seconds: tuple[float, float] = (2.0, 4.0),
    warmup: float = 3.0,
) -> list[Step]:
    """The faults of a run of ``duration`` s: every step starts and heals within it."""
    if len(nodes) < 3:
        raise NemesisError("the nemesis needs at least 3 nodes")
    for lo, hi in (fault_seconds, gap_seconds):
        if not 0 < lo <= hi:
            raise NemesisError("fault and gap ranges must be 0 < low <= high")
    rng = random.Random(seed)
    steps: list[Step] = []
    t = warmup
    if not nemeses:
        return steps
    while True:
        kind = rng.choice(list(nemeses))
        length = round(rng.uniform(*fault_seconds), 3)
        if t + length > duration:
            break
        steps.append(_step(rng, kind, round(t, 3), length, list(nodes)))
        t += length + rng.uniform(*gap_seconds)
    return steps


def _step(rng: random.Random, kind: str, at: float, length: float, nodes: list[str]) -> Step:
    if kind == "partition":
        shuffled = nodes[:]
        rng.shuffle(shuffled)
        small = shuffled[: len(nodes) // 2]
        return Step(
            kind,
            at,
            length,
            cuts=groups_cuts([small, shuffled[len(small) :]]),
            detail={"groups": [sorted(small), sorted(shuffled[len(small) :])]},
        )
    if kind == "bridge":
        shuffled = nodes[:]
        rng.shuffle(shuffled)
        middle, rest = shuffled[0], shuffled[1:]
        left, right = rest[: len(rest) // 2], rest[len(rest) // 2 :]
        return Step(
            kind,
            at,
            length,
            target=middle,
            cuts=groups_cuts([left, right]),
            detail={"groups": [sorted([*left, middle]), sorted([*right, middle])], "bridge": middle},
        )
    if kind == "redis-kill":
        return Step(kind, at, length, target="redis")
    # isolate-leader always targets the leader; the others half the time.
    target = LEADER if kind == "isolate-leader" or rng.random() < 0.5 else rng.choice(nodes)
    step = Step(kind, at, length, target=target)
    return resolve(step, nodes, target) if target != LEADER else step


def resolve(step: Step, nodes: Sequence[str], target: str) -> Step:
    """``step`` aimed at ``target`` (e.g. the leader found when it runs), its cuts built."""
    others = [n for n in nodes if n != target]
    cuts: tuple[tuple[str, str], ...] = step.cuts
    detail = dict(step.detail)
    if step.kind == "isolate-leader":
        cuts = groups_cuts([[target], others])
        detail["groups"] = [[target], sorted(others)]
    elif step.kind == "asymmetric":
        cuts = tuple((target, other) for other in others)
        detail["unheard"] = target
    return Step(step.kind, step.at, step.duration, target=target, cuts=cuts, detail=detail)


def groups_cuts(groups: Iterable[Iterable[str]]) -> tuple[tuple[str, str], ...]:
    """Both-way cuts between every pair of nodes in different groups."""
    sets = [sorted(g) for g in groups]
    cuts: list[tuple[str, str]] = []
    for i, a_group in enumerate(sets):
        for b_group in sets[i + 1 :]:
            for a in a_group:
                for b in b_group:
                    cuts += [(a, b), (b, a)]
    return tuple(sorted(cuts))


def minority(nodes: Sequence[str], cuts: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """Nodes that cannot exchange messages both ways with a majority (themselves included).

    Raft needs a round trip to every voter it counts (a vote or an append and
    its answer), so a one-way cut counts as no link.
    """
    cut = set(cuts)
    quorum = len(nodes) // 2 + 1
    out = []
    for n in nodes:
        linked = 1 + sum(1 for m in nodes if m != n and (n, m) not in cut and (m, n) not in cut)
        if linked < quorum:
            out.append(n)
    return tuple(out)
