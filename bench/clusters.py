"""The clusters a rakit-vs-etcd benchmark measures, both up at once, and its rows taken in turns.

``both_clusters`` starts a local 3-node rakit cluster (its Redis on the
shared server, db 15) and, when asked and etcd-server is installable, a
3-member etcd cluster beside it; ``in_turns`` measures rows that are
compared with each other in slices, forward then backward, so that drift in
this shared machine's speed falls on all of them alike.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from etcd_cluster import EtcdCluster, ensure_etcd
from loadgen import LoadResult, merge
from rakit.launcher import LocalCluster

K = TypeVar("K")


@dataclass
class Clusters:
    leader: str  # rakit URLs
    follower: str
    etcd: EtcdCluster | None
    etcd_leader: str  # "" without etcd


@contextlib.contextmanager
def both_clusters(with_etcd: bool) -> Iterator[Clusters]:
    binary = ensure_etcd() if with_etcd else None
    if with_etcd and binary is None:
        print("etcd-server is not installed and could not be installed: no etcd rows")
    with tempfile.TemporaryDirectory(prefix="rakit-bench-") as tmp, contextlib.ExitStack() as stack:
        cluster = LocalCluster(3, Path(tmp), redis_url="redis://127.0.0.1:6379/15")
        stack.callback(cluster.stop)
        cluster.start()
        leader_id = cluster.wait_for_leader(timeout=15)
        follower = next(n.url for i, n in cluster.nodes.items() if i != leader_id)
        etcd = stack.enter_context(EtcdCluster(binary)) if binary is not None else None
        yield Clusters(cluster.nodes[leader_id].url, follower, etcd, etcd.leader_url() if etcd else "")


async def in_turns(
    rows: Sequence[tuple[K, Callable[[float], Awaitable[LoadResult]]]], duration: float, rounds: int
) -> list[tuple[K, LoadResult]]:
    """Each row's ``run(seconds)`` called ``rounds`` times for ``duration / rounds`` seconds, the
    rows in order on even turns and reversed on odd ones; each row's slices pooled."""
    slices: list[list[LoadResult]] = [[] for _ in rows]
    order = list(range(len(rows)))
    for turn in range(rounds):
        for i in order if turn % 2 == 0 else order[::-1]:
            slices[i].append(await rows[i][1](duration / rounds))
    return [(key, merge(parts)) for (key, _), parts in zip(rows, slices)]
