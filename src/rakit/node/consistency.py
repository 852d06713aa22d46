"""Do the replicas agree?  The log-chain comparison behind ``GET /cluster/consistency``.

Every replica folds the entries it applies into a chain and keeps a
checkpoint at each boundary (``rakit.statemachines.registry``).  Here the
checkpoints of every member are compared:

1. Members are compared only with members whose chain starts at the same
   base (a chain restored from a snapshot written before chains existed
   starts later, and is another chain by construction).
2. The index compared is the highest boundary every comparable member has a
   checkpoint for; ``checked`` is null if there is none yet (a young log, or
   a member too far behind to share a kept checkpoint).
3. The chain most members show there is taken as the cluster's; members
   showing another are ``diverged``: their logs differ from the others' at
   or before that index (a damaged disk, a lost entry), whatever their
   ``/health`` says.  A member that does not answer is ``unreachable``.

The leader runs the comparison every ``INTERVAL`` seconds (``run``),
exports the number of diverged members as ``rakit_replicas_diverged`` and
logs an error when a member diverges.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

import aiohttp

from rakit.security.tokens import IDENTITY_HEADER, SYSTEM, identity_binding

if TYPE_CHECKING:
    from rakit.node.runtime import NodeRuntime

log = logging.getLogger(__name__)

INTERVAL = 30.0
PEER_TIMEOUT = 2.0
DIGEST_PATH = "/debug/digest"


def local_view(runtime: NodeRuntime) -> dict[str, Any]:
    machines = runtime.machines
    return {
        "applied": runtime.driver.core.applied_index,
        "base": machines.chain_base,
        "index": machines.chain_index,
        "checkpoints": [{"index": b, "chain": h} for b, h in machines.checkpoints],
    }


async def _peer_view(runtime: NodeRuntime, peer: str, url: str, timeout: float) -> dict[str, Any]:
    headers: dict[str, str] = {}
    if runtime.config.auth_tokens is not None and runtime.internal_auth.enabled:
        headers = runtime.internal_auth.headers("GET", DIGEST_PATH, identity_binding(SYSTEM.name, b""), dst=peer)
        headers[IDENTITY_HEADER] = SYSTEM.name
    async with runtime.session.get(
        url + DIGEST_PATH, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
    ) as resp:
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}")
        body = await resp.json()
    chain = body.get("log_chain")
    if not isinstance(chain, dict):
        raise RuntimeError("no log chain in its /debug/digest (an older rakit)")
    return {"applied": body.get("applied"), **chain}


def compare(views: dict[str, dict[str, Any] | str]) -> dict[str, Any]:
    """Rules 1-3 over each member's view (a dict) or the reason it gave none (a str)."""
    nodes: dict[str, dict[str, Any]] = {}
    reachable: dict[str, dict[str, Any]] = {}
    for node, view in sorted(views.items()):
        if isinstance(view, str):
            nodes[node] = {"reachable": False, "error": view}
        else:
            reachable[node] = view
            nodes[node] = {"reachable": True, "applied": view.get("applied"), "base": view.get("base")}
    bases = Counter(v.get("base") for v in reachable.values())
    base = bases.most_common(1)[0][0] if bases else None
    group = {n: v for n, v in reachable.items() if v.get("base") == base}
    points = {n: {int(c["index"]): str(c["chain"]) for c in v.get("checkpoints", [])} for n, v in group.items()}
    shared = set.intersection(*(set(p) for p in points.values())) if points else set()
    checked = max(shared) if shared else None
    diverged: list[str] = []
    if checked is not None:
        chains = {n: p[checked] for n, p in points.items()}
        agreed = Counter(chains.values()).most_common(1)[0][0]
        diverged = sorted(n for n, h in chains.items() if h != agreed)
        for n, h in chains.items():
            nodes[n]["chain"] = h
    for n in reachable:
        if n not in group:
            nodes[n]["comparable"] = False
    return {
        "checked": checked,
        "consistent": None if checked is None else not diverged,
        "diverged": diverged,
        "unreachable": sorted(n for n, v in views.items() if isinstance(v, str)),
        "nodes": nodes,
    }


async def survey(runtime: NodeRuntime, timeout: float = PEER_TIMEOUT) -> dict[str, Any]:
    members = {n: u for n, u in runtime.driver.addresses.items() if n in runtime.driver.core.conf_state.members}
    members.setdefault(runtime.node_id, "")

    async def one(node: str, url: str) -> dict[str, Any] | str:
        if node == runtime.node_id:
            return local_view(runtime)
        try:
            return await _peer_view(runtime, node, url, timeout)
        except (aiohttp.ClientError, TimeoutError, RuntimeError, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"[:200]

    answers = await asyncio.gather(*(one(n, u) for n, u in members.items()))
    return compare(dict(zip(members, answers, strict=True)))


async def run(runtime: NodeRuntime) -> None:
    """On the leader, every ``INTERVAL`` s: compare the replicas, export and report what diverged."""
    reported: set[str] = set()
    while True:
        await asyncio.sleep(INTERVAL)
        if not runtime.driver.is_leader:
            continue
        try:
            result = await survey(runtime)
        except Exception as exc:
            log.debug("consistency check failed: %s", exc)
            continue
        diverged = set(result["diverged"])
        runtime.metrics.replicas_diverged.set(len(diverged))
        for node in sorted(diverged - reported):
            log.error(
                "replica %s diverged: its log chain at index %s differs from the other members' "
                "(a damaged or replaced disk?); wipe its data dir and add it back as a learner",
                node,
                result["checked"],
            )
        reported = diverged
