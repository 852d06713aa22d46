"""Committed Raft writes per second on a local 3-node cluster, against baselines.

    .venv/bin/python bench/raft_writes.py [--duration 5] [--rounds 3] [--no-etcd]

Rows, all in one run on this machine (nodes and load generator share it):
- ``ceiling``: GET /health on the leader — the same HTTP stack doing nothing;
- ``rakit→leader`` / ``rakit→follower``: POST /kv/put (committed on a
  majority, fsynced, applied) sent to the leader, and to a follower that
  forwards to the leader;
- ``etcd``: a 3-member etcd cluster on loopback, PUT through its HTTP gateway
  (when Debian's etcd-server is installed or installable).
Each at concurrency 1, 16 and 64.  Both clusters run at once, and each
concurrency's rows are measured in ``--rounds`` turns of ``duration/rounds``
seconds (forward, then backward, then forward...), pooled: this machine's
speed drifts by tens of percent over minutes, and turns make the drift fall
on rakit and etcd alike.  The last table gives rakit/etcd ratios.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

# bench/queue.py would shadow the standard library's queue module (which the
# launcher's thread pool imports): bench/ goes to the end of the path instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]

from clusters import both_clusters, in_turns
from etcd_cluster import b64
from loadgen import LoadResult, RequestFn, bench_args, print_table, run_load

CONCURRENCY = (1, 16, 64)


async def bench(duration: float, rounds: int, with_etcd: bool) -> list[LoadResult]:
    """Every row, both clusters up at once; each concurrency's rows measured in turns."""
    with both_clusters(with_etcd) as up:
        targets: list[tuple[str, RequestFn]] = [
            ("ceiling (GET /health)", lambda w, s: ("GET", up.leader + "/health", None)),
            *[
                (name, lambda w, s, t=target: ("POST", t + "/kv/put", {"key": f"k{w}", "value": s}))
                for name, target in (("rakit→leader", up.leader), ("rakit→follower", up.follower))
            ],
        ]
        if up.etcd is not None:
            targets.append(
                (
                    "etcd put→leader",
                    lambda w, s: ("POST", up.etcd_leader + "/v3/kv/put", {"key": b64(f"k{w}"), "value": b64(str(s))}),
                )
            )
        results: list[LoadResult] = []
        for c in CONCURRENCY:
            rows = [
                (name, lambda seconds, name=name, request=request, c=c: run_load(name, request, c, seconds))
                for name, request in targets
            ]
            results.extend(result for _, result in await in_turns(rows, duration, rounds))
    return results


def main() -> None:
    args = bench_args(__doc__)
    results = asyncio.run(bench(args.duration, max(1, args.rounds), not args.no_etcd))
    rakit = [r for r in results if not r.name.startswith("etcd")]
    etcd = [r for r in results if r.name.startswith("etcd")]
    print_table("Raft writes (3 nodes, fsync on, one machine)", [r.row() for r in rakit + etcd])
    for r in rakit + etcd:
        if r.error_samples:
            print(f"  {r.name} c={r.concurrency}: errors such as {r.error_samples}")
    if etcd:
        by = {(r.name, r.concurrency): r for r in rakit + etcd}
        rows = []
        for c in CONCURRENCY:
            e = by[("etcd put→leader", c)]
            for name in ("rakit→leader", "rakit→follower"):
                r = by[(name, c)]
                rows.append(
                    [
                        f"{name} / etcd",
                        str(c),
                        f"{r.ops_per_s / e.ops_per_s:.2f}×",
                        f"{r.pct(50) / e.pct(50):.2f}×",
                        f"{r.pct(99) / e.pct(99):.2f}×",
                        "",
                    ]
                )
        print_table(
            "Ratios (throughput: higher is better; latency: lower is better)",
            rows,
            ["workload", "conc", "ops/s ratio", "p50 ratio", "p99 ratio", ""],
        )


if __name__ == "__main__":
    main()
