"""``rakit chaos``: one seeded run — test hosts, a cluster, workloads, faults, verdicts, a plot.

The steps: make one network namespace per node and one for Redis (``netns``),
start Redis and the nodes inside them, start the workloads (``workloads``)
from this process, play the seeded nemesis plan (``nemesis``) while they run,
heal everything, run the final phase (drain the queue, read every cache key
everywhere), stop the cluster, remove the namespaces, then write the history
(``history.jsonl``), judge it (``checkers``); the command then prints the
tables and only after them draws the timeline (``timeline.png``,
``draw_timeline``), so a picture that cannot be drawn never hides a verdict.
Everything the run starts it stops, also on an error or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from rakit.chaos import disk
from rakit.chaos import nemesis as nem
from rakit.chaos import workloads as wl
from rakit.chaos import workloads_coordination as wc
from rakit.chaos import workloads_kv as wkv
from rakit.chaos.history import Fault, History, Verdict
from rakit.launcher import LaunchError, NodeProcess, RedisProcess, pick_leader
from rakit.security.internal import InternalAuth

NODE_PORT = 8001
REDIS_PORT = 6379
REFUSAL_SECONDS = 20.0  # a node started on a damaged log must have exited (refused) by then


class ChaosError(Exception):
    """The run could not be set up or finished (not a violation), with a one-line message."""


@dataclass(frozen=True, slots=True)
class RunConfig:
    duration: float = 60.0
    nemeses: tuple[str, ...] = ("partition", "bridge", "kill", "pause")
    seed: int = 0
    nodes: int = 3
    workloads: tuple[str, ...] = wc.ALL_WORKLOADS
    out: Path = Path("chaos-runs")
    fault_seconds: tuple[float, float] = (4.0, 8.0)
    gap_seconds: tuple[float, float] = (2.0, 4.0)
    settings: wl.Settings = field(default_factory=wl.Settings)
    coordination: wc.CoordinationSettings = field(default_factory=wc.CoordinationSettings)
    kv: wkv.KvSettings = field(default_factory=wkv.KvSettings)


@dataclass(slots=True)
class RunResult:
    history: History
    verdicts: list[Verdict]
    out: Path
    plot: Path | None  # the timeline, once ``draw_timeline`` has drawn it
    final: dict[str, Any]

    @property
    def valid(self) -> bool:
        return all(v.valid for v in self.verdicts)


class Cluster:
    """Redis and the nodes, each inside its own namespace of ``testbed``."""

    def __init__(self, testbed: Any, size: int, out: Path) -> None:
        self.testbed = testbed
        self.ids = [f"node{i}" for i in range(1, size + 1)]
        secret = secrets.token_urlsafe(32)
        self.out = out
        self.env = {"CLUSTER_SECRET": secret}
        self.redis = RedisProcess(
            REDIS_PORT,
            out / "redis",
            host=testbed.address("redis"),
            log_path=out / "logs" / "redis.log",
            wrap=testbed.wrap("redis", []),
        )
        self.peers = {i: f"http://{testbed.address(i)}:{NODE_PORT}" for i in self.ids}
        self.nodes = {
            i: NodeProcess(
                i,
                NODE_PORT,
                self.peers,
                self.redis.url,
                out / i,
                host=testbed.address(i),
                log_path=out / "logs" / f"{i}.log",
                wrap=testbed.wrap(i, []),
                env=self.env,
            )
            for i in self.ids
        }

    def fresh(self, node_id: str, join: str) -> NodeProcess:
        """``node_id`` again, on the same test host and port, with an empty data dir, joining through ``join``."""
        old = self.nodes[node_id]
        shutil.rmtree(old.data_dir, ignore_errors=True)
        node = NodeProcess(
            node_id,
            NODE_PORT,
            {node_id: self.peers[node_id]},
            self.redis.url,
            old.data_dir,
            host=old.host,
            log_path=old.log_path,
            wrap=old.wrap,
            env=self.env,
            extra_args=["--join", join],
        )
        self.nodes[node_id] = node
        return node.start()

    def start(self, timeout: float = 30.0) -> None:
        self.redis.start(wait=True, timeout=10.0)
        for node in self.nodes.values():
            node.start()
        deadline = time.monotonic() + timeout
        for node in self.nodes.values():
            node.wait_healthy(max(0.1, deadline - time.monotonic()))

    def revive(self) -> None:
        """Every process running and unpaused again (after a fault, or before the final phase)."""
        if not self.redis.alive:
            self.redis.start(wait=True, timeout=10.0)
        for node in self.nodes.values():
            if node.paused:
                node.resume()
            if not node.alive:
                node.start()

    def stop(self) -> None:
        for node in self.nodes.values():
            with contextlib.suppress(Exception):
                node.stop(timeout=5.0)
        with contextlib.suppress(Exception):
            self.redis.stop(timeout=5.0)


async def statuses(session: aiohttp.ClientSession, urls: dict[str, str]) -> dict[str, dict[str, Any] | None]:
    async def one(url: str) -> dict[str, Any] | None:
        try:
            async with session.get(url + "/status", timeout=aiohttp.ClientTimeout(total=1.0)) as resp:
                body = await resp.json(content_type=None)
                return body if resp.status == 200 and isinstance(body, dict) else None
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
            return None

    answers = await asyncio.gather(*(one(u) for u in urls.values()))
    return dict(zip(urls, answers, strict=True))


async def wait_for_cache(session: aiohttp.ClientSession, urls: dict[str, str], timeout: float) -> bool:
    """Until every node's cache serves (a miss answers 404, not 503 as during the restart quarantine)."""
    deadline = time.monotonic() + timeout
    waiting = dict(urls)
    while waiting and time.monotonic() < deadline:
        for node, url in list(waiting.items()):
            try:
                async with session.get(url + "/cache/get/chaos.probe", timeout=aiohttp.ClientTimeout(total=1.0)) as r:
                    if r.status in (200, 404):
                        del waiting[node]
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
        if waiting:
            await asyncio.sleep(0.1)
    return not waiting


