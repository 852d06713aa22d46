"""Lock acquire+release pairs per second on a local 3-node cluster, against etcd.

    .venv/bin/python bench/locks.py [--duration 5] [--rounds 3] [--no-etcd]

One op is a *pair*: acquire a lock, then release it once granted (two
dependent HTTP requests, timed together); pairs/s counts completed pairs and
p50/p99 is the latency of one pair.  Rows, all in one run on this machine
(nodes and load generator share it):
- ``ceiling``: two GET /health on the leader per op — the same HTTP stack
  doing nothing, in the same unit (two requests per op);
- ``uncontended``: each worker locks its own resource (``res-{worker}``) with
  its own client id: POST /lock/acquire ``{"ttl": 30}`` then POST
  /lock/release, sent to the leader at concurrency 1, 16 and 64, and to a
  follower (which forwards both to the leader) at 64;
- ``contended``: 16 workers, one resource; each acquire has ``"timeout": 30``
  so it waits in the FIFO wait list, and the holder releases as soon as it is
  granted — the rate at which the lock changes hands;
- ``etcd``: a 3-member etcd cluster on loopback (when Debian's etcd-server is
  installed or installable), the same workloads through its HTTP gateway: one
  lease per worker granted before the row (TTL 30), POST /v3/lock/lock
  ``{"name", "lease"}`` (blocks until acquired) returns a key, then POST
  /v3/lock/unlock ``{"key"}``.
Non-2xx answers (and an acquire answer without a grant) count as errors and
are not in the latencies.  Both clusters run at once; rows compared with
each other are measured in ``--rounds`` turns of ``duration/rounds`` seconds
(forward, then backward...), pooled, so that this machine's drift in speed
falls on rakit and etcd alike.  The last table gives rakit/etcd ratios.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

# bench/queue.py would shadow the standard library's queue module (which the
# launcher's thread pool imports): bench/ goes to the end of the path instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]

from clusters import both_clusters, in_turns
from etcd_cluster import EtcdCluster, b64
from fasthttp import Connection
from loadgen import LoadResult, Op, OpError, bench_args, print_table, run_ops

CONCURRENCY = (1, 16, 64)
CONTENDED = 16
FOLLOWER_CONCURRENCY = 64
TTL = 30
WAIT = 30  # seconds a contended acquire may wait
HTTP_TIMEOUT = WAIT + 5.0
HEADERS = ["workload", "target", "conc", "pairs/s", "p50 ms", "p99 ms", "errors"]

_rows = itertools.count()  # fresh resource names per row: no row sees another's leftovers


async def call(conn: Connection, method: str, url: str, body: Any = None) -> Any:
    status, data = await conn.request(method, url, body)
    if not 200 <= status < 300:
        raise OpError(f"{status} {method} {url.split('/', 3)[-1]}: {data[:120].decode(errors='replace')}")
    return json.loads(data) if data else None


Row = tuple[str, str, LoadResult]  # (workload, target, result)


def health_pair(url: str) -> Op:
    async def op(session: Connection, w: int, seq: int) -> None:
        await call(session, "GET", url + "/health")
        await call(session, "GET", url + "/health")

    return op


def rakit_pair(url: str, resource: Callable[[int], str], client: Callable[[int], str], wait: float) -> Op:
    async def op(session: Connection, w: int, seq: int) -> None:
        res, cid = resource(w), client(w)
        body: dict[str, Any] = {"resource": res, "client_id": cid, "ttl": TTL}
        if wait:
            body["timeout"] = wait
        granted = await call(session, "POST", url + "/lock/acquire", body)
        if not (isinstance(granted, dict) and granted.get("acquired")):
            raise OpError(f"acquire answered {granted!r:.120}")
        await call(session, "POST", url + "/lock/release", {"resource": res, "client_id": cid})

    return op


def etcd_pair(url: str, name: Callable[[int], str], leases: list[str]) -> Op:
    async def op(session: Connection, w: int, seq: int) -> None:
        locked = await call(session, "POST", url + "/v3/lock/lock", {"name": b64(name(w)), "lease": leases[w]})
        key = locked.get("key") if isinstance(locked, dict) else None
        if not key:
            raise OpError(f"lock answered {locked!r:.120}")
        await call(session, "POST", url + "/v3/lock/unlock", {"key": key})

    return op


async def etcd_row(
    etcd: EtcdCluster, url: str, name: Callable[[int], str], concurrency: int, duration: float
) -> LoadResult:
    leases = [etcd.grant_lease(TTL, url) for _ in range(concurrency)]  # before the clock starts
    return await run_ops("etcd", etcd_pair(url, name, leases), concurrency, duration, timeout=HTTP_TIMEOUT)


Slice = Callable[[float], Awaitable[LoadResult]]  # seconds -> one slice of a row


async def bench(duration: float, rounds: int, with_etcd: bool) -> list[Row]:
    """Every row, both clusters up at once; rows compared with each other (a rakit row, its
    etcd row, the ceiling at that concurrency) measured in turns."""
    with both_clusters(with_etcd) as up:
        etcd = up.etcd

        def rakit_slice(url: str, c: int, contended: bool) -> Slice:
            def run(seconds: float) -> Awaitable[LoadResult]:
                tag = f"{'c' if contended else 'u'}{next(_rows)}"  # fresh names per slice
                resource = (lambda w: f"{tag}-hot") if contended else (lambda w: f"{tag}-res-{w}")
                op = rakit_pair(url, resource, lambda w: f"{tag}-client-{w}", WAIT if contended else 0)
                return run_ops("rakit", op, c, seconds, timeout=HTTP_TIMEOUT)

            return run

        def etcd_slice(c: int, contended: bool) -> Slice:
            def run(seconds: float) -> Awaitable[LoadResult]:
                assert etcd is not None
                tag = f"{'c' if contended else 'u'}{next(_rows)}"
                name = (lambda w: f"{tag}-hot") if contended else (lambda w: f"{tag}-res-{w}")
                return etcd_row(etcd, up.etcd_leader, name, c, seconds)

            return run

        groups: list[list[tuple[tuple[str, str], Slice]]] = []
        for c in CONCURRENCY:
            groups.append(
                [
                    (
                        ("ceiling (2× GET /health)", "leader"),
                        lambda seconds, c=c: run_ops(
                            "ceiling", health_pair(up.leader), c, seconds, timeout=HTTP_TIMEOUT
                        ),
                    ),
                    (("uncontended", "leader"), rakit_slice(up.leader, c, False)),
                    *([(("etcd uncontended", "leader"), etcd_slice(c, False))] if etcd else []),
                ]
            )
        groups.append([(("uncontended", "follower"), rakit_slice(up.follower, FOLLOWER_CONCURRENCY, False))])
        groups.append(
            [
                (("contended", "leader"), rakit_slice(up.leader, CONTENDED, True)),
                *([(("etcd contended", "leader"), etcd_slice(CONTENDED, True))] if etcd else []),
            ]
        )
        rows: list[Row] = []
        for group in groups:
            rows.extend((w, t, r) for (w, t), r in await in_turns(group, duration, rounds))
    return rows


def table_row(workload: str, target: str, r: LoadResult) -> list[str]:
    return [
        workload,
        target,
        str(r.concurrency),
        f"{r.ops_per_s:,.0f}",
        f"{r.pct(50):.2f}",
        f"{r.pct(99):.2f}",
        str(r.errors),
    ]


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b and a == a and b == b else "—"


def main() -> None:
    args = bench_args(__doc__)
    rows = asyncio.run(bench(args.duration, max(1, args.rounds), not args.no_etcd))
    rakit = [row for row in rows if not row[0].startswith("etcd")]
    etcd = [row for row in rows if row[0].startswith("etcd")]
    print_table(
        "Lock acquire+release pairs (3 nodes, fsync on, one machine)",
        [table_row(*row) for row in rakit + etcd],
        HEADERS,
    )
    for workload, target, r in rakit + etcd:
        if r.error_samples:
            print(f"  {workload} →{target} c={r.concurrency}: {r.errors} errors, such as:")
            for sample in r.error_samples:
                print(f"    {sample}")
    if etcd:
        by = {(w.removeprefix("etcd "), t, r.concurrency, w.startswith("etcd")): r for w, t, r in rakit + etcd}
        rows = []
        for workload, target, r in rakit:
            e = by.get((workload, "leader", r.concurrency, True))
            if e is None:
                continue
            rows.append(
                [
                    f"{workload} →{target} / etcd",
                    str(r.concurrency),
                    ratio(r.ops_per_s, e.ops_per_s),
                    ratio(r.pct(50), e.pct(50)),
                    ratio(r.pct(99), e.pct(99)),
                ]
            )
        print_table(
            "Ratios rakit/etcd (pairs/s: higher is better; latency: lower is better)",
            rows,
            ["workload", "conc", "pairs/s ratio", "p50 ratio", "p99 ratio"],
        )


if __name__ == "__main__":
    main()
