"""The chaos clients of the coordination primitives: semaphores and leader election.

Built like the lock workload (``workloads``): each process makes one request
at a time to its own node, with a bounded total timeout (2 s, plus the
request's own wait), and records every request as an ``Op``; answers are
classified by ``workloads.classify`` (``409``/``404``/``422`` a definite
refusal, a timeout or ``503`` unknown).  Every client id and candidate id is
fresh per hold, so a hold's requests are exactly those of one id.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rakit.chaos.history import Op
from rakit.chaos.workloads import WORKLOADS, Context, classify, pause
from rakit.chaos.workloads_kv import KV_WORKLOADS

COORDINATION_WORKLOADS = ("semaphores", "elections")
ALL_WORKLOADS = (*WORKLOADS, *COORDINATION_WORKLOADS, *KV_WORKLOADS)
REQUEST_SECONDS = 2.0  # each request's total timeout beyond its own wait


async def _call(
    ctx: Context, workload: str, process: int, f: str, method: str, path: str, args: dict[str, Any], wait: float = 0.0
) -> Op:
    node = ctx.home(process)
    body = args if method == "POST" else None
    send = functools.partial(ctx.request, method, node, path, body, wait + REQUEST_SECONDS)
    return await ctx.record(workload, process, f, node, args, send, classify)


async def _hold(ctx: Context, seconds: float, renew_every: float | None, renew: Any) -> bool:
    """Hold ``seconds``, calling ``renew()`` every ``renew_every`` (None: never); False once a renew was not ok."""
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    while (left := until - loop.time()) > 0:
        await asyncio.sleep(left if renew_every is None else min(left, renew_every))
        if renew_every is not None and until - loop.time() > 0 and (await renew()).type != "ok":
            return False
    return True


# --------------------------------------------------------------------------
# Semaphores
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SemaphoreSettings:
    processes: int = 6
    limits: dict[str, int] = field(default_factory=lambda: {"s0": 2, "s1": 3})
    ttl: float = 2.0
    wait: float = 1.0  # the acquire's own FIFO wait (``timeout`` in the API)
    hold: tuple[float, float] = (0.05, 0.4)
    # Some holds run past the ttl without renewing: the lease lapses and the late release is refused.
    long_hold: tuple[float, float] = (2.2, 3.0)
    long_fraction: float = 0.15
    renew_fraction: float = 0.4  # holds that renew every ttl/3 and last up to two ttls
    two_permit_fraction: float = 0.2
    status_every: float = 0.3  # the status poller's gap


async def semaphore_process(ctx: Context, process: int, s: SemaphoreSettings) -> None:
    """Acquire (fresh client id each time), hold (renewing or not), release; until stop."""
    rng = ctx.rng("semaphores", process)
    seq = 0
    while not ctx.stop.is_set():
        seq += 1
        name = rng.choice(sorted(s.limits))
        limit = s.limits[name]
        client = f"p{process}-{seq}"
        permits = 2 if limit > 2 and rng.random() < s.two_permit_fraction else 1
        args = {"name": name, "client_id": client, "limit": limit, "permits": permits, "ttl": s.ttl, "timeout": s.wait}
        op = await _call(ctx, "semaphores", process, "acquire", "POST", "/semaphore/acquire", args, s.wait)
        if op.type != "ok":
            await pause(ctx, rng.uniform(0.02, 0.1))
            continue
        key = {"name": name, "client_id": client}
        renew = functools.partial(
            _call, ctx, "semaphores", process, "renew", "POST", "/semaphore/renew", {**key, "ttl": s.ttl}
        )
        draw = rng.random()
        if draw < s.long_fraction:
            await _hold(ctx, rng.uniform(*s.long_hold), None, renew)
        elif draw < s.long_fraction + s.renew_fraction:
            await _hold(ctx, rng.uniform(s.ttl / 2, 2 * s.ttl), s.ttl / 3, renew)
        else:
            await _hold(ctx, rng.uniform(*s.hold), None, renew)
        await _call(ctx, "semaphores", process, "release", "POST", "/semaphore/release", key)


async def semaphore_status_process(ctx: Context, process: int, s: SemaphoreSettings) -> None:
    """Read every semaphore's status in turn (the snapshots the checker's rule 3 judges)."""
    rng = ctx.rng("semaphores", process)
    while not ctx.stop.is_set():
        for name in sorted(s.limits):
            await _call(ctx, "semaphores", process, "status", "GET", f"/semaphore/status/{name}", {"name": name})
        await pause(ctx, rng.uniform(0.5, 1.5) * s.status_every)


# --------------------------------------------------------------------------
# Leader election
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ElectionSettings:
    candidates: int = 4
    observers: int = 2
    name: str = "e0"
    ttl: float = 2.0
    wait: float = 1.0  # the campaign's own FIFO wait
    lead: tuple[float, float] = (0.3, 3.0)  # how long a leader leads, renewing every ttl/3
    lapse_fraction: float = 0.25  # leaders that stop renewing and walk away without resigning
    observe_timeout: float = 1.0


async def candidate_process(ctx: Context, process: int, s: ElectionSettings) -> None:
    """Campaign (fresh candidate id each time), lead a while renewing, then resign or let the lease lapse."""
    rng = ctx.rng("elections", process)
    seq = 0
    while not ctx.stop.is_set():
        seq += 1
        key = {"name": s.name, "candidate_id": f"c{process}-{seq}"}
        args = {**key, "value": {"p": process, "n": seq}, "ttl": s.ttl, "timeout": s.wait}
        op = await _call(ctx, "elections", process, "campaign", "POST", "/election/campaign", args, s.wait)
        if op.type == "fail":
            await pause(ctx, rng.uniform(0.02, 0.1))
            continue
        if op.type == "ok":
            renew = functools.partial(
                _call, ctx, "elections", process, "renew", "POST", "/election/renew", {**key, "ttl": s.ttl}
            )
            led = await _hold(ctx, rng.uniform(*s.lead), s.ttl / 3, renew)
            if led and rng.random() < s.lapse_fraction:
                await pause(ctx, s.ttl)  # walks away: the lease lapses on its own
                continue
        # resign, also after an unknown campaign: a candidacy it may have left behind is withdrawn
        await _call(ctx, "elections", process, "resign", "POST", "/election/resign", key)


async def observer_process(ctx: Context, process: int, s: ElectionSettings) -> None:
    """Long-poll the election for a term above the last one seen."""
    rng = ctx.rng("elections", process)
    after = 0
    while not ctx.stop.is_set():
        args = {"name": s.name, "after_term": after, "timeout": s.observe_timeout}
        path = f"/election/observe/{s.name}?after_term={after}&timeout={s.observe_timeout}"
        op = await _call(ctx, "elections", process, "observe", "GET", path, args, s.observe_timeout)
        term = op.result.get("term") if op.type == "ok" and isinstance(op.result, dict) else None
        if isinstance(term, int) and not isinstance(term, bool) and term > after:
            after = term
        elif op.type != "ok":
            await pause(ctx, rng.uniform(0.05, 0.2))


# --------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CoordinationSettings:
    semaphores: SemaphoreSettings = field(default_factory=SemaphoreSettings)
    elections: ElectionSettings = field(default_factory=ElectionSettings)


def start(ctx: Context, workloads: Sequence[str], settings: CoordinationSettings) -> list[asyncio.Task[None]]:
    """Start every process of the chosen coordination workloads (numbered after each other, from 0)."""
    tasks: list[asyncio.Task[None]] = []

    def spawn(coro: Awaitable[None], name: str) -> None:
        tasks.append(asyncio.ensure_future(coro))
        tasks[-1].set_name(name)

    if "semaphores" in workloads:
        sem = settings.semaphores
        for p in range(sem.processes):
            spawn(semaphore_process(ctx, p, sem), f"semaphore-{p}")
        spawn(semaphore_status_process(ctx, sem.processes, sem), f"semaphore-status-{sem.processes}")
    if "elections" in workloads:
        el = settings.elections
        for p in range(el.candidates):
            spawn(candidate_process(ctx, p, el), f"candidate-{p}")
        for p in range(el.candidates, el.candidates + el.observers):
            spawn(observer_process(ctx, p, el), f"observer-{p}")
    return tasks
