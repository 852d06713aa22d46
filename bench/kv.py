"""rakit's KV against a 3-member etcd started in the same run: ops/s, p50 and p99 by concurrency.

    PYTHONPATH=src .venv/bin/python bench/kv.py [--duration 5] [--rounds 3] [--concurrency 1,16,64]
        [--workloads put,get,serializable,txn,watch] [--watchers 100] [--watch-writers 1]
        [--watch-paces 20,0] [--no-etcd] [--quick]

A local 3-node rakit cluster (its own Redis on a free port) and a 3-member
etcd 3.4 (Debian's etcd-server, through its HTTP/JSON gateway) run at once on
this machine with the load generator (``bench/fasthttp.py``, one keep-alive
connection per worker).  Every workload is sent to each system's leader and
to one of its followers, at each ``--concurrency``:

- ``put``: rakit POST /kv/put ``{"key": "kvp-<worker>", "value": <32 chars>}``;
  etcd POST /v3/kv/put (base64 key and value);
- ``get`` (linearizable): rakit GET /kv/get/<key>; etcd POST /v3/kv/range
  ``{"key"}``; the key drawn from 1,000 keys written before the first row;
- ``serializable``: the same with ``?consistency=serializable``; etcd with
  ``"serializable": true`` (a node's own state, possibly stale);
- ``txn``: a compare-and-set: each worker its own key holding a counter;
  compare value == the last value it wrote, success: put value + 1,
  failure: get (the worker then resyncs; a failed compare is an error).
  rakit POST /kv/txn; etcd POST /v3/kv/txn (``"target": "VALUE"``);
- ``watch``: fan-out, see ``bench/kv_watch.py``: ``--watchers`` streams on one
  prefix on the target node, ``--watch-writers`` writers putting keys under
  it through the leader, at each of ``--watch-paces`` (puts/s; 0: as fast as
  answered); put→event latency p50/p99, events/s delivered, lost events, and
  the load generator's CPU share.

Non-2xx answers count as errors and are not in the latencies.  Rows compared
with each other (one workload and concurrency: both systems, both targets)
are measured in ``--rounds`` turns of ``duration/rounds`` s, forward then
backward, pooled, so that the machine's drift falls on all of them alike.
Ratio tables: rakit/etcd per row (same target), and follower/leader for rakit.
``--quick`` is a smoke run (1 s rows, 1 round).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import itertools
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# bench/queue.py would shadow the standard library's queue module (which the
# launcher's thread pool imports): bench/ goes to the end of the path instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]

from clusters import in_turns
from coordination import levels, rakit_cluster, ratio
from etcd_cluster import EtcdCluster, b64, ensure_etcd
from fasthttp import Connection
from kv_watch import WatchResult, WatchSide, watch_slice
from loadgen import LoadResult, Op, OpError, RequestFn, bench_args, print_table, run_load, run_ops
from locks import call

CONCURRENCY = (1, 16, 64)
WORKLOADS = ("put", "get", "serializable", "txn", "watch")
WATCHERS = 100
WATCH_WRITERS = (1,)
WATCH_PACES = (20.0, 0.0)  # puts/s over all writers: one pace both systems sustain here, then as fast as answered
READ_KEYS = 1000
PREFILL_CONCURRENCY = 16
WARMUP = 0.5
VALUE = "v" * 32
HEADERS = ["workload", "system", "target", "conc", "ops/s", "p50 ms", "p99 ms", "errors", "gen CPU"]
WATCH_HEADERS = ["system", "target", "writers", "pace", "puts/s", "events/s", "p50 ms", "p99 ms", "drain s", "lost"]
WATCH_HEADERS += ["errors", "gen CPU"]


@dataclass(frozen=True)
class Side:
    """One system seen through one of its nodes."""

    system: str  # "rakit" | "etcd"
    target: str  # "leader" | "follower"
    url: str
    leader: str


def read_key(w: int, seq: int) -> str:
    return f"kvg-{(w * 7919 + seq * 104729) % READ_KEYS:04d}"


READ_KEYS_B64 = [b64(f"kvg-{i:04d}") for i in range(READ_KEYS)]


def single_request(workload: str, side: Side) -> RequestFn:
    """The one-request workloads (put, get, serializable) as a ``run_load`` request."""
    url = side.url
    if side.system == "rakit":
        if workload == "put":
            return lambda w, s: ("POST", url + "/kv/put", {"key": f"kvp-{w}", "value": VALUE})
        query = "?consistency=serializable" if workload == "serializable" else ""
        return lambda w, s: ("GET", f"{url}/kv/get/{read_key(w, s)}{query}", None)
    if workload == "put":
        value = b64(VALUE)
        return lambda w, s: ("POST", url + "/v3/kv/put", {"key": b64(f"kvp-{w}"), "value": value})
    extra = {"serializable": True} if workload == "serializable" else {}
    return lambda w, s: ("POST", url + "/v3/kv/range", {"key": READ_KEYS_B64[int(read_key(w, s)[4:])], **extra})


def cas_key(side: Side, c: int, w: int) -> str:
    return f"cas-{side.target}-c{c}-{w}"


def cas_op(side: Side, c: int, counters: dict[int, int]) -> Op:
    """Compare-and-set of each worker's counter (``counters``: the value each worker last saw)."""
    url = side.url

    async def rakit_op(conn: Connection, w: int, seq: int) -> None:
        key, old = cas_key(side, c, w), counters[w]
        body = {
            "compare": [{"key": key, "target": "value", "op": "==", "value": old}],
            "success": [{"put": {"key": key, "value": old + 1}}],
            "failure": [{"get": {"key": key}}],
        }
        answer = await call(conn, "POST", url + "/kv/txn", body)
        if answer.get("succeeded") is True:
            counters[w] = old + 1
            return
        got = (answer.get("results") or [None])[0]
        counters[w] = int(got["value"]) if isinstance(got, dict) else 0
        raise OpError(f"compare failed: {old} != {counters[w]}")

    async def etcd_op(conn: Connection, w: int, seq: int) -> None:
        key, old = b64(cas_key(side, c, w)), counters[w]
        body = {
            "compare": [{"key": key, "target": "VALUE", "result": "EQUAL", "value": b64(str(old))}],
            "success": [{"request_put": {"key": key, "value": b64(str(old + 1))}}],
            "failure": [{"request_range": {"key": key}}],
        }
        answer = await call(conn, "POST", url + "/v3/kv/txn", body)
        if answer.get("succeeded") is True:
            counters[w] = old + 1
            return
        kvs = answer.get("responses", [{}])[0].get("response_range", {}).get("kvs", [])
        counters[w] = int(base64.b64decode(kvs[0]["value"])) if kvs else 0
        raise OpError(f"compare failed: {old} != {counters[w]}")

    return rakit_op if side.system == "rakit" else etcd_op


