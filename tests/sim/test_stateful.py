"""Hypothesis model-based test: rules drive the simulated cluster, the checker judges.

Hypothesis picks the events (which node ticks, which message is delivered,
dropped or duplicated, partitions, crashes -- also in the middle of a Ready --,
restarts, proposals, reads, compactions); every safety invariant of
``harness.Checker`` is checked after each of them, and at the end of every
example the cluster is healed and must elect a leader, commit and converge.
A failure shrinks to a short rule program and shows the cluster's last events.

``RAKIT_STATEFUL_EXAMPLES`` sets the example count (default 100).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from .harness import Cluster, InFlight, SimConfig

NODE = st.integers(0, 4)  # taken modulo the cluster size
PICK = st.integers(0, 1 << 16)


class RaftMachine(RuleBasedStateMachine):
    c: Cluster

    @initialize(
        nodes=st.sampled_from([3, 5]),
        seed=st.integers(0, 2**32 - 1),
        compact_every=st.sampled_from([0, 3]),
    )
    def setup(self, nodes: int, seed: int, compact_every: int) -> None:
        cfg = SimConfig(
            name="stateful",
            nodes=nodes,
            drop=0.0,
            duplicate=0.0,
            max_delay=0,
            compact_every=compact_every,
            max_down=nodes,
            liveness_rounds=300,
        )
        self.c = Cluster(cfg, seed)
        self._run(self.c.after_event)

    # -- helpers -----------------------------------------------------------------

    def _id(self, i: int) -> str:
        return self.c.voters[i % len(self.c.voters)]

    def _run(self, fn: Callable[[], object]) -> None:
        try:
            fn()
        except AssertionError as err:
            note(self.c.failure_report(err, "(shrunk Hypothesis program above)", last=40))
            raise

    def _event(self, what: Callable[[], object]) -> None:
        def go() -> None:
            self.c.now += 1
            what()
            self.c.after_event()

        self._run(go)

    # -- time ----------------------------------------------------------------------

    @rule(i=NODE, n=st.integers(1, 12))
    def tick(self, i: int, n: int) -> None:
        nid = self._id(i)
        for _ in range(n):
            self.c.log(f"tick {nid}")
            self._event(lambda: self.c.tick(nid))

    @rule(n=st.integers(1, 12))
    def tick_all(self, n: int) -> None:
        for _ in range(n):
            self.c.log("tick all")
            self._event(self.c.tick_all)

    @rule(n=st.integers(1, 15))
    def rounds(self, n: int) -> None:
        """Synchronous rounds: tick every node, then deliver everything in flight."""
        for _ in range(n):
            self._run(self.c.round)

    # -- network ---------------------------------------------------------------------

    @precondition(lambda self: bool(self.c.net.queue))
    @rule(k=PICK, n=st.integers(1, 20))
    def deliver(self, k: int, n: int) -> None:
        for j in range(n):
            q = self.c.net.queue
            if not q:
                return
            msg = self.c.net.take((k + j) % len(q))
            self.c.log(f"deliver {type(msg).__name__} {msg.src}->{msg.dst} t{msg.term}")
            self._event(lambda msg=msg: self.c.deliver(msg))

    @rule()
    def deliver_all(self) -> None:
        self._run(self.c.deliver_all)

    @precondition(lambda self: bool(self.c.net.queue))
    @rule(k=PICK)
    def drop(self, k: int) -> None:
        msg = self.c.net.take(k % len(self.c.net.queue))
        self.c.log(f"drop {type(msg).__name__} {msg.src}->{msg.dst}")

    @precondition(lambda self: bool(self.c.net.queue))
    @rule(k=PICK)
    def duplicate(self, k: int) -> None:
        q = self.c.net.queue
        item = q[k % len(q)]
        self.c.net.seq += 1
        q.append(InFlight(item.deliver_at, self.c.net.seq, item.msg))
        self.c.log(f"duplicate {type(item.msg).__name__} {item.msg.src}->{item.msg.dst}")

    @rule(side=st.lists(NODE, min_size=1, max_size=4, unique=True))
    def partition(self, side: list[int]) -> None:
        a = sorted({self._id(i) for i in side})
        b = [v for v in self.c.voters if v not in a]
        if b:
            self.c.partition(a, b)

    @rule(i=NODE)
    def isolate(self, i: int) -> None:
        self.c.isolate(self._id(i))

    @rule(i=NODE, j=NODE)
    def cut_one_way(self, i: int, j: int) -> None:
        a, b = self._id(i), self._id(j)
        if a != b:
            self.c.cut(a, b, both=False)
            self.c.log(f"cut {a} -> {b}")

    @rule()
    def heal(self) -> None:
        self.c.heal()

    # -- crashes ---------------------------------------------------------------------

    @rule(i=NODE, phase=st.sampled_from([-1, 0, 1, 2, 3]))
    def crash(self, i: int, phase: int) -> None:
        """Crash now (-1), or in the middle of the node's next Ready at ``phase``."""
        nid = self._id(i)
        if phase < 0:
            self.c.crash(nid)
        elif self.c.nodes[nid].up:
            self.c.crash_plan[nid] = phase
            self.c.log(f"{nid} will crash in its next Ready at phase {phase}")

    @rule(i=NODE)
    def restart(self, i: int) -> None:
        nid = self._id(i)
        self._event(lambda: self.c.restart(nid))

    # -- clients and the driver --------------------------------------------------------

    @rule(n=st.integers(1, 3))
    def propose(self, n: int) -> None:
        for node in self.c.leaders():
            self._event(lambda node=node: self.c.propose(node.id, n))

    @rule(k=PICK)
    def read_index(self, k: int) -> None:
        leaders = self.c.leaders()
        if leaders:
            nid = leaders[k % len(leaders)].id
            self._event(lambda: self.c.read_index(nid))

    @rule(i=NODE)
    def compact(self, i: int) -> None:
        nid = self._id(i)
        self._event(lambda: self.c.compact(nid))

    @rule(i=NODE)
    def campaign(self, i: int) -> None:
        nid = self._id(i)
        node = self.c.nodes[nid]
        if node.core is not None and node.core.role != "leader":
            self.c.log(f"campaign {nid}")
            self._event(node.core.campaign)

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def safety(self) -> None:
        # Also checked inside every event above; this catches anything a rule
        # changed without one (drop, duplicate, cut, crash).
        self._run(self.c.check_invariants)

    def teardown(self) -> None:
        if hasattr(self, "c"):
            self.c.crash_plan.clear()
            self._run(self.c.check_liveness)


TestRaftStateful = RaftMachine.TestCase
TestRaftStateful.settings = settings(
    max_examples=int(os.environ.get("RAKIT_STATEFUL_EXAMPLES", "100")),
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=os.environ.get("RAKIT_STATEFUL_RANDOM") is None,
    database=None,
)
