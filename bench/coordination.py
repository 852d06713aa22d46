"""Semaphores, leader election and sessions on a local 3-node cluster, against locks and etcd.

    .venv/bin/python bench/coordination.py [--duration 5] [--concurrency 1,16,64] [--rounds 3]
        [--handovers 40] [--keepalive-window 15] [--no-etcd] [--quick]

One run, three tables (nodes, etcd and load generator all on this machine):

(a) **Semaphore pairs next to lock pairs.**  One op is a *pair*: acquire,
    then release once granted (two dependent requests, timed together).
    ``uncontended``: each worker its own name and client id — a semaphore
    ``{"limit": 1}`` (POST /semaphore/acquire, /semaphore/release) beside an
    exclusive lock (POST /lock/acquire, /lock/release), ttl 30, at each
    ``--concurrency``; ``contended``: 16 workers on one semaphore of limit 4
    (``"timeout": 30``: they wait FIFO), beside 16 workers on one lock.  Each
    row is sent to the leader, and to a random node (each worker sticks to a
    node drawn at random, the leader included; followers forward).  Rows
    compared with each other are measured in ``--rounds`` turns, pooled.  The
    ratio table divides semaphore by lock (goal: ≥ 0.90×).
(b) **Election hand-over.**  Candidates A and B on one election: A leads, B
    campaigns with ``"timeout": 30`` (a long poll) and is seen waiting in GET
    /election/leader; then the clock starts as A's POST /election/resign is
    sent and stops when B's campaign is answered ``elected``.  Then the roles
    swap, ``--handovers`` times.  etcd the same way through its gateway, one
    lease per candidate: POST /v3/election/campaign ``{"name", "lease",
    "value"}`` (blocks until elected; B is seen waiting when its key exists)
    and POST /v3/election/resign ``{"leader"}``.  rakit and etcd hand-overs
    alternate one by one; the last line gives rakit/etcd (goal: ≤ 0.5×).
(c) **Keepalive cost of 1,000 holds.**  ``idle``: the cluster with nothing
    held; ``session``: one session (ttl 9) with 1,000 locks attached to it,
    POST /session/keepalive every ttl/3; ``separate``: 1,000 locks of ttl 9,
    each renewed (POST /lock/renew) every ttl/3 on its own phase.  Over a
    ``--keepalive-window`` (after one period of warm-up): the requests the
    client sent, per minute, and each node's CPU (utime+stime from
    /proc/<pid>/stat) in µs per second.

The rakit cluster starts its own Redis on a free port.  ``--quick`` is a
smoke run (short rows, few hand-overs, a short window).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import sys
import tempfile
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
from etcd_cluster import EtcdCluster, b64, ensure_etcd
from fasthttp import Connection
from keepalive_cost import keepalive_costs, print_costs
from loadgen import LoadResult, Op, OpError, bench_args, print_table, run_ops
from locks import call
from rakit.launcher import LocalCluster

CONCURRENCY = (1, 16, 64)
CONTENDED = 16
CONTENDED_LIMIT = 4
TTL = 30
WAIT = 30  # seconds a contended acquire or a waiting campaign may wait
HTTP_TIMEOUT = WAIT + 5.0
HANDOVERS = 40
KEEPALIVE_WINDOW = 15.0
PAIR_HEADERS = ["workload", "target", "conc", "pairs/s", "p50 ms", "p99 ms", "errors"]

_rows = itertools.count()  # fresh names per slice: no slice sees another's leftovers


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b and a == a and b == b else "—"


@dataclass
class Rakit:
    cluster: LocalCluster
    leader: str
    urls: list[str]  # every node, the leader included

    def pids(self) -> dict[str, int]:
        return {i: n.pid for i, n in self.cluster.nodes.items() if n.pid is not None}


@contextlib.contextmanager
def rakit_cluster() -> Iterator[Rakit]:
    with tempfile.TemporaryDirectory(prefix="rakit-bench-") as tmp:
        cluster = LocalCluster(3, Path(tmp))  # its own Redis on a free port, never the shared one
        try:
            cluster.start()
            leader_id = cluster.wait_for_leader(timeout=15)
            yield Rakit(cluster, cluster.nodes[leader_id].url, [n.url for n in cluster.nodes.values()])
        finally:
            cluster.stop()


# --- (a) semaphore pairs next to lock pairs ---------------------------------------------------


def pair_op(kind: str, url_of: Callable[[int], str], name: Callable[[int], str], tag: str, contended: bool) -> Op:
    """A semaphore (``kind`` "semaphore") or exclusive lock ("lock") acquire+release pair."""
    key = "name" if kind == "semaphore" else "resource"
    limit = {"limit": CONTENDED_LIMIT if contended else 1} if kind == "semaphore" else {}
    wait = {"timeout": WAIT} if contended else {}

    async def op(session: Connection, w: int, seq: int) -> None:
        url, ident = url_of(w), {key: name(w), "client_id": f"{tag}-client-{w}"}
        granted = await call(session, "POST", f"{url}/{kind}/acquire", {**ident, **limit, **wait, "ttl": TTL})
        if not (isinstance(granted, dict) and granted.get("acquired")):
            raise OpError(f"acquire answered {granted!r:.120}")
        await call(session, "POST", f"{url}/{kind}/release", ident)

    return op


Slice = Callable[[float], Awaitable[LoadResult]]  # seconds -> one slice of a row


def pair_slice(rakit: Rakit, label: str, kind: str, target: str, c: int, contended: bool) -> Slice:
    def run(seconds: float) -> Awaitable[LoadResult]:
        tag = f"{kind[0]}{next(_rows)}"
        picks = [random.choice(rakit.urls) for _ in range(c)]  # "random": each worker sticks to one node
        url_of = (lambda w: rakit.leader) if target == "leader" else (lambda w: picks[w])
        name = (lambda w: f"{tag}-hot") if contended else (lambda w: f"{tag}-res-{w}")
        op = pair_op(kind, url_of, name, tag, contended)
        return run_ops(f"{label} →{target}", op, c, seconds, timeout=HTTP_TIMEOUT)

    return run


PairRow = tuple[str, str, LoadResult]  # (workload, target, result)


async def pairs(rakit: Rakit, concurrency: tuple[int, ...], duration: float, rounds: int) -> list[PairRow]:
    rows: list[PairRow] = []
    shapes = [(c, False) for c in concurrency] + [(CONTENDED, True)]
    for c, contended in shapes:
        group: list[tuple[tuple[str, str], Slice]] = []
        for target in ("leader", "random"):
            for kind in ("lock", "semaphore"):
                shape = f"limit {CONTENDED_LIMIT}, contended" if contended and kind == "semaphore" else ""
                label = f"{kind} {shape or ('contended' if contended else 'uncontended')}"
                group.append(((label, target), pair_slice(rakit, label, kind, target, c, contended)))
        rows.extend((w, t, r) for (w, t), r in await in_turns(group, duration, rounds))
    return rows


def print_pairs(rows: list[PairRow]) -> None:
    print_table(
        "(a) Semaphore and exclusive-lock acquire+release pairs (3 nodes, fsync on, one machine)",
        [
            [w, t, str(r.concurrency), f"{r.ops_per_s:,.0f}", f"{r.pct(50):.2f}", f"{r.pct(99):.2f}", str(r.errors)]
            for w, t, r in rows
        ],
        PAIR_HEADERS,
    )
    for w, t, r in rows:
        if r.error_samples:
            print(f"  {w} →{t} c={r.concurrency}: {r.errors} errors, such as:")
            for sample in r.error_samples:
                print(f"    {sample}")
    locks = {(t, r.concurrency, "un" not in w): r for w, t, r in rows if w.startswith("lock")}
    ratios = []
    for w, t, r in rows:
        lock = locks.get((t, r.concurrency, "un" not in w))
        if w.startswith("semaphore") and lock is not None:
            ratios.append(
                [
                    f"{w.removeprefix('semaphore ')} →{t}",
                    str(r.concurrency),
                    ratio(r.ops_per_s, lock.ops_per_s),
                    ratio(r.pct(50), lock.pct(50)),
                    ratio(r.pct(99), lock.pct(99)),
                ]
            )
    print_table(
        "Ratios semaphore/lock, same run (goal: pairs/s ≥ 0.90×)",
        ratios,
        ["workload", "conc", "pairs/s ratio", "p50 ratio", "p99 ratio"],
    )


# --- (b) election hand-over ---------------------------------------------------------------------


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:g} s")
        await asyncio.sleep(0.002)


class RakitElection:
    """Two candidates on one rakit election; ``handover()`` moves the leadership to the other."""

    def __init__(self, url: str) -> None:
        self.url, self.name = url, f"bench-election-{os.getpid()}"
        self.conns = {"A": Connection(HTTP_TIMEOUT), "B": Connection(HTTP_TIMEOUT)}
        self.probe = Connection(HTTP_TIMEOUT)
        self.leader = "A"

    def campaign(self, who: str, wait: float) -> Awaitable[Any]:
        body = {"name": self.name, "candidate_id": who, "value": {"host": who}, "ttl": TTL, "timeout": wait}
        return call(self.conns[who], "POST", self.url + "/election/campaign", body)

    async def start(self) -> None:
        elected = await self.campaign("A", 0)
        if not elected.get("elected"):
            raise OpError(f"campaign answered {elected!r:.120}")

    async def handover(self) -> float:
        old, new = self.leader, "B" if self.leader == "A" else "A"
        waiting = asyncio.ensure_future(self.campaign(new, WAIT))

        async def queued() -> bool:
            state = await call(self.probe, "GET", f"{self.url}/election/leader/{self.name}")
            return new in state.get("candidates", [])

        await wait_for(queued, 10, f"{new} waiting")
        t0 = time.perf_counter()
        await call(self.conns[old], "POST", self.url + "/election/resign", {"name": self.name, "candidate_id": old})
        elected = await waiting
        t1 = time.perf_counter()
        if not (elected.get("elected") and elected.get("leader") == new):
            raise OpError(f"campaign answered {elected!r:.120}")
        self.leader = new
        return t1 - t0


class EtcdElection:
    """The same through etcd's gateway: one lease per candidate, the leader key from campaign."""

    def __init__(self, etcd: EtcdCluster, url: str) -> None:
        self.url, self.name = url, f"bench-election-{os.getpid()}"
        self.leases = {who: etcd.grant_lease(TTL, url) for who in ("A", "B")}
        self.conns = {"A": Connection(HTTP_TIMEOUT), "B": Connection(HTTP_TIMEOUT)}
        self.probe = Connection(HTTP_TIMEOUT)
        self.leader, self.key = "A", None

    async def campaign(self, who: str) -> Any:
        body = {"name": b64(self.name), "lease": self.leases[who], "value": b64(who)}
        answer = await call(self.conns[who], "POST", self.url + "/v3/election/campaign", body)
        if not (isinstance(answer, dict) and isinstance(answer.get("leader"), dict)):
            raise OpError(f"campaign answered {answer!r:.120}")
        return answer["leader"]

    async def start(self) -> None:
        self.key = await self.campaign("A")

    async def candidates(self) -> int:
        prefix = self.name + "/"
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        body = {"key": b64(prefix), "range_end": b64(end), "count_only": True}
        answer = await call(self.probe, "POST", self.url + "/v3/kv/range", body)
        return int(answer.get("count", 0))

    async def handover(self) -> float:
        old, new = self.leader, "B" if self.leader == "A" else "A"
        waiting = asyncio.ensure_future(self.campaign(new))

        async def queued() -> bool:
            return await self.candidates() >= 2

        await wait_for(queued, 10, f"etcd candidate {new} waiting")
        t0 = time.perf_counter()
        await call(self.conns[old], "POST", self.url + "/v3/election/resign", {"leader": self.key})
        self.key = await waiting
        t1 = time.perf_counter()
        self.leader = new
        return t1 - t0