async def put_all(side: Side, items: list[tuple[str, Any]]) -> None:
    """Writes ``items`` (key, value) through ``side``'s leader before any row is measured."""
    pending = iter(items)

    async def worker() -> None:
        conn = Connection(10.0)
        try:
            for key, value in pending:
                if side.system == "rakit":
                    await call(conn, "POST", side.leader + "/kv/put", {"key": key, "value": value})
                else:
                    body = {"key": b64(key), "value": b64(str(value))}
                    await call(conn, "POST", side.leader + "/v3/kv/put", body)
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(PREFILL_CONCURRENCY)))


Slice = Callable[[float], Awaitable[LoadResult]]


class CpuMeter:
    """This process's CPU time over the wall time of the slices run through ``wrap``: near 100 %,
    the load generator (not the server) would be the limit."""

    def __init__(self) -> None:
        self.cpu = self.wall = 0.0

    @property
    def share(self) -> float:
        return self.cpu / self.wall if self.wall else 0.0

    def wrap(self, run: Slice) -> Slice:
        async def timed(seconds: float) -> LoadResult:
            cpu, wall = time.process_time(), time.perf_counter()
            try:
                return await run(seconds)
            finally:
                self.cpu += time.process_time() - cpu
                self.wall += time.perf_counter() - wall

        return timed


Row = tuple[str, Side, LoadResult, CpuMeter]  # (workload, side, result, the generator's CPU share)


