"""A tiny in-process node serving the KV contract of API v2 ("KV") on an ``httpx.MockTransport``.

Enough to test the client's logic: revisions, conditional writes, range pages, txns, and a watch
stream (SSE) that can be made to break, fall silent or report compaction, connection by connection.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

MAX_STREAMS = 50  # a watch that reconnects more than this is a test's bug: the fake refuses


def reply(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body)


def err(status: int, code: str, **extra: Any) -> httpx.Response:
    return reply(status, {"error": code, "detail": code.replace("_", " "), **extra})


@dataclass
class StreamPlan:
    """How one watch connection ends: after ``events`` events (None: after the history), with
    ``error`` raised while reading (None: the stream just ends)."""

    events: int | None = None
    error: type[httpx.TransportError] | None = httpx.ReadError
    ping: bool = True


class Stream(httpx.SyncByteStream, httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes], error: type[httpx.TransportError] | None) -> None:
        self.chunks = chunks
        self.error = error

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        if self.error is not None:
            raise self.error("the stream broke")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.error is not None:
            raise self.error("the stream broke")


class FakeKv:
    def __init__(self) -> None:
        self.mutex = threading.Lock()
        self.revision = 0
        self.data: dict[str, dict[str, Any]] = {}
        self.history: list[dict[str, Any]] = []
        self.compact_revision = 0  # a watch from below this revision is told "compacted"
        self.requests: list[httpx.Request] = []
        self.plans: list[StreamPlan] = []  # one per watch connection, in order; none left: StreamPlan()
        self.faults: dict[str, list[type[httpx.TransportError]]] = {}  # path -> errors for its next requests
        self.before_write: Callable[[FakeKv, str, dict[str, Any]], None] | None = None
        self.before_watch: Callable[[FakeKv], object] | None = None  # runs once, at the next watch request

    # -- the map --------------------------------------------------------------------------

    def commit(self, changes: list[tuple[str, str, Any]]) -> int:
        """Apply ``(type, key, value)`` changes at one new revision (a txn, a prefix delete)."""
        self.revision += 1
        for kind, key, value in changes:
            self.apply(kind, key, value)
        return self.revision

    def apply(self, kind: str, key: str, value: Any) -> None:
        """One change at the current revision."""
        old = self.data.get(key)
        if kind == "put":
            rec = {
                "key": key,
                "value": value,
                "create_revision": old["create_revision"] if old else self.revision,
                "mod_revision": self.revision,
                "version": (old["version"] if old else 0) + 1,
            }
            self.data[key] = rec
            self.history.append({"type": "put", **rec, "revision": self.revision})
        elif old is not None:
            del self.data[key]
            self.history.append(
                {"type": "delete", "key": key, "mod_revision": self.revision, "revision": self.revision}
            )

    def put(self, key: str, value: Any) -> int:
        return self.commit([("put", key, value)])

    def answer_get(self, key: str) -> dict[str, Any] | None:
        rec = self.data.get(key)
        return None if rec is None else {**rec, "revision": self.revision, "index": rec["mod_revision"]}

    # -- HTTP -----------------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.mutex:
            self.requests.append(request)
            path = request.url.path
            if self.faults.get(path):
                raise self.faults[path].pop(0)("injected", request=request)
            body = json.loads(request.content) if request.content else {}
            if path == "/kv/watch":
                return self.watch(dict(request.url.params))
            if path.startswith("/kv/") and request.method == "POST" and self.before_write is not None:
                self.before_write(self, path, body)
            return self.answer(path, body, dict(request.url.params))

    def answer(self, path: str, b: dict[str, Any], q: dict[str, str]) -> httpx.Response:
        if path.startswith("/kv/get/"):
            got = self.answer_get(path.removeprefix("/kv/get/"))
            return err(404, "not_found") if got is None else reply(200, got)
        if path == "/kv/put":
            return self.put_answer(b)
        if path == "/kv/delete":
            return self.delete_answer(b)
        if path == "/kv/range":
            return self.range_answer(q)
        if path == "/kv/incr":
            old = self.data.get(b["key"], {}).get("value", 0)
            if not isinstance(old, int):
                return err(422, "invalid_request")
            rev = self.put(b["key"], old + b["delta"])
            return reply(200, {"key": b["key"], "value": old + b["delta"], "revision": rev, "index": rev})
        if path == "/kv/txn":
            return self.txn_answer(b)
        return err(404, "not_found")

    def current(self, key: str) -> int:
        return self.data[key]["mod_revision"] if key in self.data else 0

    def put_answer(self, b: dict[str, Any]) -> httpx.Response:
        key = b["key"]
        wanted = 0 if b.get("if_absent") else b.get("if_revision")
        if wanted is not None and self.current(key) != wanted:
            return err(409, "revision_mismatch", current_revision=self.current(key) or None)
        previous = self.current(key) or None
        rev = self.put(key, b["value"])
        return reply(200, {"key": key, "revision": rev, "previous_revision": previous, "index": rev})

    def delete_answer(self, b: dict[str, Any]) -> httpx.Response:
        if "prefix" in b:
            keys = sorted(k for k in self.data if k.startswith(b["prefix"]))
        else:
            if b.get("if_revision") is not None and self.current(b["key"]) != b["if_revision"]:
                return err(409, "revision_mismatch", current_revision=self.current(b["key"]) or None)
            keys = [b["key"]] if b["key"] in self.data else []
        rev = self.commit([("delete", k, None) for k in keys]) if keys else self.revision
        return reply(200, {"deleted": len(keys), "revision": rev, "index": rev})

    def range_answer(self, q: dict[str, str]) -> httpx.Response:
        prefix, limit, after = q.get("prefix", ""), int(q.get("limit", "1000")), q.get("after")
        keys = sorted(k for k in self.data if k.startswith(prefix) and (after is None or k > after))
        items = [self.data[k] for k in keys[:limit]]
        return reply(200, {"items": items, "more": len(keys) > limit, "revision": self.revision})

    def holds(self, c: dict[str, Any]) -> bool:
        rec = self.data.get(c["key"])
        if c["target"] == "exists":
            actual: Any = rec is not None
        elif c["target"] == "value":
            if rec is None:
                return False
            actual = rec["value"]
        else:
            actual = rec[c["target"]] if rec else 0
        ops: dict[str, Callable[[Any, Any], bool]] = {
            "==": lambda a, v: a == v,
            "!=": lambda a, v: a != v,
            "<": lambda a, v: a < v,
            ">": lambda a, v: a > v,
        }
        return ops[c["op"]](actual, c["value"])

    def txn_answer(self, b: dict[str, Any]) -> httpx.Response:
        succeeded = all(self.holds(c) for c in b["compare"])
        ops = b["success" if succeeded else "failure"]
        writes = any(next(iter(o)) != "get" for o in ops)
        if writes:
            self.revision += 1
        results: list[Any] = []
        for o in ops:  # in order: a get sees the puts before it
            ((kind, args),) = o.items()
            if kind == "get":
                results.append(self.answer_get(args["key"]))
                continue
            existed = args["key"] in self.data
            self.apply(kind, args["key"], args.get("value"))
            results.append({"revision": self.revision} | ({"deleted": int(existed)} if kind == "delete" else {}))
        return reply(200, {"succeeded": succeeded, "revision": self.revision, "results": results})

    def watch(self, q: dict[str, str]) -> httpx.Response:
        if sum(r.url.path == "/kv/watch" for r in self.requests) > MAX_STREAMS:
            return err(500, "internal")
        if self.before_watch is not None:
            hook, self.before_watch = self.before_watch, None
            hook(self)
        start = int(q["from_revision"])
        plan = self.plans.pop(0) if self.plans else StreamPlan()
        chunks = [b": ping\n\n"] if plan.ping else []
        if start < self.compact_revision:
            gone = {"type": "compacted", "compact_revision": self.compact_revision, "revision": self.revision}
            chunks.append(f"data: {json.dumps(gone)}\n\n".encode())
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Stream(chunks, None))
        wanted = [
            e
            for e in self.history
            if e["revision"] >= start
            and (e["key"] == q["key"] if "key" in q else e["key"].startswith(q.get("prefix", "")))
        ]
        for e in wanted[: plan.events]:
            chunks.append(f"id: {e['revision']}\ndata: {json.dumps(e)}\n\n".encode())
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Stream(chunks, plan.error))

    # -- what the client sent ----------------------------------------------------------------

    def watches(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == "/kv/watch"]

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests if r.url.path == path]
