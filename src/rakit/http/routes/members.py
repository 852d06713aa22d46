"""``/cluster/members`` and ``/cluster/transfer-leader``: membership changes and leadership transfer.

``GET /cluster/members`` -> this node's view: ``{"leader", "voters": [{"id", "url"}],
"learners": [{"id", "url", "caught_up"?}], "pending_change"}`` (``caught_up`` when asked at the leader).
``POST /cluster/members {"id", "url"}`` adds a node as a non-voting learner;
``POST /cluster/members/{id}/promote`` makes a caught-up learner a voter;
``DELETE /cluster/members/{id}`` removes a voter or learner (a removed leader
steps down once its removal is committed; asked to remove itself, the
leader first transfers leadership to the most caught-up voter, so writes
pause for a hand-over, not an election).  Each is one Raft configuration
entry, one server at a time (``rakit.raft.core`` rules 12-16), answered once
committed: ``{"id", "voters", "learners", "index"}``.  Refused with ``409``
and nothing changed: ``member_exists`` (the id or the URL), ``unknown_member``,
``last_voter``, ``conf_change_in_progress``, ``learner_not_caught_up``,
``already_voter``.  An add or a remove also waits (up to ``SETTLE_TIMEOUT``)
until every member that stays has reported the current membership
generation to this node's cache, and is refused with
``conf_change_in_progress`` if one has not: the cache's coherence needs live
nodes at most one member-set change apart (``rakit.cache.service``,
"Membership").  A member that is down and was not heard since the last
add or remove must be removed before another node is added.  A new node is usually started with ``rakit node --join
<url of any member>``, which does the add itself.

``/cluster/transfer-leader``: hand Raft leadership to another voter (thesis 3.10).

``POST /cluster/transfer-leader {"to"?: node id}`` -> ``{"leader", "previous", "took_ms"}``
once ``to`` (default: the most caught-up other voter) leads.  Any node
accepts it and relays it to the leader.  The leader stops taking proposals,
brings the target's log up to date and sends it ``TimeoutNow``; the target
starts an election at once and wins it (no pre-vote, no lease wait), so the
hand-over takes about one round trip and one fsync instead of an election
timeout.  Used before a planned restart or removal of the leader.
Refused: ``409 not_a_voter`` (an unknown node or a learner),
``503 transfer_in_progress`` / ``unavailable`` (another transfer runs, or the
target did not take over within 2 s; the old leader then leads again).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.responses import Response

from rakit.errors import ConfChangeInProgress, Forbidden, NotLeader
from rakit.http.bodies import AddMemberBody, PromoteBody, TransferBody
from rakit.http.json import json_response
from rakit.http.prologue import Call
from rakit.http.security import JOINING_NODE
from rakit.raft.messages import ConfChange

TRANSFER_TIMEOUT = 2.0
CHANGE_TIMEOUT = 5.0
SETTLE_TIMEOUT = 4.0
SETTLE_POLL = 0.05


def members_view(runtime: Any) -> dict[str, Any]:
    driver = runtime.driver
    core = driver.core
    conf = core.conf_state
    leads = driver.is_leader

    def entry(node: str, learner: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"id": node, "url": driver.addresses.get(node)}
        if learner and leads:
            out["caught_up"] = core.is_caught_up(node)
        return out

    return {
        "node_id": runtime.node_id,
        "leader": driver.leader_id,
        "voters": [entry(n, False) for n in conf.voters],
        "learners": [entry(n, True) for n in conf.learners],
        "pending_change": core.pending_conf_index > core.commit_index,
    }


async def list_members(call: Call[None]) -> Response:
    return json_response(members_view(call.runtime))


async def _wait_settled(runtime: Any, change: ConfChange) -> None:
    """Until the last member-set change reached every staying member's cache (see the module doc)."""
    if change.op == "promote":
        return  # the member set does not change
    driver, book = runtime.driver, runtime.members
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        core = driver.core
        members = book.members if book.members is not None else core.conf_state.members
        stay = [n for n in members if not (change.op == "remove" and n == change.node)]
        applied = core.applied_index >= core.pending_conf_index
        lagging = runtime.cache.lagging(stay, book.generation) if applied else []
        if applied and not lagging:
            return
        if time.monotonic() >= deadline:
            who = ", ".join(lagging) if lagging else runtime.node_id
            raise ConfChangeInProgress(
                f"the last membership change (generation {book.generation}) has not reached the cache "
                f"of {who} within {SETTLE_TIMEOUT:g} s; retry, or remove a member that is down first"
            )
        await asyncio.sleep(SETTLE_POLL)


async def _change(call: Call[Any], change: ConfChange) -> Response:
    runtime = call.runtime
    driver = runtime.driver
    if change.op == "remove" and change.node == runtime.node_id and len(driver.core.voters) > 1:
        # Removing the leader: hand leadership over first (one round trip instead of an
        # election after it steps down), then the new leader commits the removal.
        new = await driver.transfer_leader(None, TRANSFER_TIMEOUT)
        if new != runtime.node_id:
            raise NotLeader(new)  # on_leader relays the request to the new leader
    await _wait_settled(runtime, change)
    index = await driver.change_membership(change, CHANGE_TIMEOUT)
    conf = runtime.driver.core.conf_state
    return json_response(
        {"id": change.node, "voters": list(conf.voters), "learners": list(conf.learners), "index": index}
    )


def only_itself(call: Call[AddMemberBody]) -> None:
    """Where the request came in, before it is forwarded: a joining node adds only itself (rakit.http.security)."""
    joining = call.request.scope.get("state", {}).get(JOINING_NODE)
    if joining is not None and joining != call.body.id:
        raise Forbidden(f"node {joining!r} may add only itself, not {call.body.id!r}")


async def add_member(call: Call[AddMemberBody]) -> Response:
    req = call.body
    return await _change(call, ConfChange.add_learner(req.id, req.url.rstrip("/")))


async def promote_member(call: Call[PromoteBody]) -> Response:
    return await _change(call, ConfChange.promote(call.names["id"]))


async def remove_member(call: Call[None]) -> Response:
    return await _change(call, ConfChange.remove(call.names["id"]))


async def transfer_leader(call: Call[TransferBody]) -> Response:
    runtime = call.runtime
    started = time.monotonic()
    new = await runtime.driver.transfer_leader(call.body.to, TRANSFER_TIMEOUT)
    took_ms = round((time.monotonic() - started) * 1000, 1)
    return json_response({"leader": new, "previous": runtime.node_id, "took_ms": took_ms})
