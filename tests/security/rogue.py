"""A rogue "member" for the security tests: a small fake node process.

    python rogue.py --port P --id evil [--secret S] [--term T]

It serves ``/raft/stream`` and ``/cache/stream`` like a node would.  With
``--secret`` it proves the cluster secret when it accepts a stream (it knows
the secret: a member gone bad); without it, it cannot.  It answers every Raft
frame with an ``AppendEntriesResp`` of term ``--term`` (default 2**62, the
wire's bound) and every cache frame with a reply whose clock is far ahead.
It prints one JSON line per event (``accepted``, ``frame``) on stdout, so the
test can count what the cluster sent it.
"""

from __future__ import annotations

import argparse
import json
import sys

from aiohttp import WSMsgType, web

from rakit.cache.rules.messages import BatchReply
from rakit.cache.rules.messages import encode as encode_cache
from rakit.raft.messages import AppendEntriesResp, Batch, decode_batch, encode_batch
from rakit.security.internal import InternalAuth


def event(kind: str, **fields: object) -> None:
    print(json.dumps({"event": kind, **fields}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--id", default="evil")
    parser.add_argument("--secret")
    parser.add_argument("--term", type=int, default=2**62)
    args = parser.parse_args()
    auth = InternalAuth(args.secret, args.id)

    async def raft_stream(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=256 * 1024 * 1024)
        for name, value in auth.proof_headers(request.headers):
            ws.headers[name.decode()] = value.decode()
        await ws.prepare(request)
        event("accepted", path="/raft/stream", caller=request.headers.get("x-rakit-node"))
        async for frame in ws:
            if frame.type != WSMsgType.BINARY:
                break
            batch = decode_batch(frame.data)
            event(
                "frame",
                path="/raft/stream",
                src=batch.src,
                messages=len(batch.messages),
                entries=sum(len(getattr(m, "entries", ())) for m in batch.messages),
            )
            reply = AppendEntriesResp(term=args.term, src=args.id, dst=batch.src, success=False, index=0)
            await ws.send_bytes(encode_batch(Batch(args.id, [reply])))
        return ws

    async def cache_stream(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=64 * 1024 * 1024)
        for name, value in auth.proof_headers(request.headers):
            ws.headers[name.decode()] = value.decode()
        await ws.prepare(request)
        event("accepted", path="/cache/stream", caller=request.headers.get("x-rakit-node"))
        async for frame in ws:
            if frame.type != WSMsgType.BINARY:
                break
            event("frame", path="/cache/stream")
            await ws.send_bytes(encode_cache(BatchReply(args.id, 2**62, True, True, [], 0)))
        return ws

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "node_id": args.id})

    app = web.Application()
    app.router.add_get("/raft/stream", raft_stream)
    app.router.add_get("/cache/stream", cache_stream)
    app.router.add_get("/health", health)
    event("listening", port=args.port)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, handle_signals=True)


if __name__ == "__main__":
    sys.exit(main())
