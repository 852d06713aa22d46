"""The chaos clients: lock, queue and cache workloads that record every request as an ``Op``
(the semaphore and election workloads, built on this module's ``Context``, are in ``workloads_coordination``).

Each workload is a few logical processes, each making one request at a time
to its own node (``Context.home``; a request is never retried elsewhere by
the client library: the history must say which node answered; only a lock
release that got no answer is asked again at another node, as a separate op).  Outcomes are classified
conservatively (see
``history``): a definite refusal (``409``, ``404 not_in_flight``, ``422``)
or a connection that could not even be opened is ``fail``; success is
``ok``; anything else — a timeout, a dropped connection, a ``503`` — is
``info``, since the request may still take effect.

Every wait is bounded: each request has a short total timeout (2-3 s, plus
a lock's own wait), as an application with a deadline would, so a client
stuck on a paused or cut-off node moves on; each loop ends when ``stop`` is set.  After
the faults are healed, ``finish`` runs each workload's final phase (the
queue is drained, every cache key is read on every node) so the checkers
can judge loss and convergence.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from rakit.chaos.history import Op

WORKLOADS = ("locks", "queue", "cache")


class Recorder:
    """The run's clock and its list of operations (one event loop: no locking needed)."""

    def __init__(self, t0: float | None = None) -> None:
        self.t0 = time.monotonic() if t0 is None else t0
        self.ops: list[Op] = []

    def now(self) -> float:
        return time.monotonic() - self.t0


@dataclass(slots=True)
class Answer:
    status: int | None  # None: no HTTP answer
    body: Any = None
    error: str | None = None  # exception class name when there was no answer
    connect_failed: bool = False  # the connection could not be opened: the request never left