async def wait_for_leader(session: aiohttp.ClientSession, urls: dict[str, str], timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leader = pick_leader(await statuses(session, urls))
        if leader is not None:
            return leader
        await asyncio.sleep(0.1)
    return None


class Nemesis:
    """Plays a plan against the cluster, recording each fault; always heals what it did."""

    def __init__(self, cluster: Cluster, session: aiohttp.ClientSession, recorder: wl.Recorder, seed: int) -> None:
        self.cluster = cluster
        self.session = session
        self.recorder = recorder
        self.rng = random.Random(f"{seed}/targets")
        self._damaged: dict[str, int | None] = {}  # corrupt: node -> offset of the damaged record
        self._outcomes: dict[str, dict[str, Any]] = {}  # corrupt: what happened when it was started again
        self.faults: list[Fault] = []

    async def play(self, steps: Sequence[nem.Step], stop: asyncio.Event) -> None:
        for step in steps:
            wait = step.at - self.recorder.now()
            if wait > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
            if stop.is_set():
                return
            await self.one(await self.resolved(step))

    async def resolved(self, step: nem.Step) -> nem.Step:
        if step.target != nem.LEADER:
            return step
        leader = pick_leader(await statuses(self.session, self.cluster.peers))
        target = leader if leader is not None else self.rng.choice(self.cluster.ids)
        return nem.resolve(step, self.cluster.ids, target)

    async def one(self, step: nem.Step) -> None:
        testbed, cluster = self.cluster.testbed, self.cluster
        nodes: tuple[str, ...] = ()
        start = self.recorder.now()
        try:
            if step.kind in nem.NETWORK:
                for src, dst in step.cuts:
                    await asyncio.to_thread(testbed.cut, src, dst)
                nodes = tuple(sorted({n for cut in step.cuts for n in cut}))
            elif step.kind == "kill":
                await asyncio.to_thread(cluster.nodes[str(step.target)].kill)
            elif step.kind == "pause":
                cluster.nodes[str(step.target)].pause()
            elif step.kind == "redis-kill":
                await asyncio.to_thread(cluster.redis.kill)
            elif step.kind == "member":
                await self.remove(str(step.target))
                await asyncio.to_thread(cluster.nodes[str(step.target)].kill)
            elif step.kind == "corrupt":
                node = cluster.nodes[str(step.target)]
                await asyncio.to_thread(node.kill)
                self._damaged[str(step.target)] = await asyncio.to_thread(
                    disk.damage_log, node.data_dir / "raft.wal", self.rng
                )
            if step.target and not nodes:
                nodes = (step.target,)
            start = self.recorder.now()
            await asyncio.sleep(step.duration)
        finally:
            end = self.recorder.now()
            await self.heal(step)
        detail = {**step.detail, "cuts": [list(c) for c in step.cuts]} if step.cuts else dict(step.detail)
        if step.target:
            detail["target"] = step.target
            detail.update(self._outcomes.pop(str(step.target), {}))
        self.faults.append(Fault(step.kind, start, end, nodes, nem.minority(cluster.ids, step.cuts), detail))

    async def heal(self, step: nem.Step) -> None:
        if step.kind in nem.NETWORK:
            await asyncio.to_thread(self.cluster.testbed.heal)
        elif step.kind == "kill":
            await self._join_through_live_member(str(step.target))
            await asyncio.to_thread(self.cluster.nodes[str(step.target)].start)
        elif step.kind == "pause":
            self.cluster.nodes[str(step.target)].resume()
        elif step.kind == "redis-kill":
            await asyncio.to_thread(self.cluster.redis.start, True, 10.0)
        elif step.kind == "member":
            await self.rejoin(str(step.target))
        elif step.kind == "corrupt":
            self._outcomes[str(step.target)] = await self.restart_damaged(str(step.target))

    async def restart_damaged(self, node_id: str) -> dict[str, Any]:
        """Start a node whose log was damaged: it must refuse; then it comes back empty, as ``member``."""
        node = self.cluster.nodes[node_id]
        offset = self._damaged.pop(node_id, None)
        await self._join_through_live_member(node_id)
        if offset is None:  # its log was too short to damage in the middle: a plain kill
            await asyncio.to_thread(node.start)
            return {"damaged_at": None}
        await asyncio.to_thread(node.start)
        deadline = time.monotonic() + REFUSAL_SECONDS
        while node.alive and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        outcome: dict[str, Any] = {"damaged_at": offset, "refused": not node.alive}
        if node.alive:  # it started on the damaged log (the checker reports it); recover it all the same
            await asyncio.to_thread(node.kill)
        else:
            outcome["message"] = node.last_log_line()[:300]
        await self.remove(node_id)
        await self.rejoin(node_id)
        return outcome

    async def _call(self, method: str, url: str, body: Any = None, sign_for: str | None = None) -> tuple[int, Any]:
        """``method url``; ``sign_for``: the node ``url`` is on, for an operator call signed with the secret."""
        data = json.dumps(body).encode() if body is not None else b""
        headers = {"content-type": "application/json"}
        if sign_for is not None:
            path = url.split("://", 1)[1].partition("/")[2]
            headers.update(
                InternalAuth(self.cluster.env["CLUSTER_SECRET"], "chaos").headers(
                    method, "/" + path, data, dst=sign_for
                )
            )
        try:
            async with self.session.request(
                method, url, data=data or None, headers=headers, timeout=aiohttp.ClientTimeout(total=12)
            ) as r:
                return r.status, await r.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
            return 0, None

    async def _members_call(self, method: str, path: str, done: set[str], deadline: float) -> bool:
        """``method path`` through any other live node until answered 200 (or an error code in ``done``)."""
        while time.monotonic() < deadline:
            for node_id, url in self.cluster.peers.items():
                proc = self.cluster.nodes[node_id]
                if not proc.alive or proc.paused or path.split("/")[3] == node_id:
                    continue
                status, body = await self._call(method, url + path, sign_for=node_id)
                if status == 200 or (isinstance(body, dict) and body.get("error") in done):
                    return True
            await asyncio.sleep(0.2)
        return False

    async def remove(self, node_id: str) -> None:
        """Take ``node_id`` out of the configuration (committed), through another member."""
        if not await self._members_call(
            "DELETE", f"/cluster/members/{node_id}", {"unknown_member"}, time.monotonic() + 20
        ):
            raise ChaosError(f"the member nemesis could not remove {node_id} within 20 s")

    async def rejoin(self, node_id: str) -> None:
        """Start ``node_id`` empty with ``--join``, wait until it is a voter and serves, promote it.

        A node whose join failed (the member it joined through went away meanwhile) is started again
        through another live member; "already_voter" alone is not done: the fresh node must answer.
        """
        via_id, via = await self._live_member(node_id)
        await asyncio.to_thread(self.cluster.fresh, node_id, via)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            node = self.cluster.nodes[node_id]
            if not node.alive:
                via_id, via = await self._live_member(node_id)
                await asyncio.to_thread(self.cluster.fresh, node_id, via)
            # ``promote`` is refused (learner_not_caught_up) until the learner has the log.
            status, body = await self._call("POST", via + f"/cluster/members/{node_id}/promote", {}, sign_for=via_id)
            promoted = status == 200 or (isinstance(body, dict) and body.get("error") == "already_voter")
            if promoted:
                seen = await asyncio.to_thread(self.cluster.nodes[node_id].status)
                if seen is not None and seen.get("leader_id") is not None:
                    return
            await asyncio.sleep(0.3)
        raise ChaosError(f"the member nemesis could not add {node_id} back within 40 s")

    async def _join_through_live_member(self, node_id: str) -> None:
        """A node that came back with ``--join`` asks that member again when restarted: make it a live one.

        (A joined node cannot start while the member it joins through is down: its restart asks it.)
        """
        node = self.cluster.nodes[node_id]
        if "--join" in node.extra_args:
            at = node.extra_args.index("--join") + 1
            node.extra_args[at] = (await self._live_member(node_id))[1]

    async def _live_member(self, node_id: str) -> tuple[str, str]:
        """Another member whose process runs, preferring one that answers /health."""
        others = [(n, url) for n, url in self.cluster.peers.items() if n != node_id and self.cluster.nodes[n].alive]
        for n, url in others:
            if await asyncio.to_thread(self.cluster.nodes[n].health) is not None:
                return n, url
        return others[0]


async def _drive(
    config: RunConfig, cluster: Cluster, recorder: wl.Recorder, steps: Sequence[nem.Step], log: Any
) -> tuple[list[Fault], dict[str, Any]]:
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        if await wait_for_leader(session, cluster.peers, 20.0) is None:
            raise ChaosError("the cluster elected no leader within 20 s of starting")
        if not await wait_for_cache(session, cluster.peers, 10.0):
            raise ChaosError("the cache did not serve on every node within 10 s of starting")
        stop = asyncio.Event()
        ctx = wl.Context(session, cluster.peers, recorder, stop, config.seed)
        recorder.t0 = time.monotonic()
        tasks = wl.start(ctx, config.workloads, config.settings)
        tasks += wc.start(ctx, config.workloads, config.coordination)
        tasks += wkv.start(ctx, config.workloads, config.kv)
        nemesis = Nemesis(cluster, session, recorder, config.seed)
        player = asyncio.ensure_future(nemesis.play(steps, stop))
        try:
            log(f"workloads and nemesis running for {config.duration:.0f} s ({len(steps)} faults planned)")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(player), config.duration + 30.0)
            if recorder.now() < config.duration:  # the plan ended early: the workloads run their full time
                await asyncio.sleep(config.duration - recorder.now())
        finally:
            stop.set()
            if not player.done():
                player.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await player
            _, late = await asyncio.wait(tasks, timeout=15.0)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(cluster.revive)
        log("healed; waiting for every node and a leader")
        leader = await wait_for_leader(session, cluster.peers, 30.0)
        final: dict[str, Any] = {"leader_after_heal": leader}
        await asyncio.sleep(2.5)  # in-flight cache write rounds end (2 s)
        final["cache_serving"] = await wait_for_cache(session, cluster.peers, 10.0)  # restart quarantine
        final.update(await wl.finish(ctx, config.workloads, config.settings))
        final.update(await wkv.finish(ctx, config.workloads, config.kv))
        return nemesis.faults, final


