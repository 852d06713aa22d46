"""Pure checkers: a recorded history in, one ``Verdict`` per workload out (no I/O, no clocks).

Each checker takes the ops of one workload and the run's faults, and reports
only what no history could explain, where an ``info`` op may have taken
effect at any time after its invoke (see each module's docstring for its
rules and why they are sound).  Every checker is O(n log n) in the number of
ops.

- ``check_locks``: mutual exclusion, fencing tokens, no grant from a minority;
- ``check_queue``: no loss, no phantom or corrupt delivery, first deliveries
  in push order;
- ``check_cache``: no stale or phantom read, one version per write,
  convergence after healing;
- ``check_semaphores``: never more than ``limit`` permits held, growing
  tokens, consistent status snapshots;
- ``check_elections``: one leader at a time, growing terms, observers that
  never go back;
- ``check_kv_history`` (workload ``kv``): the KV ops of both KV workloads
  are linearizable (Wing–Gong / Lowe search per group of keys: exponential in
  the worst case, bounded by a step budget whose exhaustion is reported);
- ``check_kv_counters``: every CAS counter's final value is between its ok
  and its ok + unknown increments;
- ``check_disk`` (only when the run had ``corrupt`` faults): a node never
  starts on a log damaged in the middle.
"""

from __future__ import annotations

from rakit.chaos.checkers.cache import check_cache
from rakit.chaos.checkers.disk import check_disk
from rakit.chaos.checkers.elections import check_elections
from rakit.chaos.checkers.kv_counters import check_kv_counters
from rakit.chaos.checkers.kv_history import check_kv_history
from rakit.chaos.checkers.locks import check_locks
from rakit.chaos.checkers.queue import DEFAULT_MAX_DELIVERIES, check_queue
from rakit.chaos.checkers.semaphores import check_semaphores
from rakit.chaos.history import History, Verdict

__all__ = [
    "check_all",
    "check_cache",
    "check_disk",
    "check_elections",
    "check_kv_counters",
    "check_kv_history",
    "check_locks",
    "check_queue",
    "check_semaphores",
]

COORDINATION_CHECKERS = (("semaphores", check_semaphores), ("elections", check_elections))


def check_all(history: History) -> list[Verdict]:
    """The verdicts of the locks, queue and cache checkers, in that order, on ``history``; then those of
    the semaphores and elections checkers, then the KV linearizability and counter checkers, when the run
    chose those workloads (``meta["workloads"]``) or recorded ops of them.

    The queue's ``max_deliveries`` is taken from ``history.meta`` when the run recorded it.
    """
    max_deliveries = int(history.meta.get("max_deliveries") or DEFAULT_MAX_DELIVERIES)
    verdicts = [
        check_locks(history.of("locks"), history.faults),
        check_queue(history.of("queue"), history.faults, max_deliveries=max_deliveries),
        check_cache(history.of("cache"), history.faults),
    ]
    chosen = history.meta.get("workloads") or ()
    for workload, checker in COORDINATION_CHECKERS:
        ops = history.of(workload)
        if ops or workload in chosen:
            verdicts.append(checker(ops, history.faults))
    registers, counters = history.of("kv"), history.of("kv-counters")
    if registers or counters or "kv" in chosen:
        verdicts.append(check_kv_history([*registers, *counters]))
        verdicts.append(check_kv_counters(counters))
    if any(f.nemesis == "corrupt" for f in history.faults):
        verdicts.append(check_disk(history.faults))
    return verdicts
