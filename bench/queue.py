"""Queue push→pop→ack cycles per second on a local 3-node cluster, against raw redis-py.

    .venv/bin/python bench/queue.py [--duration 5] [--no-etcd]

One op is a *cycle*: push a message to a topic, pop it, ack it (three
dependent requests, timed together); cycles/s counts completed cycles and
p50/p99 is the latency of one cycle.  Rows, all in one run on this machine
(nodes, their Redis and the load generator share it):
- ``ceiling``: three GET /health per op on a topic owner node — the same HTTP
  stack doing nothing, in the same unit (three requests per op);
- ``rakit→owner``: POST /queue/push ``{"topic", "message", "message_id"}``,
  GET /queue/pop/{topic}/{consumer}?visibility_timeout=30, POST /queue/ack,
  at concurrency 1, 16 and 64.  Each worker has its own topic
  (``q{row}-{worker}``) and consumer, so workers never pop each other's
  messages; the topic's owner (``owner`` of GET /queue/stats/{topic}, looked
  up before the clock starts) gets that worker's requests;
- ``rakit→forwarded``: the same at 64, but each worker sends to a node that
  is NOT its topic's owner, which forwards every call to the owner;
- ``redis-py (same Lua)``: ``RedisQueueStore`` (the scripts the nodes run,
  same ``max_deliveries`` and ``dedup_window`` defaults) on one
  ``connect(cluster.redis_url)`` client in this process, push→pop→ack
  straight against the same Redis, at 1, 16 and 64 — the ceiling the queue
  is compared with (target: owner at 64 ≥ 30% of redis-py's cycles/s).
Non-2xx answers, a pop answering 204 (or None) and exceptions count as
errors and are not in the latencies.  The last table gives rakit/redis-py
ratios.  ``--no-etcd`` is accepted and ignored (there is no etcd row here).
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named ``queue``: keep its directory out of the front of sys.path so
# that ``import queue`` (concurrent.futures, the launcher's thread pool) still finds
# the standard library's module; the bench helpers are found at the end of the path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]

import asyncio
import itertools
import json
import math
import tempfile
from typing import Any

from fasthttp import Connection
from loadgen import LoadResult, Op, OpError, bench_args, print_table, run_ops
from rakit.launcher import LocalCluster
from rakit.queue.redis_store import RedisQueueStore, connect

CONCURRENCY = (1, 16, 64)
FORWARDED_CONCURRENCY = 64
VISIBILITY = 30
HTTP_TIMEOUT = 10.0
RAW = "redis-py (same Lua)"
HEADERS = ["workload", "target", "conc", "cycles/s", "p50 ms", "p99 ms", "errors"]

_rows = itertools.count()  # fresh topic names per row: no row sees another's leftovers


async def call(conn: Connection, method: str, url: str, body: Any = None) -> tuple[int, Any]:
    status, data = await conn.request(method, url, body)
    if not 200 <= status < 300:
        raise OpError(f"{status} {method} {url.split('/', 3)[-1]}: {data[:120].decode(errors='replace')}")
    return status, (json.loads(data) if data else None)


Row = tuple[str, str, LoadResult]  # (workload, target, result)


def health_triple(url: str) -> Op:
    async def op(conn: Connection, w: int, seq: int) -> None:
        await call(conn, "GET", url + "/health")
        await call(conn, "GET", url + "/health")
        await call(conn, "GET", url + "/health")

    return op


def rakit_cycle(urls: list[str], tag: str) -> Op:
    """push→pop→ack on topic ``{tag}-{w}`` sent to ``urls[w]``."""

    async def op(conn: Connection, w: int, seq: int) -> None:
        url, topic, consumer = urls[w], f"{tag}-{w}", f"c{w}"
        mid = f"m{w}-{seq}"
        await call(
            conn, "POST", url + "/queue/push", {"topic": topic, "message": {"w": w, "n": seq}, "message_id": mid}
        )
        status, got = await call(conn, "GET", f"{url}/queue/pop/{topic}/{consumer}?visibility_timeout={VISIBILITY}")
        if status == 204 or not isinstance(got, dict) or "message_id" not in got:
            raise OpError(f"pop answered {status} {got!r:.100}")
        await call(
            conn, "POST", url + "/queue/ack", {"topic": topic, "consumer_id": consumer, "message_id": got["message_id"]}
        )

    return op


def raw_cycle(store: RedisQueueStore, tag: str) -> Op:
    async def op(conn: Connection, w: int, seq: int) -> None:
        topic, consumer = f"{tag}-{w}", f"c{w}"
        await store.push(topic, f"m{w}-{seq}", json.dumps({"w": w, "n": seq}).encode())
        got = await store.pop(topic, consumer, VISIBILITY)
        if got is None:
            raise OpError("pop answered None (nothing ready)")
        if not await store.ack(topic, consumer, got.message_id):
            raise OpError(f"ack of {got.message_id} answered False")

    return op


async def owner_url(cluster: LocalCluster, topic: str) -> str:
    conn = Connection(HTTP_TIMEOUT)
    try:
        any_url = next(iter(cluster.nodes.values())).url
        _, stats = await call(conn, "GET", f"{any_url}/queue/stats/{topic}")
    finally:
        conn.close()
    owner = stats["owner"]
    if owner in cluster.nodes:
        return cluster.nodes[owner].url
    urls = [n.url for n in cluster.nodes.values()]
    if owner in urls:
        return owner
    raise RuntimeError(f"stats of {topic} name an unknown owner {owner!r}")


async def bench(duration: float) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="rakit-bench-") as tmp:
        cluster = LocalCluster(3, Path(tmp))
        cluster.start()
        try:
            cluster.wait_for_leader(timeout=15)
            urls = [n.url for n in cluster.nodes.values()]
            probe = await owner_url(cluster, "q-ceiling")
            for c in CONCURRENCY:
                rows.append(
                    (
                        "ceiling (3× GET /health)",
                        "owner",
                        await run_ops("ceiling", health_triple(probe), c, duration, timeout=HTTP_TIMEOUT),
                    )
                )
            plan = [("owner", c) for c in CONCURRENCY] + [("forwarded", FORWARDED_CONCURRENCY)]
            for target, c in plan:
                tag = f"q{next(_rows)}"
                owners = [await owner_url(cluster, f"{tag}-{w}") for w in range(c)]
                if target == "owner":
                    dest = owners
                else:  # another node than the owner, spread over the two others
                    dest = [[u for u in urls if u != o][w % (len(urls) - 1)] for w, o in enumerate(owners)]
                rows.append(
                    (
                        f"rakit→{target}",
                        target,
                        await run_ops(f"rakit→{target}", rakit_cycle(dest, tag), c, duration, timeout=HTTP_TIMEOUT),
                    )
                )
            redis = connect(cluster.redis_url)
            try:
                store = RedisQueueStore(redis, max_deliveries=5, dedup_window=300.0)
                for c in CONCURRENCY:
                    tag = f"q{next(_rows)}"
                    rows.append(
                        (RAW, "redis", await run_ops(RAW, raw_cycle(store, tag), c, duration, timeout=HTTP_TIMEOUT))
                    )
            finally:
                await redis.aclose()
        finally:
            cluster.stop()
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
    return f"{a / b:.2f}×" if b and not math.isnan(a) and not math.isnan(b) else "—"


def main() -> None:
    args = bench_args(__doc__)  # --no-etcd: accepted, no-op
    rows = asyncio.run(bench(args.duration))
    print_table(
        "Queue push→pop→ack cycles (3 nodes, Redis on loopback, one machine)",
        [table_row(*row) for row in rows],
        HEADERS,
    )
    for workload, _target, r in rows:
        if r.error_samples:
            print(f"  {workload} c={r.concurrency}: {r.errors} errors, such as:")
            for sample in r.error_samples:
                print(f"    {sample}")
    raw = {r.concurrency: r for w, _, r in rows if w == RAW}
    table = []
    for workload, _, r in rows:
        e = raw.get(r.concurrency)
        if not workload.startswith("rakit") or e is None:
            continue
        table.append(
            [f"{workload} / redis-py", str(r.concurrency), ratio(r.ops_per_s, e.ops_per_s), ratio(r.pct(50), e.pct(50))]
        )
    print_table(
        "Ratios rakit/redis-py (cycles/s: higher is better; p50: lower is better)",
        table,
        ["workload", "conc", "cycles/s ratio", "p50 ratio"],
    )
    owner64 = next((r for w, _, r in rows if w == "rakit→owner" and r.concurrency == 64), None)
    if owner64 is not None and 64 in raw and raw[64].ops_per_s:
        share = owner64.ops_per_s / raw[64].ops_per_s
        verdict = "meets" if share >= 0.30 else "misses"
        print(f"owner at 64: {share:.0%} of redis-py's cycles/s ({verdict} the ≥ 30% target)")


if __name__ == "__main__":
    main()
