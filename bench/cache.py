"""Cache gets and sets per second on a local 3-node cluster, against raw redis-py.

    .venv/bin/python bench/cache.py [--duration 5] [--concurrency 1,16,64]
                                    [--miss-keys N] [--cache-capacity 100000]

One op is one request (one command for redis-py); ops/s counts completed ops
and p50/p99 is the latency of one op.  Rows, all in one run on this machine
(nodes, their Redis and the load generator share it), each at concurrency 1,
16 and 64 (``--concurrency``), one keep-alive connection per worker:
- ``ceiling (GET /health)``: GET /health on node1 — the same HTTP stack doing
  nothing;
- ``get (local hit)``: GET /cache/get/{key} on node1, the key picked at random
  among 1000 keys written on node1 (POST /cache/set) before the first row, so
  node1 holds them all.  The answer must be 200 with ``"source": "local"``;
- ``get (miss, served by a peer)``: GET /cache/get/{key} on node2 for a key
  written on node1 and never read on node2 before: node2 asks its peers, keeps
  the copy and answers with ``"source": "peer"`` (required).  Every op reads
  the next unused key, so each read is a first read.  Before each
  concurrency level, fresh keys are written on node1 (64 writers, not
  measured): ``--miss-keys`` of them, else 1.25 × the keys the local-hit row
  at that concurrency read in (warm-up + duration) — a miss costs a peer round
  trip more than a hit, so it cannot be faster — plus 500; at most
  ``--cache-capacity`` (every node is started with ``--cache-capacity``, by
  default 100,000 instead of the node's 10,000, so that node1's LRU still
  holds them all).  Should the keys run out anyway, the remaining ops of that
  row wait for its end uncounted and a note says so (the rate is then an
  underestimate: rerun with a larger ``--miss-keys``);
- ``set (invalidates 2 peers)``: POST /cache/set ``{"key", "value": {"n": i,
  "pad": "x" * 64}}`` on node1, the key random among the same 1000; a write is
  answered only once both peers have processed its invalidation.  The answer
  must be 200 ``{"key", "version"}``;
- ``redis-py GET`` / ``redis-py SET``: ``redis.asyncio`` (hiredis parser when
  installed), one client per concurrency level whose pool holds as many
  connections as there are workers, GET (the value JSON-decoded, as the HTTP
  rows decode their answers) and SET of the same values, as compact JSON, on
  1000 keys, against the cluster's own redis-server (started by the bench,
  as ``bench/queue.py`` does; the nodes leave it idle during these rows).
Non-2xx answers, a wrong ``source`` and exceptions count as errors and are not
in the latencies.  The last table gives, per concurrency, hits/redis-py GET
and sets/redis-py SET in ops/s; the targets are hits at 64 ≥ 50% of redis-py
GETs and sets at 64 ≥ 25% of redis-py SETs.  ``--no-etcd`` is accepted and
ignored (there is no etcd row here).
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py would shadow the standard library's queue module (which the
# launcher's thread pool imports): bench/ goes to the end of the path instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]

import argparse
import asyncio
import itertools
import json
import math
import random
import tempfile
import time
from collections.abc import Callable
from typing import Any

from fasthttp import Connection, HttpError
from loadgen import LoadResult, Op, OpError, bench_args, print_table, run_ops
from rakit.launcher import LocalCluster

CONCURRENCY = (1, 16, 64)
HOT_KEYS = 1000  # keys of the local-hit, set and redis-py rows
PREFILL_CONCURRENCY = 64
CACHE_CAPACITY = 100_000  # entries per node (the node's own default is 10,000)
WARMUP = 0.5  # run_ops's warm-up, counted in the keys a miss row may read
MISS_KEYS_PER_S = 8000  # miss keys per measured second when no hit rate is known
READY_TIMEOUT = 30.0
HTTP_TIMEOUT = 10.0
PAD = "x" * 64

HIT = "get (local hit)"
MISS = "get (miss, served by a peer)"
SET = "set (invalidates 2 peers)"
RAW_GET = "redis-py GET"
RAW_SET = "redis-py SET"
HEADERS = ["workload", "target", "conc", "ops/s", "p50 ms", "p99 ms", "errors"]

_rows = itertools.count()  # fresh miss-key names per row: no row sees another's leftovers
_rng = random.Random(5)


def hot_key(i: int) -> str:
    return f"hot:{i}"


def value(n: int) -> dict[str, Any]:
    return {"n": n, "pad": PAD}


async def call(conn: Connection, method: str, url: str, body: Any = None) -> Any:
    status, data = await conn.request(method, url, body)
    if not 200 <= status < 300:
        raise OpError(f"{status} {method} {url.split('/', 3)[-1]}: {data[:120].decode(errors='replace')}")
    return json.loads(data) if data else None


Row = tuple[str, str, LoadResult]  # (workload, target, result)


def health(url: str) -> Op:
    async def op(conn: Connection, w: int, seq: int) -> None:
        await call(conn, "GET", url + "/health")

    return op


def cache_get(url: str, key: Callable[[], str | None], source: str, keys: FreshKeys | None = None) -> Op:
    """GET /cache/get/{key()}; the answer must say ``source``.  ``key()`` None: out of keys."""

    async def op(conn: Connection, w: int, seq: int) -> None:
        k = key()
        if k is None:
            assert keys is not None
            await keys.wait_out_row()
            raise OpError("ran out of prefilled keys")
        got = await call(conn, "GET", f"{url}/cache/get/{k}")
        if not isinstance(got, dict) or got.get("source") != source:
            raise OpError(f"get {k} answered {got!r:.120}")

    return op


def cache_set(url: str) -> Op:
    async def op(conn: Connection, w: int, seq: int) -> None:
        k = hot_key(_rng.randrange(HOT_KEYS))
        got = await call(conn, "POST", url + "/cache/set", {"key": k, "value": value(seq)})
        if not isinstance(got, dict) or got.get("key") != k or "version" not in got:
            raise OpError(f"set {k} answered {got!r:.120}")

    return op


class FreshKeys:
    """Each prefilled key handed out once, in order; ``row_end`` is set just before the row."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self.used = 0
        self.ran_out = False
        self.row_end = 0.0

    def take(self) -> str | None:
        if self.used >= len(self.keys):
            self.ran_out = True
            return None
        self.used += 1
        return self.keys[self.used - 1]

    async def wait_out_row(self) -> None:
        """Sleep past the row's end, so that the op neither counts nor spins."""
        await asyncio.sleep(max(0.0, self.row_end - time.perf_counter()) + 0.05)