def run(config: RunConfig, log: Any = print) -> RunResult:
    """One whole chaos run (see the module docstring); needs root and ``ip`` (``netns.available``)."""
    from rakit.chaos import netns
    from rakit.chaos.checkers import check_all

    reason = netns.available()
    if reason is not None:
        raise ChaosError(f"the chaos suite cannot run here: {reason}")
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    steps = nem.plan(
        config.seed,
        config.duration,
        config.nemeses,
        [f"node{i}" for i in range(1, config.nodes + 1)],
        fault_seconds=config.fault_seconds,
        gap_seconds=config.gap_seconds,
    )
    netns.cleanup_stale()
    recorder = wl.Recorder()
    hosts = [f"node{i}" for i in range(1, config.nodes + 1)] + ["redis"]
    with netns.Testbed(hosts) as testbed:
        cluster = Cluster(testbed, config.nodes, out)
        try:
            log(f"starting Redis and {config.nodes} nodes in their own network namespaces")
            try:
                cluster.start()
            except LaunchError as exc:
                raise ChaosError(str(exc)) from None
            faults, final = asyncio.run(_drive(config, cluster, recorder, steps, log))
        finally:
            cluster.stop()
    history = History(
        meta={
            "seed": config.seed,
            "duration": config.duration,
            "nemeses": list(config.nemeses),
            "nodes": config.nodes,
            "workloads": list(config.workloads),
            "final": final,
            "planned_faults": len(steps),
        },
        ops=sorted(recorder.ops, key=lambda op: op.complete),
        faults=faults,
    )
    history.write(out / "history.jsonl")
    verdicts = check_all(history)
    result = RunResult(history, verdicts, out, None, final)
    (out / "summary.json").write_text(json.dumps(summary(result), indent=2, sort_keys=True, default=str) + "\n")
    return result


