"""``/kv``: the demo / diagnostic replicated map (exercises Raft end to end).

``POST /kv/put {"key", "value"}`` -> ``{"key", "index"}`` once committed and applied;
``GET /kv/get/{key}`` -> ``{"key", "value", "index"}`` (linearizable, ReadIndex);
``POST /kv/delete {"key"}`` -> ``{"deleted": bool, "index"}``;
``POST /kv/incr {"key", "delta"}`` -> ``{"key", "value", "index"}``.
"""

from __future__ import annotations

import msgspec
from starlette.responses import Response

from rakit.errors import InvalidRequest, NotFound
from rakit.http.bodies import IncrBody, KvKeyBody, PutBody
from rakit.http.json import check_value_size, json_response
from rakit.http.prologue import Call
from rakit.statemachines.kv import KvDelete, KvIncr, KvPut, KvResult


async def put(call: Call[PutBody]) -> Response:
    runtime, req = call.runtime, call.body
    value = bytes(req.value)
    if not value:
        raise InvalidRequest("Object missing required field `value`", field="value")
    check_value_size(value)
    result: KvResult = await runtime.driver.propose(runtime.machines.encode(KvPut(req.key, value)))
    return json_response({"key": req.key, "index": result.index})


async def delete(call: Call[KvKeyBody]) -> Response:
    runtime = call.runtime
    result: KvResult = await runtime.driver.propose(runtime.machines.encode(KvDelete(call.body.key)))
    return json_response({"deleted": result.existed, "index": result.index})


async def incr(call: Call[IncrBody]) -> Response:
    runtime, req = call.runtime, call.body
    result: KvResult = await runtime.driver.propose(runtime.machines.encode(KvIncr(req.key, req.delta)))
    if not result.existed:
        raise InvalidRequest(f"the value of {req.key!r} is not an integer", field="key")
    return json_response({"key": req.key, "value": msgspec.Raw(result.value or b"0"), "index": result.index})


async def get(call: Call[None]) -> Response:
    runtime, key = call.runtime, call.names["key"]
    await runtime.driver.read_barrier()
    found = runtime.kv.get(key)
    if found is None:
        raise NotFound(f"no key {key!r}")
    value, index = found
    return json_response({"key": key, "value": msgspec.Raw(value), "index": index})
