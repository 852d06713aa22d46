"""``/kv``: the KV store's handlers (docs/api.md v2 "KV"); the watch is ``rakit.http.routes.kv_watch``.

Writes run on the leader (the prologue forwards them) and answer once
applied; reads run where they land, linearizable through
``rakit.http.reads`` unless ``consistency=serializable``.  A name in a
query (``prefix``, ``after``) is checked here, and a prefix operation needs
a grant covering ``prefix*``.
"""

from __future__ import annotations

import re
import time
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from rakit.errors import InvalidRequest, NotFound, RevisionMismatch, SessionNotFound
from rakit.http.identity import require
from rakit.http.json import check_value_size, json_response, path_key, query_number
from rakit.http.kv_bodies import (
    MAX_RANGE_LIMIT,
    IncrBody,
    KvDeleteBody,
    KvPutBody,
    OpBody,
    TxnBody,
)
from rakit.http.prologue import Call
from rakit.http.reads import leader_read_index, linearizable
from rakit.statemachines.coordination import SessionKeyPut
from rakit.statemachines.holds import Refused
from rakit.statemachines.kv import (
    Compare,
    KvDelete,
    KvDeleted,
    KvIncr,
    KvIncremented,
    KvMismatch,
    KvPut,
    KvPutDone,
    KvRecord,
    KvTxn,
    KvTxnDone,
    TxnDelete,
    TxnDeleteDone,
    TxnGet,
    TxnPut,
)

_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{0,128}")


def query_prefix(request: Request, name: str = "prefix") -> str:
    """A prefix from the query string ("" when absent): a key's alphabet, at most 128 characters."""
    text = request.query_params.get(name, "")
    if _PREFIX.fullmatch(text) is None:
        raise InvalidRequest(f"{name} must be at most 128 characters of [A-Za-z0-9_.:-], got {text!r}", field=name)
    return text


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    value = query_number(request, name, default, low, high)
    if value != int(value):
        raise InvalidRequest(f"{name} must be an integer, got {request.query_params.get(name)!r}", field=name)
    return int(value)


def serializable(request: Request) -> bool:
    consistency = request.query_params.get("consistency", "linearizable")
    if consistency not in ("linearizable", "serializable"):
        raise InvalidRequest(
            f"consistency must be linearizable or serializable, got {consistency!r}", field="consistency"
        )
    return consistency == "serializable"


def record_answer(record: KvRecord, revision: int) -> dict[str, Any]:
    return {
        "key": record.key,
        "value": msgspec.Raw(record.value),
        "create_revision": record.create_revision,
        "mod_revision": record.mod_revision,
        "version": record.version,
        "revision": revision,
        "index": record.mod_revision,
    }


def item_answer(record: KvRecord) -> dict[str, Any]:
    return {
        "key": record.key,
        "value": msgspec.Raw(record.value),
        "create_revision": record.create_revision,
        "mod_revision": record.mod_revision,
        "version": record.version,
    }


def _refused(result: Refused) -> Exception:
    if result.code == "session_not_found":
        return SessionNotFound(result.detail)
    return InvalidRequest(result.detail or result.code)


def _mismatch(result: KvMismatch) -> RevisionMismatch:
    return RevisionMismatch(
        f"{result.key!r} is at revision {result.current_revision}"
        if result.current_revision
        else f"no key {result.key!r}",
        current_revision=result.current_revision,
    )


async def _propose(call: Call[Any], command: Any) -> Any:
    runtime = call.runtime
    return await runtime.driver.propose(runtime.machines.encode(command))


# -- writes (on the leader) ---------------------------------------------------------------------


async def put(call: Call[KvPutBody]) -> Response:
    req = call.body
    value = bytes(req.value)
    check_value_size(value)
    if_revision = req.if_revision
    if req.if_absent:
        if if_revision not in (None, 0):
            raise InvalidRequest("if_absent with an if_revision other than 0", field="if_absent")
        if_revision = 0
    now = time.time()
    command: Any
    if req.session_id is not None:
        put_command = KvPut(req.key, value, if_revision, None, req.session_id, now)
        command = SessionKeyPut(put_command, req.client_id)
    else:
        command = KvPut(req.key, value, if_revision, req.ttl, None, now)
    result = await _propose(call, command)
    if isinstance(result, KvMismatch):
        raise _mismatch(result)
    if isinstance(result, Refused):
        raise _refused(result)
    assert isinstance(result, KvPutDone)
    return json_response(
        {
            "key": req.key,
            "revision": result.revision,
            "previous_revision": result.previous_revision,
            "index": result.revision,
        }
    )