async def load_rows(sides: list[Side], args: argparse.Namespace) -> list[Row]:
    """Every request/response workload at every concurrency, each group's rows measured in turns."""
    workloads = [w for w in args.workloads if w != "watch"]
    if {"get", "serializable"} & set(workloads):
        for side in {(s.system, s.leader): s for s in sides}.values():
            await put_all(side, [(f"kvg-{i:04d}", VALUE) for i in range(READ_KEYS)])
    rows: list[Row] = []
    for workload in workloads:
        for c in args.concurrency:
            group: list[tuple[Side, Slice]] = []
            meters = {side: CpuMeter() for side in sides}
            for side in sides:
                name = f"{workload} {side.system}→{side.target}"
                if workload == "txn":
                    counters = dict.fromkeys(range(c), 0)
                    await put_all(side, [(cas_key(side, c, w), 0) for w in range(c)])
                    run = functools.partial(run_ops, name, cas_op(side, c, counters), c)
                else:
                    run = functools.partial(run_load, name, single_request(workload, side), c)
                group.append((side, meters[side].wrap(run)))
            done = await in_turns(group, args.duration, args.rounds)
            rows.extend((workload, side, r, meters[side]) for side, r in done)
    return rows


async def watch_rows(sides: list[Side], args: argparse.Namespace) -> list[tuple[Side, WatchResult]]:
    """Fan-out rows per writer count, the sides in turns (forward, then backward) as ``in_turns`` does."""
    rows: list[tuple[Side, WatchResult]] = []
    for writers, pace in itertools.product(args.watch_writers, args.watch_paces):
        pooled: dict[Side, WatchResult] = {}
        for turn in range(args.rounds):
            for side in sides if turn % 2 == 0 else sides[::-1]:
                watch_side = WatchSide(side.system, side.target, side.url, side.leader)
                seconds = args.duration / args.rounds
                part = await watch_slice(watch_side, args.watchers, writers, pace, seconds, WARMUP)
                progress_watch(part)
                pooled.setdefault(side, WatchResult(part.name, writers, pace, args.watchers)).add(part)
        rows.extend((side, pooled[side]) for side in sides)
    return rows


def progress_watch(r: WatchResult) -> None:
    print(
        f"  done: {r.name:<26} w={r.writers:<3} {pace_text(r.pace):>6} {r.events_per_s:>9,.0f} events/s  "
        f"p50 {r.pct(50):7.2f} ms  p99 {r.pct(99):7.2f} ms  lost {r.lost}  errors {r.errors}  "
        f"gen CPU {r.cpu_share:.0%}",
        file=sys.stderr,
        flush=True,
    )


# --- tables ---------------------------------------------------------------------------------------


def print_load(rows: list[Row]) -> None:
    print_table(
        "KV requests (3 nodes each, fsync on, one machine)",
        [
            [w, s.system, s.target, str(r.concurrency), f"{r.ops_per_s:,.0f}", f"{r.pct(50):.2f}", f"{r.pct(99):.2f}"]
            + [str(r.errors), f"{m.share:.0%}"]
            for w, s, r, m in rows
        ],
        HEADERS,
    )
    for w, s, r, _ in rows:
        if r.error_samples:
            print(f"  {w} {s.system}→{s.target} c={r.concurrency}: {r.errors} errors, such as:")
            for sample in r.error_samples[:3]:
                print(f"    {sample}")
    by = {(w, s.system, s.target, r.concurrency): r for w, s, r, _ in rows}
    versus, spread = [], []
    for w, s, r, _ in rows:
        if s.system != "rakit":
            continue
        e = by.get((w, "etcd", s.target, r.concurrency))
        if e is not None:
            versus.append([w, s.target, str(r.concurrency), *ratios(r.ops_per_s, e.ops_per_s, r, e)])
        leader = by.get((w, "rakit", "leader", r.concurrency))
        if s.target == "follower" and leader is not None:
            spread.append([w, str(r.concurrency), *ratios(r.ops_per_s, leader.ops_per_s, r, leader)])
    ratio_headers = ["ops/s ratio", "p50 ratio", "p99 ratio"]
    if versus:
        print_table(
            "Ratios rakit/etcd, same target, same run (ops/s: higher is better; latency: lower is better)",
            versus,
            ["workload", "target", "conc", *ratio_headers],
        )
    if spread:
        print_table("Ratios rakit follower/leader", spread, ["workload", "conc", *ratio_headers])


def ratios(a_rate: float, b_rate: float, a: LoadResult | WatchResult, b: LoadResult | WatchResult) -> list[str]:
    return [ratio(a_rate, b_rate), ratio(a.pct(50), b.pct(50)), ratio(a.pct(99), b.pct(99))]