def draw_timeline(result: RunResult) -> Path:
    """Draw ``result``'s timeline as ``timeline.png`` in its folder; set and return ``result.plot``.

    Separate from ``run`` so the verdicts are printed first: whatever goes wrong
    here (no matplotlib, a full disk) leaves the history, the summary and the
    verdicts as they are.
    """
    from rakit.chaos.plot import plot_timeline

    result.plot = plot_timeline(result.history, result.out / "timeline.png")
    return result.plot


def summary(result: RunResult) -> dict[str, Any]:
    """Per workload: operations by outcome, violations and the checker's figures; the faults by kind."""
    history = result.history
    faults = Counter(f.nemesis for f in history.faults)
    out: dict[str, Any] = {
        "seed": history.meta.get("seed"),
        "faults": dict(faults),
        "final": result.final,
        "valid": result.valid,
        "workloads": {},
    }
    for verdict in result.verdicts:
        ops = history.of(verdict.workload)
        kinds = Counter(op.type for op in ops)
        out["workloads"][verdict.workload] = {
            "operations": len(ops),
            "ok": kinds["ok"],
            "fail": kinds["fail"],
            "info": kinds["info"],
            "violations": len(verdict.violations),
            "first_violations": verdict.violations[:20],
            "stats": verdict.stats,
        }
    return out