@dataclass
class Context:
    """What every workload process shares: the session, the nodes, the recorder, the stop flag."""

    session: aiohttp.ClientSession
    urls: dict[str, str]  # node id -> base URL
    recorder: Recorder
    stop: asyncio.Event
    seed: int
    headers: dict[str, str] = field(default_factory=dict)

    def rng(self, workload: str, process: int) -> random.Random:
        return random.Random(f"{self.seed}/{workload}/{process}")

    async def request(self, method: str, node: str, path: str, body: Any = None, timeout: float = 5.0) -> Answer:
        url = self.urls[node] + path
        try:
            async with self.session.request(
                method, url, json=body, headers=self.headers, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                data: Any = None
                if resp.status != 204:
                    try:
                        data = await resp.json(content_type=None)
                    except ValueError:
                        data = None
                return Answer(resp.status, data)
        except aiohttp.ClientConnectorError as exc:
            return Answer(None, error=type(exc).__name__, connect_failed=True)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return Answer(None, error=type(exc).__name__)

    async def record(
        self,
        workload: str,
        process: int,
        f: str,
        node: str,
        args: dict[str, Any],
        send: Callable[[], Awaitable[Answer]],
        classify: Callable[[Answer], tuple[str, Any]],
    ) -> Op:
        invoke = self.recorder.now()
        answer = await send()
        complete = self.recorder.now()
        kind, result = classify(answer)
        error = None
        if kind != "ok":
            error = (
                answer.error
                or (answer.body.get("error") if isinstance(answer.body, dict) else None)
                or f"http {answer.status}"
            )
        op = Op(
            workload=workload,
            process=process,
            f=f,
            node=node,
            invoke=invoke,
            complete=complete,
            type=kind,
            args=args,
            result=result,
            error=error,
        )
        self.recorder.ops.append(op)
        return op

    def pick(self, rng: random.Random) -> str:
        return rng.choice(sorted(self.urls))

    def home(self, process: int) -> str:
        """The node a process sends its requests to (processes are spread evenly over the nodes).

        Bound as Jepsen binds its clients: a process stuck on a cut-off or
        paused node does not stop the others, so each side's rate shows.
        """
        nodes = sorted(self.urls)
        return nodes[process % len(nodes)]


def classify(answer: Answer, ok: Sequence[int] = (200,), fail: Sequence[int] = (409, 404, 422)) -> tuple[str, Any]:
    """(type, result) of an answer: see the module docstring."""
    if answer.status in ok:
        return "ok", answer.body if isinstance(answer.body, dict) else {}
    if answer.status in fail:
        return "fail", answer.body if isinstance(answer.body, dict) else None
    if answer.connect_failed:
        return "fail", None
    return "info", None


async def pause(ctx: Context, seconds: float) -> None:
    """Sleep ``seconds`` or until the run stops, whichever is first."""
    try:
        await asyncio.wait_for(ctx.stop.wait(), seconds)
    except TimeoutError:
        pass


# --------------------------------------------------------------------------
# Locks
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LockSettings:
    processes: int = 6
    resources: tuple[str, ...] = ("r0", "r1", "r2", "r3")
    ttl: float = 2.0
    wait: float = 1.0  # the acquire's own FIFO wait (``timeout`` in the API)
    hold: tuple[float, float] = (0.05, 0.4)
    # Some holds run long, up to past the ttl (the lease then expires and the
    # late release is refused): leases must survive elections and expire on time.
    long_hold: tuple[float, float] = (0.5, 2.5)
    long_fraction: float = 0.25
    shared_fraction: float = 0.2


async def lock_process(ctx: Context, process: int, s: LockSettings) -> None:
    """Acquire (fresh client id each time), hold a random short time, release; forever until stop."""
    rng = ctx.rng("locks", process)
    seq = 0
    while not ctx.stop.is_set():
        seq += 1
        resource = rng.choice(s.resources)
        client_id = f"p{process}-{seq}"
        mode = "shared" if rng.random() < s.shared_fraction else "exclusive"
        args = {"resource": resource, "client_id": client_id, "mode": mode, "ttl": s.ttl, "timeout": s.wait}
        node = ctx.home(process)
        op = await ctx.record(
            "locks",
            process,
            "acquire",
            node,
            args,
            functools.partial(ctx.request, "POST", node, "/lock/acquire", args, s.wait + 2.0),
            classify,
        )
        if op.type == "ok":
            hold = s.long_hold if rng.random() < s.long_fraction else s.hold
            await asyncio.sleep(rng.uniform(*hold))  # a hold is never cut short by stop
            await release(ctx, process, rng, {"resource": resource, "client_id": client_id})
        else:
            await pause(ctx, rng.uniform(0.02, 0.1))


async def release(ctx: Context, process: int, rng: random.Random, args: dict[str, Any], attempts: int = 3) -> None:
    """Release, asking other nodes when one cannot be reached or does not answer (as a real client does)."""
    tried: list[str] = []
    for _ in range(attempts):
        node = (
            ctx.home(process)
            if not tried
            else rng.choice([n for n in sorted(ctx.urls) if n not in tried] or sorted(ctx.urls))
        )
        tried.append(node)
        op = await ctx.record(
            "locks",
            process,
            "release",
            node,
            args,
            functools.partial(ctx.request, "POST", node, "/lock/release", args, 2.0),
            classify,
        )
        if op.type == "ok" or (op.type == "fail" and op.result is not None):  # released, or not_holder
            return


# --------------------------------------------------------------------------
# Queue
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueSettings:
    producers: int = 3
    consumers: int = 3
    topics: tuple[str, ...] = ("t0", "t1")
    visibility_timeout: float = 3.0
    crash_fraction: float = 0.1  # pops whose consumer "crashes" before acking
    push_gap: tuple[float, float] = (0.01, 0.05)


async def producer(ctx: Context, process: int, s: QueueSettings) -> None:
    rng = ctx.rng("queue", process)
    seq = 0
    while not ctx.stop.is_set():
        seq += 1
        topic = rng.choice(s.topics)
        args = {"topic": topic, "message_id": f"m{process}-{seq}", "message": {"p": process, "n": seq}}
        node = ctx.home(process)
        await ctx.record(
            "queue",
            process,
            "push",
            node,
            args,
            functools.partial(ctx.request, "POST", node, "/queue/push", args, 3.0),
            classify,
        )
        await pause(ctx, rng.uniform(*s.push_gap))


def _pop_result(answer: Answer) -> tuple[str, Any]:
    if answer.status == 204:
        return "ok", {"empty": True}
    return classify(answer)


async def pop_once(
    ctx: Context, process: int, node: str, topic: str, consumer: str, visibility: float, final: bool = False
) -> Op:
    args: dict[str, Any] = {"topic": topic, "consumer_id": consumer, "visibility_timeout": visibility}
    if final:
        args["final"] = True
    path = f"/queue/pop/{topic}/{consumer}?visibility_timeout={visibility}"
    return await ctx.record(
        "queue", process, "pop", node, args, lambda: ctx.request("GET", node, path, None, 3.0), _pop_result
    )


async def ack_once(
    ctx: Context, process: int, node: str, topic: str, consumer: str, message_id: str, final: bool = False
) -> Op:
    args: dict[str, Any] = {"topic": topic, "consumer_id": consumer, "message_id": message_id}
    if final:
        args["final"] = True
    return await ctx.record(
        "queue",
        process,
        "ack",
        node,
        args,
        lambda: ctx.request("POST", node, "/queue/ack", {k: v for k, v in args.items() if k != "final"}, 3.0),
        classify,
    )


async def consumer(ctx: Context, process: int, s: QueueSettings) -> None:
    rng = ctx.rng("queue", process)
    name = f"c{process}"
    while not ctx.stop.is_set():
        topic = rng.choice(s.topics)
        op = await pop_once(ctx, process, ctx.home(process), topic, name, s.visibility_timeout)
        message = op.result if op.type == "ok" and op.result and not op.result.get("empty") else None
        if message is None:
            await pause(ctx, 0.05 if op.type == "ok" else 0.1)
            continue
        if rng.random() < s.crash_fraction:
            continue  # crashed between pop and ack: the message comes back after the visibility timeout
        await ack_once(ctx, process, ctx.home(process), topic, name, str(message.get("message_id")))


async def drain(ctx: Context, s: QueueSettings, deadline: float, process: int = 900) -> bool:
    """Pop and ack every topic until nothing is ready or in flight (all acked); False if time ran out."""
    rng = ctx.rng("queue-drain", process)
    name = "drainer"
    pending = set(s.topics)
    while pending and time.monotonic() < deadline:
        for topic in sorted(pending):
            node = ctx.pick(rng)
            op = await pop_once(ctx, process, node, topic, name, 1.0, final=True)
            if op.type == "ok" and op.result and not op.result.get("empty"):
                await ack_once(ctx, process, node, topic, name, str(op.result.get("message_id")), final=True)
                continue
            if op.type == "ok":  # empty: done once nothing is in flight either
                stats = await ctx.request("GET", node, f"/queue/stats/{topic}", None, 5.0)
                if (
                    stats.status == 200
                    and isinstance(stats.body, dict)
                    and not stats.body.get("ready")
                    and not stats.body.get("in_flight")
                ):
                    pending.discard(topic)
                    continue
            await asyncio.sleep(0.2)
    return not pending


# --------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CacheSettings:
    writers: int = 3
    readers: int = 3
    keys: tuple[str, ...] = ("k0", "k1", "k2", "k3")
    gap: tuple[float, float] = (0.01, 0.06)


def _get_result(answer: Answer) -> tuple[str, Any]:
    if answer.status == 404 and isinstance(answer.body, dict) and answer.body.get("error") == "not_found":
        return "ok", {"found": False}
    return classify(answer, fail=(422,))


async def writer(ctx: Context, process: int, s: CacheSettings) -> None:
    rng = ctx.rng("cache", process)
    seq = 0
    while not ctx.stop.is_set():
        seq += 1
        args = {"key": rng.choice(s.keys), "value": f"w{process}-{seq}"}
        node = ctx.home(process)
        await ctx.record(
            "cache",
            process,
            "set",
            node,
            args,
            functools.partial(ctx.request, "POST", node, "/cache/set", args, 3.0),
            lambda a: classify(a, fail=(422,)),
        )
        await pause(ctx, rng.uniform(*s.gap))


async def get_once(ctx: Context, process: int, node: str, key: str, final: bool = False) -> Op:
    args: dict[str, Any] = {"key": key}
    if final:
        args["final"] = True
    return await ctx.record(
        "cache",
        process,
        "get",
        node,
        args,
        lambda: ctx.request("GET", node, f"/cache/get/{key}", None, 2.0),
        _get_result,
    )


async def reader(ctx: Context, process: int, s: CacheSettings) -> None:
    rng = ctx.rng("cache", process)
    while not ctx.stop.is_set():
        await get_once(ctx, process, ctx.home(process), rng.choice(s.keys))
        await pause(ctx, rng.uniform(*s.gap))


async def final_reads(ctx: Context, s: CacheSettings, deadline: float, process: int = 900) -> None:
    """Read every key on every node; a node still refusing (quarantine after restart) is asked again."""
    for key in s.keys:
        for node in sorted(ctx.urls):
            while True:
                op = await get_once(ctx, process, node, key, final=True)
                if op.type == "ok" or time.monotonic() >= deadline:
                    break
                await asyncio.sleep(0.2)


# --------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    locks: LockSettings = LockSettings()
    queue: QueueSettings = QueueSettings()
    cache: CacheSettings = CacheSettings()


def start(ctx: Context, workloads: Sequence[str], settings: Settings) -> list[asyncio.Task[None]]:
    """Start every process of the chosen workloads; they run until ``ctx.stop`` is set."""
    tasks: list[asyncio.Task[None]] = []

    def spawn(coro: Awaitable[None], name: str) -> None:
        tasks.append(asyncio.ensure_future(coro))
        tasks[-1].set_name(name)

    if "locks" in workloads:
        for p in range(settings.locks.processes):
            spawn(lock_process(ctx, p, settings.locks), f"locks-{p}")
    if "queue" in workloads:
        q = settings.queue
        for p in range(q.producers):
            spawn(producer(ctx, p, q), f"producer-{p}")
        for p in range(q.producers, q.producers + q.consumers):
            spawn(consumer(ctx, p, q), f"consumer-{p}")
    if "cache" in workloads:
        c = settings.cache
        for p in range(c.writers):
            spawn(writer(ctx, p, c), f"writer-{p}")
        for p in range(c.writers, c.writers + c.readers):
            spawn(reader(ctx, p, c), f"reader-{p}")
    return tasks


async def finish(ctx: Context, workloads: Sequence[str], settings: Settings, timeout: float = 60.0) -> dict[str, Any]:
    """The final phase after healing: drain the queue, read every cache key on every node."""
    deadline = time.monotonic() + timeout
    out: dict[str, Any] = {}
    if "queue" in workloads:
        out["queue_drained"] = await drain(ctx, settings.queue, deadline)
    if "cache" in workloads:
        await final_reads(ctx, settings.cache, deadline)
    return out
