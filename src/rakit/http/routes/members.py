"""``/cluster/transfer-leader``: hand Raft leadership to another voter (thesis 3.10).

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

import time

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rakit.http.forward import on_leader
from rakit.http.json import Name, decode, json_response, read_body

TRANSFER_TIMEOUT = 2.0


class TransferBody(msgspec.Struct):
    to: Name | None = None


async def transfer_leader(request: Request) -> Response:
    runtime = request.app.state.runtime
    body = await read_body(request)
    parsed = decode(body or b"{}", TransferBody)

    async def leader() -> Response:
        started = time.monotonic()
        previous = runtime.node_id
        new = await runtime.driver.transfer_leader(parsed.to, TRANSFER_TIMEOUT)
        return json_response({"leader": new, "previous": previous,
                              "took_ms": round((time.monotonic() - started) * 1000, 1)})

    return await on_leader(runtime, request, body, leader, wait=TRANSFER_TIMEOUT)


routes = [
    Route("/cluster/transfer-leader", transfer_leader, methods=["POST"]),
]
