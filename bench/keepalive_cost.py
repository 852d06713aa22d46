"""Keepalive cost of 1,000 holds: one session's keepalive against 1,000 separately renewed locks.

Part (c) of ``bench/coordination.py`` (see its docstring).  Rows, each over the
same window after one renewal period of warm-up, on a cluster with nothing
else held: ``idle``; ``session`` (one session of ttl 9 with 1,000 locks
attached, one POST /session/keepalive every ttl/3); ``separate`` (1,000 locks
of ttl 9, each renewed by POST /lock/renew every ttl/3 on its own phase).  The
requests counted are the ones this client sent in the window (the nodes
have no request counter); node CPU is utime+stime from /proc/<pid>/stat
(clock ticks: 10 ms at 100 Hz, so a short window is coarse).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fasthttp import Connection
from loadgen import print_table
from locks import HTTP_TIMEOUT, call

HOLDS = 1000
KEEPALIVE_TTL = 9  # renewed every ttl/3 = 3 s
RENEWERS = 16  # connections the separately renewed locks are renewed over
SETUP_CONCURRENCY = 16


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    return int(fields[11]) + int(fields[12])


@dataclass
class Cost:
    name: str
    sent: int
    errors: int
    late: int  # renewals sent more than one period after they were due
    window: float
    cpu_us_per_s: dict[str, float]
    error_sample: str


async def parallel(n: int, work: Callable[[Connection, int], Awaitable[None]]) -> None:
    """``work(conn, i)`` for i in range(n), over SETUP_CONCURRENCY connections."""
    items = iter(range(n))

    async def worker() -> None:
        conn = Connection(HTTP_TIMEOUT)
        for i in items:
            await work(conn, i)
        conn.close()

    await asyncio.gather(*(worker() for _ in range(SETUP_CONCURRENCY)))


async def renew_schedule(
    name: str,
    leader: str,
    pids: dict[str, int],
    calls: list[tuple[str, dict[str, Any]]],
    connections: int,
    window: float,
) -> Cost:
    """Each call of ``calls`` sent every ttl/3, call j on phase j/len(calls) of the period, over
    ``connections`` connections, for one period of warm-up and then ``window`` seconds; counts the
    calls sent in the window and the nodes' CPU over it."""
    period = KEEPALIVE_TTL / 3
    start = time.perf_counter() + 0.05
    measure_from, stop_at = start + period, start + period + window
    counts = {"sent": 0, "errors": 0, "late": 0}
    samples: list[str] = []

    async def sender(k: int) -> None:
        conn = Connection(HTTP_TIMEOUT)
        mine = range(k, len(calls), connections)
        if not mine:  # idle: nothing to send, the CPU probe alone measures
            return
        for cycle in itertools.count():
            for j in mine:
                due = start + cycle * period + j * period / len(calls)
                if due >= stop_at:
                    conn.close()
                    return
                now = time.perf_counter()
                if due > now:
                    await asyncio.sleep(due - now)
                elif now - due > period:
                    counts["late"] += 1
                path, body = calls[j]
                in_window = due >= measure_from
                try:
                    await call(conn, "POST", leader + path, body)
                except Exception as exc:
                    counts["errors"] += in_window
                    samples[:] = samples or [f"{type(exc).__name__} {exc}"[:160]]
                counts["sent"] += in_window

    async def cpu_probe() -> tuple[dict[str, int], dict[str, int]]:
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        before = {i: cpu_ticks(p) for i, p in pids.items()}
        await asyncio.sleep(max(0.0, stop_at - time.perf_counter()))
        return before, {i: cpu_ticks(p) for i, p in pids.items()}

    probe = asyncio.ensure_future(cpu_probe())
    await asyncio.gather(*(sender(k) for k in range(connections)))
    before, after = await probe
    hz = os.sysconf("SC_CLK_TCK")
    cpu = {i: (after[i] - before[i]) / hz * 1e6 / window for i in pids}
    return Cost(name, counts["sent"], counts["errors"], counts["late"], window, cpu, "".join(samples))


async def keepalive_costs(leader: str, pids: dict[str, int], window: float) -> list[Cost]:
    costs = [await renew_schedule("idle (nothing held)", leader, pids, [], 1, window)]
    # One session, 1,000 locks attached to it, one keepalive per period.
    setup = Connection(HTTP_TIMEOUT)
    session = await call(setup, "POST", leader + "/session/grant", {"client_id": "ka", "ttl": KEEPALIVE_TTL})
    sid = session["session_id"]

    async def attach(conn: Connection, i: int) -> None:
        body = {"resource": f"ka-s-{i}", "client_id": "ka", "session_id": sid}
        await call(conn, "POST", leader + "/lock/acquire", body)

    await parallel(HOLDS, attach)
    keepalive = [("/session/keepalive", {"session_id": sid})]
    costs.append(await renew_schedule(f"session: 1 keepalive for {HOLDS:,} locks", leader, pids, keepalive, 1, window))
    await call(setup, "POST", leader + "/session/revoke", {"session_id": sid})

    # 1,000 locks of their own, each renewed every period.
    def lock(i: int) -> dict[str, Any]:
        return {"resource": f"ka-l-{i}", "client_id": "ka-l"}

    async def take(conn: Connection, i: int) -> None:
        await call(conn, "POST", leader + "/lock/acquire", {**lock(i), "ttl": KEEPALIVE_TTL})

    await parallel(HOLDS, take)
    renewals = [("/lock/renew", {**lock(i), "ttl": KEEPALIVE_TTL}) for i in range(HOLDS)]
    costs.append(await renew_schedule(f"separate: {HOLDS:,} locks renewed", leader, pids, renewals, RENEWERS, window))

    async def release(conn: Connection, i: int) -> None:
        await call(conn, "POST", leader + "/lock/release", lock(i))

    await parallel(HOLDS, release)
    setup.close()
    for c in costs:
        print(f"  done: keepalive {c.name:<36} {c.sent * 60 / c.window:>9,.0f} req/min", file=sys.stderr, flush=True)
    return costs


def print_costs(costs: list[Cost]) -> None:
    nodes = sorted({i for c in costs for i in c.cpu_us_per_s})
    rows = [
        [
            c.name,
            f"{c.sent * 60 / c.window:,.0f}",
            str(c.errors),
            str(c.late),
            *(f"{c.cpu_us_per_s[i]:,.0f}" for i in nodes),
            f"{sum(c.cpu_us_per_s.values()):,.0f}",
        ]
        for c in costs
    ]
    headers = ["workload", "req/min", "errors", "late", *(f"{i} µs/s" for i in nodes), "total µs/s"]
    window = costs[0].window if costs else 0.0
    print_table(f"(c) Keepalive cost, ttl {KEEPALIVE_TTL} s, renewed every ttl/3, {window:g} s window", rows, headers)
    for c in costs:
        if c.error_sample:
            print(f"  {c.name}: {c.errors} errors, such as: {c.error_sample}")
