"""The chaos clients of the KV: a register workload and CAS counters, both recorded as ``Op``s.

Unlike the other workloads, every KV request goes to a RANDOM node
(``Context.pick``): the KV is linearizable through any node, so the history
mixes leaders, followers and cut-off nodes on every key.

- **Registers** (workload ``kv``): processes do get / put / delete and two
  kinds of compare-and-set on a few keys: by value (``/kv/txn`` compare
  ``value ==`` the value the process last saw, then put) and by revision
  (``/kv/put`` with ``if_revision``: the ``mod_revision`` it last saw).
  Every value written is unique (``p<process>-<seq>``).
- **Counters** (workload ``kv-counters``): processes increment a few keys,
  each by read, then ``/kv/txn`` compare ``value ==`` what was read (or
  ``exists == false`` for an absent key), put read + 1.  Only increments
  change these keys, so a counter's final value is the number of increments
  that took effect (``checkers.kv_counters`` judges it after ``finish`` read
  each counter once more, linearizably, after healing).

Outcomes (``workloads.classify``): ``200`` is ``ok``; a definite refusal
(``409 revision_mismatch``, ``422``, ``404``) or a connection that was never
opened is ``fail``; a timeout, a dropped connection or a ``5xx`` is
``info`` (a write may still take effect).  A txn answered
``succeeded: false`` is a ``fail`` too (nothing was written); its answer is
kept in ``result``, since the checker can use it (the compare was false at
some instant of the request).  A get's ``404 not_found`` is an ``ok`` read
of an absent key.  Each request has a 2 s total timeout; each loop ends when
``stop`` is set.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

from rakit.chaos.checkers.kv_history import write_revision
from rakit.chaos.history import Op
from rakit.chaos.workloads import Answer, Context, classify, pause

KV_WORKLOADS = ("kv",)  # the name that selects both parts
REGISTERS = "kv"
COUNTERS = "kv-counters"
REQUEST_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class KvSettings:
    processes: int = 5
    keys: tuple[str, ...] = ("r0", "r1", "r2")
    # op mix of the register processes (the rest are gets)
    put_fraction: float = 0.25
    cas_fraction: float = 0.25  # half by value (txn), half by revision (put if_revision)
    delete_fraction: float = 0.08
    counter_processes: int = 3
    counters: tuple[str, ...] = ("c0", "c1")
    gap: tuple[float, float] = (0.02, 0.08)


# --------------------------------------------------------------------------
# Answers
# --------------------------------------------------------------------------


def get_result(answer: Answer) -> tuple[str, Any]:
    """A get: ``404 not_found`` is an ok read of an absent key (``{"found": false}``)."""
    if answer.status == 404 and isinstance(answer.body, dict) and answer.body.get("error") == "not_found":
        return "ok", {"found": False}
    kind, result = classify(answer, fail=(422,))
    if kind == "ok":
        result = {**result, "found": True}
    return kind, result


def txn_result(answer: Answer) -> tuple[str, Any]:
    """A txn: ``succeeded: false`` is a definite failure whose answer is kept."""
    kind, result = classify(answer)
    if kind == "ok" and result.get("succeeded") is not True:
        return "fail", result
    return kind, result


def cas_body(key: str, expect: dict[str, Any], value: Any) -> dict[str, Any]:
    """The ``/kv/txn`` of a value CAS: ``expect`` is ``{"value": v}`` or ``{"absent": true}``."""
    if expect.get("absent"):
        compare = {"key": key, "target": "exists", "op": "==", "value": False}
    else:
        compare = {"key": key, "target": "value", "op": "==", "value": expect["value"]}
    return {"compare": [compare], "success": [{"put": {"key": key, "value": value}}], "failure": []}


# --------------------------------------------------------------------------
# Requests (each recorded as one Op)
# --------------------------------------------------------------------------


async def kv_get(ctx: Context, workload: str, process: int, node: str, key: str, final: bool = False) -> Op:
    args: dict[str, Any] = {"key": key}
    if final:
        args["final"] = True

    def send() -> Awaitable[Answer]:
        return ctx.request("GET", node, f"/kv/get/{key}", None, REQUEST_SECONDS)

    return await ctx.record(workload, process, "get", node, args, send, get_result)


async def kv_put(ctx: Context, process: int, node: str, key: str, value: Any) -> Op:
    args = {"key": key, "value": value}

    def send() -> Awaitable[Answer]:
        return ctx.request("POST", node, "/kv/put", args, REQUEST_SECONDS)

    return await ctx.record(REGISTERS, process, "put", node, args, send, classify)


async def kv_put_if(ctx: Context, process: int, node: str, key: str, revision: int, value: Any) -> Op:
    """A CAS by revision (``409 revision_mismatch``: a definite failure)."""
    args = {"key": key, "value": value, "if_revision": revision}

    def send() -> Awaitable[Answer]:
        return ctx.request("POST", node, "/kv/put", args, REQUEST_SECONDS)

    return await ctx.record(REGISTERS, process, "cas", node, args, send, classify)


async def kv_cas(
    ctx: Context, workload: str, process: int, node: str, key: str, expect: dict[str, Any], value: Any
) -> Op:
    """A CAS by value through ``/kv/txn`` (``args``: key, expect, value; see ``cas_body``)."""
    args = {"key": key, "expect": expect, "value": value}

    def send() -> Awaitable[Answer]:
        return ctx.request("POST", node, "/kv/txn", cas_body(key, expect, value), REQUEST_SECONDS)

    return await ctx.record(workload, process, "cas", node, args, send, txn_result)


async def kv_delete(ctx: Context, process: int, node: str, key: str) -> Op:
    args = {"key": key}

    def send() -> Awaitable[Answer]:
        return ctx.request("POST", node, "/kv/delete", args, REQUEST_SECONDS)

    return await ctx.record(REGISTERS, process, "delete", node, args, send, classify)


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------


@dataclass(slots=True)
class _Seen:
    """What one register process last knew of a key: its value and mod_revision (from a read or its write)."""

    value: Any
    revision: int | None


def _learn(seen: dict[str, _Seen], op: Op) -> None:
    key = str(op.args["key"])
    result = op.result if isinstance(op.result, dict) else {}
    if op.type != "ok":
        seen.pop(key, None)  # unknown or refused: what it knew may be stale
    elif op.f == "get":
        if result.get("found"):
            seen[key] = _Seen(result.get("value"), _int_or_none(result.get("mod_revision")))
        else:
            seen.pop(key, None)
    elif op.f in ("put", "cas"):
        seen[key] = _Seen(op.args["value"], write_revision(op.result))
    elif op.f == "delete":
        seen.pop(key, None)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def register_process(ctx: Context, process: int, s: KvSettings) -> None:
    """Random ops on random keys through random nodes, until stop."""
    rng = ctx.rng(REGISTERS, process)
    seen: dict[str, _Seen] = {}
    seq = 0
    while not ctx.stop.is_set():
        seq += 1
        key = rng.choice(s.keys)
        node = ctx.pick(rng)
        value = f"p{process}-{seq}"
        draw = rng.random()
        known = seen.get(key)
        if draw < s.put_fraction:
            op = await kv_put(ctx, process, node, key, value)
        elif draw < s.put_fraction + s.cas_fraction and known is not None:
            if rng.random() < 0.5 or known.revision is None:
                op = await kv_cas(ctx, REGISTERS, process, node, key, {"value": known.value}, value)
            else:
                op = await kv_put_if(ctx, process, node, key, known.revision, value)
        elif draw < s.put_fraction + s.cas_fraction + s.delete_fraction:
            op = await kv_delete(ctx, process, node, key)
        else:
            op = await kv_get(ctx, REGISTERS, process, node, key)
        _learn(seen, op)
        await pause(ctx, rng.uniform(*s.gap))


async def counter_process(ctx: Context, process: int, s: KvSettings) -> None:
    """Read a counter, then CAS it to read + 1 (through another random node), until stop."""
    rng = ctx.rng(COUNTERS, process)
    while not ctx.stop.is_set():
        key = rng.choice(s.counters)
        read = await kv_get(ctx, COUNTERS, process, ctx.pick(rng), key)
        result = read.result if isinstance(read.result, dict) else {}
        current = _int_or_none(result.get("value")) if result.get("found") else 0
        if read.type == "ok" and current is not None:
            expect: dict[str, Any] = {"value": current} if result.get("found") else {"absent": True}
            await kv_cas(ctx, COUNTERS, process, ctx.pick(rng), key, expect, current + 1)
        await pause(ctx, rng.uniform(*s.gap))


async def final_counter_reads(ctx: Context, s: KvSettings, deadline: float, process: int = 900) -> dict[str, bool]:
    """One ok linearizable read of every counter after healing (asked again until then); key -> read."""
    rng = ctx.rng("kv-final", process)
    done: dict[str, bool] = {}
    for key in s.counters:
        done[key] = False
        while not done[key] and time.monotonic() < deadline:
            op = await kv_get(ctx, COUNTERS, process, ctx.pick(rng), key, final=True)
            done[key] = op.type == "ok"
            if not done[key]:
                await asyncio.sleep(0.2)
    return done


# --------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------


def start(ctx: Context, workloads: Sequence[str], s: KvSettings) -> list[asyncio.Task[None]]:
    """Start the register and counter processes when ``kv`` is chosen."""
    tasks: list[asyncio.Task[None]] = []
    if "kv" not in workloads:
        return tasks
    for p in range(s.processes):
        tasks.append(asyncio.ensure_future(register_process(ctx, p, s)))
        tasks[-1].set_name(f"kv-{p}")
    for p in range(s.processes, s.processes + s.counter_processes):
        tasks.append(asyncio.ensure_future(counter_process(ctx, p, s)))
        tasks[-1].set_name(f"kv-counter-{p}")
    return tasks


async def finish(ctx: Context, workloads: Sequence[str], s: KvSettings, timeout: float = 30.0) -> dict[str, Any]:
    """After healing: read every counter once more (the counters checker's final values)."""
    if "kv" not in workloads:
        return {}
    done = await final_counter_reads(ctx, s, time.monotonic() + timeout)
    return {"kv_counters_read": all(done.values())}