async def fill(url: str, keys: list[str]) -> None:
    """POST /cache/set every key on ``url``, PREFILL_CONCURRENCY at a time (not measured)."""
    todo = iter(enumerate(keys))

    async def writer() -> None:
        conn = Connection(HTTP_TIMEOUT)
        try:
            for i, k in todo:
                got = await call(conn, "POST", url + "/cache/set", {"key": k, "value": value(i)})
                if not isinstance(got, dict) or got.get("key") != k:
                    raise OpError(f"prefill set {k} answered {got!r:.120}")
        finally:
            conn.close()

    await asyncio.gather(*(writer() for _ in range(PREFILL_CONCURRENCY)))


async def wait_cache_ready(urls: list[str], timeout: float) -> None:
    """Poll POST /cache/set on every node until each answers 200 (503 until it reaches its peers)."""
    deadline = time.monotonic() + timeout
    conn = Connection(2.0)
    try:
        for url in urls:
            last = ""
            while True:
                try:
                    status, data = await conn.request("POST", url + "/cache/set", {"key": "bench:ready", "value": 0})
                    if status == 200:
                        break
                    last = f"{status} {data[:120].decode(errors='replace')}"
                    if status in (404, 405):
                        raise RuntimeError(f"{url} has no cache service (POST /cache/set answered {last})")
                except HttpError as exc:
                    last = str(exc)
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"{url} did not accept POST /cache/set within {timeout:g} s: {last}")
                await asyncio.sleep(0.05)
    finally:
        conn.close()


