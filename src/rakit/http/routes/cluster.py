"""``/health``, ``/status`` and ``/metrics``: what operators and the launcher read."""

from __future__ import annotations

import hashlib

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rakit.http.json import json_response


async def health(request: Request) -> Response:
    return json_response({"status": "ok", "node_id": request.app.state.runtime.node_id})


async def status(request: Request) -> Response:
    return json_response(request.app.state.runtime.driver.status())


async def metrics(request: Request) -> Response:
    return Response(request.app.state.runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def digest(request: Request) -> Response:
    """Diagnostic: this replica's applied index and a hash of its state machines.

    Replicas that applied the same index must show the same digest; tests use
    it to prove nothing diverged.
    """
    runtime = request.app.state.runtime
    applied = runtime.driver.core.applied_index
    state = hashlib.sha256(runtime.machines.snapshot()).hexdigest()
    return json_response({"node_id": runtime.node_id, "applied": applied, "digest": state})


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/status", status, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/debug/digest", digest, methods=["GET"]),
]
