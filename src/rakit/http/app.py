"""The Starlette application of one node; its lifespan owns every background task."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware

from rakit.config import NodeConfig
from rakit.http import openapi
from rakit.http.endpoints import PERMISSIONS, routes
from rakit.http.errors import HANDLERS
from rakit.http.origin import OriginMiddleware, default_hosts
from rakit.http.routing import IndexedRouter
from rakit.http.security import SecurityMiddleware
from rakit.node.runtime import NodeRuntime
from rakit.security.internal import InternalAuth
from rakit.security.tokens import ClientAuth
from rakit.storage.datadir import DataDir

log = logging.getLogger(__name__)


def _settle_garbage_collector() -> None:
    """Keep full collections rare and short: they stop the event loop for all requests.

    Everything loaded at start (modules, routes, the runtime) is moved out of
    the collector's reach (``gc.freeze``), and older generations are collected
    less often.  Measured here: a node's full collection took 20-40 ms, which
    showed up as p99 spikes of every endpoint; the cache (100k entries) added
    25 ms more.  Nothing is lost: reference counting still frees everything,
    and cycles are still collected, just less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 100)


def create_app(config: NodeConfig, data_dir: DataDir) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = NodeRuntime(config, data_dir)
        await runtime.start()
        app.state.runtime = runtime
        task = asyncio.create_task(runtime.run(), name="node-runtime")
        task.add_done_callback(_die_if_crashed)
        _settle_garbage_collector()
        try:
            yield
        finally:
            task.remove_done_callback(_die_if_crashed)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await runtime.close()

    internal, clients = InternalAuth(config.cluster_secret, config.node_id), ClientAuth(config.auth_tokens, PERMISSIONS)
    hosts = (
        frozenset(config.allowed_hosts)
        if config.allowed_hosts is not None
        else default_hosts(config.host, config.peers.values())
    )
    middleware = [Middleware(OriginMiddleware, allowed_hosts=hosts)]  # always: browsers reach loopback too
    if internal.enabled or clients.enabled:  # no cost when security is off
        middleware.append(Middleware(SecurityMiddleware, internal=internal, clients=clients))
    app = Starlette(exception_handlers=HANDLERS, middleware=middleware)
    app.router = IndexedRouter(routes(), lifespan=lifespan)  # finds a route by its path (see rakit.http.routing)
    app.state.docs = openapi  # what /openapi.json and /docs serve (rakit.http.routes.docs)
    app.state.internal_auth = internal
    app.state.client_auth = clients
    return app


def _die_if_crashed(task: asyncio.Task[None]) -> None:
    # The driver is the node: if it died of a bug, serving on would be lying.
    if not task.cancelled() and task.exception() is not None:
        log.critical("node runtime crashed", exc_info=task.exception())
        os._exit(70)