async def delete(call: Call[KvDeleteBody]) -> Response:
    req = call.body
    if (req.key is None) == (req.prefix is None):
        raise InvalidRequest("give exactly one of key and prefix", field="key")
    if req.prefix is not None:
        if req.if_revision is not None:
            raise InvalidRequest("if_revision applies to one key, not to a prefix", field="if_revision")
        require(call.request, "kv", "write", req.prefix + "*")
        command = KvDelete(req.prefix, None, True, time.time())
    else:
        assert req.key is not None
        require(call.request, "kv", "write", req.key)
        command = KvDelete(req.key, req.if_revision, False, time.time())
    result = await _propose(call, command)
    if isinstance(result, KvMismatch):
        raise _mismatch(result)
    assert isinstance(result, KvDeleted)
    return json_response({"deleted": result.deleted, "revision": result.revision, "index": result.revision})


async def incr(call: Call[IncrBody]) -> Response:
    req = call.body
    result = await _propose(call, KvIncr(req.key, req.delta, time.time()))
    if isinstance(result, Refused):
        raise InvalidRequest(result.detail, field="key")
    assert isinstance(result, KvIncremented)
    return json_response(
        {"key": req.key, "value": msgspec.Raw(result.value), "revision": result.revision, "index": result.revision}
    )


def _op(request: Request, op: OpBody, where: str) -> TxnPut | TxnDelete | TxnGet:
    given = [x for x in (op.put, op.delete, op.get) if x is not None]
    if len(given) != 1:
        raise InvalidRequest(f"each op of {where} is one of put, delete and get", field=where)
    if op.put is not None:
        value = bytes(op.put.value)
        check_value_size(value)
        require(request, "kv", "write", op.put.key)
        return TxnPut(op.put.key, value)
    if op.delete is not None:
        require(request, "kv", "write", op.delete.key)
        return TxnDelete(op.delete.key)
    assert op.get is not None
    require(request, "kv", "read", op.get.key)
    return TxnGet(op.get.key)


def _txn_command(request: Request, body: TxnBody) -> KvTxn:
    compares: list[Compare] = []
    for c in body.compare:
        value = bytes(c.value)
        decoded = msgspec.json.decode(value)
        if c.target == "exists" and (c.op not in ("==", "!=") or not isinstance(decoded, bool)):
            raise InvalidRequest("an exists compare is == or != true or false", field="compare")
        if c.target not in ("exists", "value") and (not isinstance(decoded, int) or isinstance(decoded, bool)):
            raise InvalidRequest(f"a {c.target} compare needs an integer value", field="compare")
        require(request, "kv", "read", c.key)
        compares.append(Compare(c.key, c.target, c.op, value))
    branches = []
    for where, ops in (("success", body.success), ("failure", body.failure)):
        branch = [_op(request, op, where) for op in ops]
        written = [o.key for o in branch if not isinstance(o, TxnGet)]
        if len(written) != len(set(written)):
            raise InvalidRequest(f"{where} writes one key twice", field=where)
        branches.append(branch)
    return KvTxn(compares, branches[0], branches[1], time.time())


async def txn(call: Call[TxnBody]) -> Response:
    command = _txn_command(call.request, call.body)
    result = await _propose(call, command)
    if isinstance(result, Refused):
        raise InvalidRequest(result.detail)
    assert isinstance(result, KvTxnDone)
    results: list[Any] = []
    for r in result.results:
        if isinstance(r, KvRecord):
            results.append(record_answer(r, result.revision))
        elif isinstance(r, TxnDeleteDone):
            results.append({"revision": r.revision, "deleted": r.deleted})
        elif r is None:
            results.append(None)
        else:
            results.append({"revision": r.revision})
    return json_response({"succeeded": result.succeeded, "revision": result.revision, "results": results})


# -- reads (where they land) ------------------------------------------------------------------------


async def get(call: Call[None]) -> Response:
    runtime, key = call.runtime, call.names["key"]
    if not serializable(call.request):
        await linearizable(runtime, call.request)
    store = runtime.kv
    record = store.get(key)
    if record is None:
        raise NotFound(f"no key {key!r}")
    return json_response(record_answer(record, store.revision))


async def range_(call: Call[None]) -> Response:
    request, runtime = call.request, call.runtime
    prefix = query_prefix(request)
    after_text = request.query_params.get("after")
    after = path_key(after_text, "after") if after_text is not None else None
    limit = query_int(request, "limit", 1000, 1, MAX_RANGE_LIMIT)
    require(request, "kv", "read", prefix + "*")
    if not serializable(request):
        await linearizable(runtime, request)
    store = runtime.kv
    items, more = store.range(prefix, limit, after)  # one cut: nothing applies between these lines
    return json_response({"items": [item_answer(r) for r in items], "more": more, "revision": store.revision})


async def read_index(call: Call[None]) -> Response:
    return json_response({"index": await leader_read_index(call.runtime, call.names.get("node"))})