def print_watch(rows: list[tuple[Side, WatchResult]]) -> None:
    watchers = rows[0][1].watchers
    print_table(
        f"Watch fan-out: {watchers} watchers on one prefix on the target, writers through the leader; "
        "put→event latency",
        [
            [s.system, s.target, str(r.writers), pace_text(r.pace), f"{r.puts_per_s:,.0f}", f"{r.events_per_s:,.0f}"]
            + [f"{r.pct(50):.2f}", f"{r.pct(99):.2f}", f"{r.drain:.2f}", str(r.lost), str(r.errors)]
            + [f"{r.cpu_share:.0%}"]
            for s, r in rows
        ],
        WATCH_HEADERS,
    )
    for s, r in rows:
        if r.error_samples:
            print(f"  watch {s.system}→{s.target} writers={r.writers} {pace_text(r.pace)}: {r.errors} errors, such as:")
            for sample in r.error_samples:
                print(f"    {sample}")
    by = {(s.system, s.target, r.writers, r.pace): r for s, r in rows}
    table = []
    for s, r in rows:
        shape = [str(r.writers), pace_text(r.pace)]
        e = by.get(("etcd", s.target, r.writers, r.pace))
        if s.system == "rakit" and e is not None:
            table.append([f"rakit/etcd →{s.target}", *shape, *ratios(r.events_per_s, e.events_per_s, r, e)])
        leader = by.get(("rakit", "leader", r.writers, r.pace))
        if s.system == "rakit" and s.target == "follower" and leader is not None:
            table.append(["rakit follower/leader", *shape, *ratios(r.events_per_s, leader.events_per_s, r, leader)])
    if table:
        headers = ["workload", "writers", "pace", "events/s ratio", "p50 ratio", "p99 ratio"]
        print_table("Watch ratios", table, headers)


def pace_text(pace: float) -> str:
    return f"{pace:g}/s" if pace else "max"


# --- the command --------------------------------------------------------------------------------


def workload_list(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [n for n in names if n not in WORKLOADS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"expected some of {','.join(WORKLOADS)}, not {text!r}")
    return names


def paces(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected puts/s (0: as fast as answered) separated by commas, not {text!r}")
    return values


def parse_args() -> argparse.Namespace:
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--concurrency", type=levels, default=CONCURRENCY, metavar="1,16,64", help="workers per row")
    own.add_argument(
        "--workloads", type=workload_list, default=WORKLOADS, metavar=",".join(WORKLOADS), help="the ones to run"
    )
    own.add_argument("--watchers", type=int, default=WATCHERS, metavar="N", help="watch streams per fan-out row")
    own.add_argument(
        "--watch-writers", type=levels, default=WATCH_WRITERS, metavar="1", help="writer counts, a fan-out row each"
    )
    own.add_argument(
        "--watch-paces", type=paces, default=WATCH_PACES, metavar="20,0", help="puts/s of each fan-out row (0: max)"
    )
    own.add_argument("--quick", action="store_true", help="a smoke run: 1 s rows, 1 round")
    args = bench_args(__doc__, own)
    if args.quick:
        args.duration, args.rounds = 1.0, 1
    args.rounds = max(1, args.rounds)
    if args.watchers < 1:
        own.error("--watchers must be at least 1")
    return args


@contextlib.contextmanager
def all_sides(with_etcd: bool) -> Iterator[list[Side]]:
    binary = ensure_etcd() if with_etcd else None
    if with_etcd and binary is None:
        print("etcd-server is not installed and could not be installed: no etcd rows")
    with rakit_cluster() as rakit, contextlib.ExitStack() as stack:
        follower = next(u for u in rakit.urls if u != rakit.leader)
        sides = [Side("rakit", "leader", rakit.leader, rakit.leader), Side("rakit", "follower", follower, rakit.leader)]
        if binary is not None:
            etcd = stack.enter_context(EtcdCluster(binary))
            leader = etcd.leader_url()
            etcd_follower = next(u for u in etcd.urls if u != leader)
            sides += [Side("etcd", "leader", leader, leader), Side("etcd", "follower", etcd_follower, leader)]
        yield sides


async def bench(args: argparse.Namespace) -> None:
    with all_sides(not args.no_etcd) as sides:
        load = await load_rows(sides, args)
        watch = await watch_rows(sides, args) if "watch" in args.workloads else []
    if load:
        print_load(load)
    if watch:
        print_watch(watch)


def main() -> None:
    asyncio.run(bench(parse_args()))


if __name__ == "__main__":
    main()