async def handovers(rakit: Rakit, etcd: EtcdCluster | None, n: int) -> dict[str, list[float]]:
    """``n`` hand-overs of each, rakit and etcd alternating one by one (the order flipping each time)."""
    sides: dict[str, RakitElection | EtcdElection] = {"rakit": RakitElection(rakit.leader)}
    if etcd is not None:
        sides["etcd"] = EtcdElection(etcd, etcd.leader_url())
    for side in sides.values():
        await side.start()
    times: dict[str, list[float]] = {name: [] for name in sides}
    order = list(sides)
    for i in range(n):
        for name in order if i % 2 == 0 else order[::-1]:
            times[name].append(await sides[name].handover())
    for name, values in times.items():
        print(f"  done: {name} hand-over ×{len(values)}  p50 {pct(values, 50):.2f} ms", file=sys.stderr, flush=True)
    return times


def print_handovers(times: dict[str, list[float]]) -> None:
    rows = [
        [f"{name} resign → next campaign elected", str(len(v)), f"{pct(v, 50):.2f}", f"{pct(v, 99):.2f}"]
        for name, v in times.items()
    ]
    print_table("(b) Election hand-over (3 nodes, via the leader)", rows, ["workload", "n", "p50 ms", "p99 ms"])
    if "etcd" in times:
        r, e = times["rakit"], times["etcd"]
        print(
            f"  rakit/etcd hand-over latency: p50 {ratio(pct(r, 50), pct(e, 50))}, "
            f"p99 {ratio(pct(r, 99), pct(e, 99))} (goal: ≤ 0.50×)"
        )


