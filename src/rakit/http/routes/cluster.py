"""``/health``, ``/status`` and ``/metrics``: what operators and the launcher read.

Both ``/health`` and ``/status`` carry ``"queue"``: whether this node's Redis
serves it (``rakit.queue.redis_state``).  ``/health`` stays ``200`` whatever
Redis does (peers probe it for liveness) and, being open without a token,
says only ``{"available": true|false|null}``; ``/status`` adds ``detail``
(what Redis said, e.g. ``"Redis refused the node: NOAUTH ..."``) and
``since`` (epoch seconds of the last change).  ``available`` is null until
the first Redis call ended (a PING at start).
"""

from __future__ import annotations

import hashlib
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from rakit.http.json import json_response
from rakit.node import consistency


def _queue_state(runtime: Any, *, detail: bool) -> dict[str, Any]:
    try:
        queue = runtime.queue
    except AssertionError:  # the runtime has not started
        queue = None
    if queue is None:
        return {"available": None, "detail": None, "since": None} if detail else {"available": None}
    return queue.redis_state.view(detail=detail)  # type: ignore[no-any-return]


async def health(request: Request) -> Response:
    runtime = request.app.state.runtime
    return json_response({"status": "ok", "node_id": runtime.node_id, "queue": _queue_state(runtime, detail=False)})


async def status(request: Request) -> Response:
    runtime = request.app.state.runtime
    return json_response({**runtime.driver.status(), "queue": _queue_state(runtime, detail=True)})


async def metrics(request: Request) -> Response:
    return Response(request.app.state.runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def digest(request: Request) -> Response:
    """Diagnostic: this replica's applied index and a hash of its state machines.

    Replicas that applied the same index must show the same digest; tests use
    it to prove nothing diverged.
    """
    runtime = request.app.state.runtime
    view = consistency.local_view(runtime)
    state = hashlib.sha256(runtime.machines.state()).hexdigest()
    chain = {"base": view["base"], "index": view["index"], "checkpoints": view["checkpoints"]}
    return json_response({"node_id": runtime.node_id, "applied": view["applied"], "digest": state, "log_chain": chain})


async def cluster_consistency(request: Request) -> Response:
    """Whether every member's log agrees with the others' (``rakit.node.consistency``)."""
    return json_response(await consistency.survey(request.app.state.runtime))
