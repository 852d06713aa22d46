"""``/kv``: the demo / diagnostic replicated map (exercises Raft end to end).

``POST /kv/put {"key", "value"}`` -> ``{"key", "index"}`` once committed and applied;
``GET /kv/get/{key}`` -> ``{"key", "value", "index"}`` (linearizable, ReadIndex);
``POST /kv/delete {"key"}`` -> ``{"deleted": bool, "index"}``;
``POST /kv/incr {"key", "delta"}`` -> ``{"key", "value", "index"}``.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rakit.errors import InvalidRequest, NotFound
from rakit.http.forward import on_leader
from rakit.http.identity import require
from rakit.http.json import Key, check_value_size, decode, json_response, path_key, read_body
from rakit.statemachines.kv import KvDelete, KvIncr, KvPut, KvResult


class PutBody(msgspec.Struct):
    key: Key
    value: msgspec.Raw


class KeyBody(msgspec.Struct):
    key: Key


class IncrBody(msgspec.Struct):
    key: Key
    delta: Annotated[int, msgspec.Meta(ge=-(2**53), le=2**53)] = 1


async def put(request: Request) -> Response:
    runtime = request.app.state.runtime
    body = await read_body(request)
    parsed = decode(body, PutBody)
    require(request, "kv", "write", parsed.key)
    value = bytes(parsed.value)
    if not value:
        raise InvalidRequest("Object missing required field `value`", field="value")
    check_value_size(value)
    command = runtime.machines.encode(KvPut(parsed.key, value))

    async def leader() -> Response:
        result: KvResult = await runtime.driver.propose(command)
        return json_response({"key": parsed.key, "index": result.index})

    return await on_leader(runtime, request, body, leader)


async def delete(request: Request) -> Response:
    runtime = request.app.state.runtime
    body = await read_body(request)
    parsed = decode(body, KeyBody)
    require(request, "kv", "write", parsed.key)
    command = runtime.machines.encode(KvDelete(parsed.key))

    async def leader() -> Response:
        result: KvResult = await runtime.driver.propose(command)
        return json_response({"deleted": result.existed, "index": result.index})

    return await on_leader(runtime, request, body, leader)


async def incr(request: Request) -> Response:
    runtime = request.app.state.runtime
    body = await read_body(request)
    parsed = decode(body, IncrBody)
    require(request, "kv", "write", parsed.key)
    command = runtime.machines.encode(KvIncr(parsed.key, parsed.delta))

    async def leader() -> Response:
        result: KvResult = await runtime.driver.propose(command)
        if not result.existed:
            raise InvalidRequest(f"the value of {parsed.key!r} is not an integer", field="key")
        return json_response({"key": parsed.key, "value": msgspec.Raw(result.value or b"0"), "index": result.index})

    return await on_leader(runtime, request, body, leader)


async def get(request: Request) -> Response:
    runtime = request.app.state.runtime
    key = path_key(request.path_params["key"])

    async def leader() -> Response:
        await runtime.driver.read_barrier()
        found = runtime.kv.get(key)
        if found is None:
            raise NotFound(f"no key {key!r}")
        value, index = found
        return json_response({"key": key, "value": msgspec.Raw(value), "index": index})

    return await on_leader(runtime, request, b"", leader)


routes = [
    Route("/kv/put", put, methods=["POST"]),
    Route("/kv/delete", delete, methods=["POST"]),
    Route("/kv/incr", incr, methods=["POST"]),
    Route("/kv/get/{key:whole}", get, methods=["GET"]),
]