def miss_key_count(args: argparse.Namespace, hit: LoadResult | None) -> int:
    if args.miss_keys:
        wanted = args.miss_keys
    elif hit is not None and hit.ops:
        wanted = math.ceil(1.25 * hit.ops_per_s * (WARMUP + args.duration)) + 500
    else:
        wanted = math.ceil(MISS_KEYS_PER_S * (WARMUP + args.duration))
    return min(wanted, args.cache_capacity)


async def bench(args: argparse.Namespace, notes: list[str]) -> list[Row]:
    rows: list[Row] = []
    duration, levels = args.duration, args.concurrency
    with tempfile.TemporaryDirectory(prefix="rakit-bench-") as tmp:
        cluster = LocalCluster(3, Path(tmp), extra_args=("--cache-capacity", str(args.cache_capacity)))
        cluster.start()
        try:
            cluster.wait_for_leader(timeout=15)
            node1, node2 = cluster.nodes["node1"].url, cluster.nodes["node2"].url
            await wait_cache_ready([n.url for n in cluster.nodes.values()], READY_TIMEOUT)
            for c in levels:
                rows.append(
                    (
                        "ceiling (GET /health)",
                        "node1",
                        await run_ops("ceiling", health(node1), c, duration, WARMUP, HTTP_TIMEOUT),
                    )
                )
            await fill(node1, [hot_key(i) for i in range(HOT_KEYS)])
            hits: dict[int, LoadResult] = {}
            for c in levels:
                op = cache_get(node1, lambda: hot_key(_rng.randrange(HOT_KEYS)), "local")
                hits[c] = await run_ops(HIT, op, c, duration, WARMUP, HTTP_TIMEOUT)
                rows.append((HIT, "node1", hits[c]))
            for c in levels:
                tag = f"m{next(_rows)}"
                count = miss_key_count(args, hits.get(c))
                keys = FreshKeys([f"{tag}:{i}" for i in range(count)])
                await fill(node1, keys.keys)
                keys.row_end = time.perf_counter() + WARMUP + duration
                r = await run_ops(MISS, cache_get(node2, keys.take, "peer", keys), c, duration, WARMUP, HTTP_TIMEOUT)
                rows.append((MISS, "node2", r))
                if keys.ran_out:
                    notes.append(
                        f"{MISS} c={c}: all {count:,} prefilled keys were read before the row "
                        "ended: its ops/s is an underestimate (rerun with a larger --miss-keys"
                        + (", and --cache-capacity" if count >= args.cache_capacity else "")
                        + ")"
                    )
            for c in levels:
                rows.append((SET, "node1", await run_ops(SET, cache_set(node1), c, duration, WARMUP, HTTP_TIMEOUT)))
            rows.extend(await bench_redis(cluster.redis_url, args))
        finally:
            cluster.stop()
    return rows


def redis_get(client: Any) -> Op:
    async def op(conn: Connection, w: int, seq: int) -> None:
        k = hot_key(_rng.randrange(HOT_KEYS))
        got = await client.get(k)
        if got is None:
            raise OpError(f"GET {k} answered None")
        json.loads(got)

    return op


def redis_set(client: Any) -> Op:
    async def op(conn: Connection, w: int, seq: int) -> None:
        await client.set(hot_key(_rng.randrange(HOT_KEYS)), encode(value(seq)))

    return op