# --- the command --------------------------------------------------------------------------------


def levels(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, not {text!r}")
    return values


def parse_args() -> argparse.Namespace:
    """``bench_args``'s command line (--duration, --rounds, --no-etcd) plus this bench's own options."""
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--concurrency", type=levels, default=CONCURRENCY, metavar="1,16,64", help="uncontended rows")
    own.add_argument("--handovers", type=int, default=HANDOVERS, metavar="N", help="election hand-overs of each")
    own.add_argument("--keepalive-window", type=float, default=KEEPALIVE_WINDOW, metavar="S", help="seconds")
    own.add_argument("--quick", action="store_true", help="a smoke run: 1 s rows, 1 round, 6 hand-overs, 3 s window")
    mine, rest = own.parse_known_args()
    own_help = own.format_help()
    sys.argv[1:] = rest
    args = bench_args((__doc__ or "") + "\nbench/coordination.py " + own_help[own_help.index("\n\n") + 2 :])
    for name, val in vars(mine).items():
        setattr(args, name, val)
    if args.quick:
        args.duration, args.rounds, args.handovers, args.keepalive_window = 1.0, 1, 6, 3.0
    if args.handovers < 1 or args.keepalive_window <= 0:
        own.error("--handovers must be at least 1 and --keepalive-window positive")
    return args


async def bench(args: argparse.Namespace) -> None:
    binary = None if args.no_etcd else ensure_etcd()
    if not args.no_etcd and binary is None:
        print("etcd-server is not installed and could not be installed: no etcd hand-over rows")
    with rakit_cluster() as rakit, contextlib.ExitStack() as stack:
        etcd = stack.enter_context(EtcdCluster(binary)) if binary is not None else None
        pair_rows = await pairs(rakit, args.concurrency, args.duration, max(1, args.rounds))
        times = await handovers(rakit, etcd, args.handovers)
        if etcd is not None:
            stack.close()  # etcd stopped: its CPU stays out of the keepalive window
        costs = await keepalive_costs(rakit.leader, rakit.pids(), args.keepalive_window)
    print_pairs(pair_rows)
    print_handovers(times)
    print_costs(costs)


def main() -> None:
    asyncio.run(bench(parse_args()))


if __name__ == "__main__":
    main()
