"""Raft RPC endpoints: a peer's msgpack ``Batch`` in, our messages for it out.

``/raft/stream`` is the WebSocket the peers' senders keep open: each binary
frame is a batch, stepped in arrival order; for each, once this node has
persisted what it implies, a frame goes back with what this node then has
for the sender (acks, votes) — answers in the order of the frames.
``POST /append_entries``, ``/request_vote`` and ``/install_snapshot`` do the
same exchange one request at a time.

A batch that does not decode, whose sender is not a member, or that carries
a message no Raft peer can send, is refused (422, or the stream is closed)
and changes nothing.  ``check_message`` is that last filter: the core trusts
its peers' messages to be well formed (a leader's entries follow its
``prev_index`` one by one, with terms that never go down and never pass the
leader's; a snapshot is one this node can restore, of this cluster's
members), and a malformed one would break its log's invariants (the node
stops: ``LogCorrupt``) or its state machines.  A term more than
``MAX_TERM_JUMP`` ahead of this node's is refused too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from rakit.errors import InvalidRequest
from rakit.http.json import read_body
from rakit.raft.messages import (
    ENTRY_NORMAL,
    AnyMessage,
    AppendEntries,
    Batch,
    Entry,
    InstallSnapshot,
    RequestVote,
    decode_batch,
    encode_batch,
)
from rakit.statemachines.registry import Registry

if TYPE_CHECKING:
    from rakit.node.runtime import NodeRuntime

log = logging.getLogger(__name__)

MAX_RPC_BYTES = 256 * 1024 * 1024
# A peer's term may be ahead of ours by at most this much.  Terms grow by one
# per election (and pre-vote keeps a partitioned node's from growing), so no
# honest peer is ever near it; without it one message with a term near the
# wire's bound (MAX_WIRE_INT) would move the cluster there, where the next
# election's term no longer decodes: no leader, ever again.
MAX_TERM_JUMP = 2**20
REPLY_TIMEOUT = 2.0
UNSUPPORTED_DATA = 1003


def accept_batch(runtime: "NodeRuntime", data: bytes) -> tuple[str, list[AnyMessage]]:
    """The sender and the messages meant for this node; InvalidRequest otherwise."""
    try:
        batch = decode_batch(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidRequest(f"malformed raft batch: {exc}") from None
    # Any node in this node's address book: the configured peers and every node a
    # configuration entry added (the core then filters by the configuration in force).
    if batch.src not in runtime.driver.addresses or batch.src == runtime.node_id:
        raise InvalidRequest(f"sender {batch.src!r} is not a peer of {runtime.node_id}")
    messages = [m for m in batch.messages if m.src == batch.src and m.dst == runtime.node_id]
    for message in messages:
        check_message(runtime, message)
    return batch.src, messages


def check_command(entry: Entry) -> None:
    """InvalidRequest if applying ``entry`` would stop the node rather than skip it.

    A command no state machine understands is applied as ``UnknownCommand`` on
    every replica (deterministic), but msgspec raises ``UnicodeDecodeError`` (or
    ``RecursionError``) rather than a decode error for some bytes, and the
    registry lets those through: such an entry, once committed, would stop every
    node applying it.  No leader proposes one.
    """
    try:
        msgspec.msgpack.decode(entry.data)
    except (UnicodeDecodeError, RecursionError) as exc:
        raise InvalidRequest(f"AppendEntries: entry {entry.index} cannot be applied: {exc}") from None
    except msgspec.MsgspecError:
        pass  # applied as an unknown command, the same way on every replica


def check_message(runtime: "NodeRuntime", m: AnyMessage) -> None:
    """InvalidRequest if ``m`` is not a message a Raft peer can send (see the module docstring)."""
    if m.term > runtime.driver.core.term + MAX_TERM_JUMP:
        raise InvalidRequest(f"{type(m).__name__}: term {m.term} is implausibly far ahead of "
                             f"{runtime.driver.core.term}")
    if isinstance(m, AppendEntries):
        if m.prev_term > m.term:
            raise InvalidRequest(f"AppendEntries: prev_term {m.prev_term} is above the term {m.term}")
        previous = m.prev_term
        for offset, entry in enumerate(m.entries):
            if entry.index != m.prev_index + 1 + offset:
                raise InvalidRequest(f"AppendEntries: entry {offset} has index {entry.index}, "
                                     f"not {m.prev_index + 1 + offset}")
            if not previous <= entry.term <= m.term:
                raise InvalidRequest(f"AppendEntries: entry {entry.index} has term {entry.term}, "
                                     f"outside [{previous}, {m.term}]")
            previous = entry.term
            if entry.kind == ENTRY_NORMAL and entry.data:
                check_command(entry)
    elif isinstance(m, RequestVote):
        if m.last_term > m.term:
            raise InvalidRequest(f"RequestVote: last_term {m.last_term} is above the term {m.term}")
    elif isinstance(m, InstallSnapshot):
        meta = m.snapshot.meta
        if meta.term > m.term:
            raise InvalidRequest(f"InstallSnapshot: snapshot term {meta.term} is above the term {m.term}")
        if not meta.conf_state().is_valid():
            raise InvalidRequest(f"InstallSnapshot: voters {meta.voters!r} / learners {meta.learners!r} "
                                 "are not a valid configuration")
        scratch = Registry([type(machine)() for machine in runtime.machines.machines.values()])
        try:
            scratch.restore(m.snapshot.data)
        except Exception as exc:  # whatever a machine's restore raises on bad data
            raise InvalidRequest(f"InstallSnapshot: the snapshot does not restore: "
                                 f"{type(exc).__name__}: {exc}") from None


async def answer_of(future: "asyncio.Future[list[AnyMessage]]") -> list[AnyMessage]:
    # Awaited directly under a deadline: wait_for would add a callback hop (one more loop
    # iteration) between the driver's answer and the frame that carries it.
    if future.done():
        return future.result()
    try:
        async with asyncio.timeout(REPLY_TIMEOUT):
            return await future
    except TimeoutError:
        return []


async def raft_messages(request: Request) -> Response:
    runtime = request.app.state.runtime
    src, messages = accept_batch(runtime, await read_body(request, limit=MAX_RPC_BYTES))
    answer = await answer_of(runtime.driver.exchange(src, messages))
    return Response(encode_batch(Batch(runtime.node_id, answer)), media_type="application/msgpack")


async def raft_stream(websocket: WebSocket) -> None:
    runtime: NodeRuntime = websocket.app.state.runtime
    await websocket.accept()
    answers: asyncio.Queue[tuple[float, asyncio.Future[list[AnyMessage]]]] = asyncio.Queue()

    async def write_answers() -> None:
        while True:
            started, future = await answers.get()
            reply = await answer_of(future)
            await websocket.send_bytes(encode_batch(Batch(runtime.node_id, reply)))
            runtime.metrics.rpc_serve_seconds.observe(time.perf_counter() - started)

    writer = asyncio.create_task(write_answers(), name="raft-stream-writer")
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            try:
                if data is None:
                    raise InvalidRequest("raft frames are binary")
                src, messages = accept_batch(runtime, data)
            except InvalidRequest as exc:
                log.warning("closing a raft stream: %s", exc.detail)
                await websocket.close(UNSUPPORTED_DATA, exc.detail[:120])
                return
            answers.put_nowait((time.perf_counter(), runtime.driver.exchange(src, messages)))
    except WebSocketDisconnect:
        return
    finally:
        writer.cancel()


routes = [
    WebSocketRoute("/raft/stream", raft_stream),
    Route("/request_vote", raft_messages, methods=["POST"]),
    Route("/append_entries", raft_messages, methods=["POST"]),
    Route("/install_snapshot", raft_messages, methods=["POST"]),
]