def encode(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


async def bench_redis(url: str, args: argparse.Namespace) -> list[Row]:
    import redis.asyncio as aioredis

    gets: list[Row] = []
    sets: list[Row] = []
    for c in args.concurrency:
        client = aioredis.Redis.from_url(
            url, max_connections=c, socket_timeout=HTTP_TIMEOUT, socket_connect_timeout=HTTP_TIMEOUT
        )
        try:
            await client.mset({hot_key(i): encode(value(i)) for i in range(HOT_KEYS)})
            gets.append(
                (RAW_GET, "redis", await run_ops(RAW_GET, redis_get(client), c, args.duration, WARMUP, HTTP_TIMEOUT))
            )
            sets.append(
                (RAW_SET, "redis", await run_ops(RAW_SET, redis_set(client), c, args.duration, WARMUP, HTTP_TIMEOUT))
            )
        finally:
            await client.aclose()
    return gets + sets


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


def levels(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, not {text!r}")
    return values


def parse_args() -> argparse.Namespace:
    """``bench_args``'s command line (--duration, --no-etcd) plus this bench's own options."""
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument(
        "--concurrency",
        type=levels,
        default=CONCURRENCY,
        metavar="1,16,64",
        help="concurrency levels of every row (default: 1,16,64)",
    )
    own.add_argument(
        "--miss-keys",
        type=int,
        default=None,
        metavar="N",
        help="keys prefilled for each miss row (default: estimated from the hit row)",
    )
    own.add_argument(
        "--cache-capacity",
        type=int,
        default=CACHE_CAPACITY,
        metavar="N",
        help=f"--cache-capacity of every node (default: {CACHE_CAPACITY:,})",
    )
    mine, rest = own.parse_known_args()
    if mine.cache_capacity < HOT_KEYS or (mine.miss_keys is not None and mine.miss_keys < 1):
        own.error(f"--cache-capacity must be at least {HOT_KEYS} and --miss-keys at least 1")
    own_help = own.format_help()
    sys.argv[1:] = rest
    args = bench_args((__doc__ or "") + "\nbench/cache.py " + own_help[own_help.index("\n\n") + 2 :])
    for name, val in vars(mine).items():
        setattr(args, name, val)
    return args


def main() -> None:
    args = parse_args()  # --no-etcd: accepted, no-op
    notes: list[str] = []
    rows = asyncio.run(bench(args, notes))
    print_table(
        "Cache gets and sets (3 nodes, one machine; redis-py against the bench's redis-server)",
        [table_row(*row) for row in rows],
        HEADERS,
    )
    for workload, target, r in rows:
        if r.error_samples:
            print(f"  {workload} →{target} c={r.concurrency}: {r.errors} errors, such as:")
            for sample in r.error_samples:
                print(f"    {sample}")
    for note in notes:
        print(f"  note: {note}")
    by = {(w, r.concurrency): r for w, _, r in rows}
    table = []
    for c in args.concurrency:
        hit, get, put, raw_set = by.get((HIT, c)), by.get((RAW_GET, c)), by.get((SET, c)), by.get((RAW_SET, c))
        table.append(
            [
                str(c),
                ratio(hit.ops_per_s, get.ops_per_s) if hit and get else "—",
                ratio(hit.pct(50), get.pct(50)) if hit and get else "—",
                ratio(put.ops_per_s, raw_set.ops_per_s) if put and raw_set else "—",
                ratio(put.pct(50), raw_set.pct(50)) if put and raw_set else "—",
            ]
        )
    print_table(
        "Ratios rakit/redis-py (ops/s: higher is better; p50: lower is better)",
        table,
        ["conc", "hits/GET ops/s", "hits/GET p50", "sets/SET ops/s", "sets/SET p50"],
    )
    for workload, raw, target, what in ((HIT, RAW_GET, 0.50, "hits"), (SET, RAW_SET, 0.25, "sets")):
        ours, theirs = by.get((workload, 64)), by.get((raw, 64))
        if ours is not None and theirs is not None and theirs.ops_per_s:
            share = ours.ops_per_s / theirs.ops_per_s
            verdict = "meets" if share >= target else "misses"
            print(f"{what} at 64: {share:.0%} of {raw}'s ops/s ({verdict} the ≥ {target:.0%} target)")


if __name__ == "__main__":
    main()
