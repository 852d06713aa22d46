"""The KV chaos clients against an in-memory KV that keeps the HTTP contract (and against broken ones):
the requests they send, what they record, and what the KV checkers then say of the recorded history."""

from __future__ import annotations

import asyncio
from typing import Any

from rakit.chaos import workloads as wl
from rakit.chaos import workloads_kv as wkv
from rakit.chaos.checkers import check_all
from rakit.chaos.history import History, Verdict
from rakit.chaos.run import RunConfig


class FakeKv:
    """The KV of the contract in one dict (one revision counter), with switchable faults.

    ``stale_node``: that node answers gets from a copy frozen at the first request (a follower that
    never catches up, serving reads without a read index); ``lose_every``: every n-th txn that
    succeeds answers so without writing; ``drop_every``: every n-th write is applied and its answer
    lost (the client sees a timeout: an ``info`` op).
    """

    def __init__(self, stale_node: str | None = None, lose_every: int = 0, drop_every: int = 0) -> None:
        self.data: dict[str, dict[str, Any]] = {}
        self.revision = 0
        self.stale_node = stale_node
        self.frozen: dict[str, dict[str, Any]] | None = None
        self.lose_every = lose_every
        self.drop_every = drop_every
        self.txns = 0
        self.writes = 0

    def _put(self, key: str, value: Any) -> int:
        self.revision += 1
        old = self.data.get(key)
        self.data[key] = {
            "value": value,
            "mod_revision": self.revision,
            "create_revision": old["create_revision"] if old else self.revision,
            "version": old["version"] + 1 if old else 1,
        }
        return self.revision

    def _holds(self, compare: dict[str, Any]) -> bool:
        cell = self.data.get(compare["key"])
        assert compare["op"] == "=="
        if compare["target"] == "exists":
            return (cell is not None) == compare["value"]
        assert compare["target"] == "value"
        return cell is not None and cell["value"] == compare["value"]

    def answer(self, method: str, node: str, path: str, body: Any) -> wl.Answer:
        if self.frozen is None:
            self.frozen = {k: dict(v) for k, v in self.data.items()}
        if method == "GET":
            key = path.removeprefix("/kv/get/")
            cell = (self.frozen if node == self.stale_node else self.data).get(key)
            if cell is None:
                return wl.Answer(404, {"error": "not_found", "detail": key})
            return wl.Answer(200, {"key": key, **cell, "revision": self.revision, "index": cell["mod_revision"]})
        self.writes += 1
        answer = self._write(path, body)
        if self.drop_every and self.writes % self.drop_every == 0:
            return wl.Answer(None, error="TimeoutError")
        return answer

    def _write(self, path: str, body: dict[str, Any]) -> wl.Answer:
        key = body.get("key", "")
        if path == "/kv/put":
            cell = self.data.get(key)
            if "if_revision" in body and (cell["mod_revision"] if cell else 0) != body["if_revision"]:
                current = cell["mod_revision"] if cell else None
                return wl.Answer(409, {"error": "revision_mismatch", "detail": "", "current_revision": current})
            previous = cell["mod_revision"] if cell else None
            revision = self._put(key, body["value"])
            return wl.Answer(200, {"key": key, "revision": revision, "previous_revision": previous, "index": revision})
        if path == "/kv/delete":
            deleted = int(self.data.pop(key, None) is not None)
            self.revision += deleted
            return wl.Answer(200, {"deleted": deleted, "revision": self.revision, "index": self.revision})
        assert path == "/kv/txn"
        succeeded = all(self._holds(c) for c in body["compare"])
        results = []
        if succeeded:
            self.txns += 1
            lost = self.lose_every and self.txns % self.lose_every == 0
            for step in body["success"]:
                put = step["put"]
                results.append({"revision": self.revision + 1 if lost else self._put(put["key"], put["value"])})
        return wl.Answer(200, {"succeeded": succeeded, "revision": self.revision, "results": results})


class FakeContext(wl.Context):
    """A context whose requests go to ``kv``; it stops after ``budget`` requests."""

    def __init__(self, kv: FakeKv, budget: int) -> None:
        super().__init__(
            session=None,  # type: ignore[arg-type]
            urls={"node1": "http://a", "node2": "http://b", "node3": "http://c"},
            recorder=wl.Recorder(),
            stop=asyncio.Event(),
            seed=3,
        )
        self.kv = kv
        self.budget = budget
        self.sent: list[tuple[str, str, str, Any, float]] = []

    async def request(self, method: str, node: str, path: str, body: Any = None, timeout: float = 5.0) -> wl.Answer:
        self.sent.append((method, node, path, body, timeout))
        if len(self.sent) >= self.budget:
            self.stop.set()
        await asyncio.sleep(0)
        return self.kv.answer(method, node, path, body)


FAST = wkv.KvSettings(gap=(0.0, 0.001))


def run_kv(kv: FakeKv, budget: int = 600, settings: wkv.KvSettings = FAST) -> tuple[History, FakeContext]:
    """Both KV workloads until ``budget`` requests, then the final counter reads: the recorded history."""
    ctx = FakeContext(kv, budget)

    async def main() -> None:
        tasks = wkv.start(ctx, ["kv"], settings)
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
        ctx.stop.clear()
        assert await wkv.finish(ctx, ["kv"], settings, timeout=10) == {"kv_counters_read": True}

    asyncio.run(main())
    history = History(meta={"workloads": ["kv"]}, ops=sorted(ctx.recorder.ops, key=lambda op: op.complete))
    return history, ctx


def kv_verdicts(history: History) -> dict[str, Verdict]:
    return {v.workload: v for v in check_all(history) if v.workload.startswith("kv")}


def test_kv_clients_send_every_kind_of_request_through_random_nodes_with_bounded_timeouts() -> None:
    history, ctx = run_kv(FakeKv(), budget=400)
    ops = history.ops
    assert len(ops) == len(ctx.sent)
    assert {op.workload for op in ops} == {"kv", "kv-counters"}
    kinds = {(op.workload, op.f, op.type) for op in ops}
    assert {("kv", "get", "ok"), ("kv", "put", "ok"), ("kv", "delete", "ok"), ("kv", "cas", "ok")} <= kinds
    assert {("kv-counters", "get", "ok"), ("kv-counters", "cas", "ok")} <= kinds
    assert any(op.f == "cas" and "if_revision" in op.args for op in ops)  # CAS by revision
    assert any(op.f == "cas" and "expect" in op.args for op in ops if op.workload == "kv")  # and by value
    assert {op.node for op in ops if op.workload == "kv" and op.process == 0} == {"node1", "node2", "node3"}
    assert {op.args["key"] for op in ops if op.process == 900 and op.args.get("final")} == set(FAST.counters)
    assert {timeout for *_, timeout in ctx.sent} == {wkv.REQUEST_SECONDS}
    paths = {path.rsplit("/", 1)[0] if path.startswith("/kv/get/") else path for _, _, path, _, _ in ctx.sent}
    assert paths == {"/kv/get", "/kv/put", "/kv/delete", "/kv/txn"}
    # a counter starts absent: its first increment is a txn "exists == false -> put 1"
    first = next(op for op in ops if op.workload == "kv-counters" and op.f == "cas")
    assert first.args == {"key": first.args["key"], "expect": {"absent": True}, "value": 1}
    assert wkv.cas_body("c0", {"value": 4}, 5) == {
        "compare": [{"key": "c0", "target": "value", "op": "==", "value": 4}],
        "success": [{"put": {"key": "c0", "value": 5}}],
        "failure": [],
    }


def test_kv_answers_are_classified_as_the_checker_expects() -> None:
    assert wkv.get_result(wl.Answer(404, {"error": "not_found"})) == ("ok", {"found": False})
    assert wkv.get_result(wl.Answer(200, {"value": 1}))[1] == {"value": 1, "found": True}
    assert wkv.get_result(wl.Answer(503, {"error": "no_leader"}))[0] == "info"
    assert wkv.txn_result(wl.Answer(200, {"succeeded": True, "revision": 3})) == (
        "ok",
        {"succeeded": True, "revision": 3},
    )
    assert wkv.txn_result(wl.Answer(200, {"succeeded": False, "revision": 3})) == (
        "fail",
        {"succeeded": False, "revision": 3},
    )
    assert wkv.txn_result(wl.Answer(None, error="TimeoutError"))[0] == "info"  # sent, no answer
    assert wkv.txn_result(wl.Answer(500, None))[0] == "info"
    assert wkv.txn_result(wl.Answer(None, error="ClientConnectorError", connect_failed=True))[0] == "fail"
    assert wl.classify(wl.Answer(409, {"error": "revision_mismatch"}))[0] == "fail"


def test_a_history_of_a_correct_kv_passes_both_checkers() -> None:
    history, _ = run_kv(FakeKv(drop_every=7))  # with unknown writes (applied, answer lost)
    assert any(op.type == "info" for op in history.ops if op.workload == "kv-counters" and op.f == "cas")
    verdicts = kv_verdicts(history)
    assert list(verdicts) == ["kv", "kv-counters"]
    assert verdicts["kv"].valid, verdicts["kv"].violations
    assert verdicts["kv"].stats["ops"] == len(history.ops)
    counters = verdicts["kv-counters"]
    assert counters.valid, counters.violations
    assert counters.stats["increments_unknown"] > 0
    for key in FAST.counters:
        ok, unknown = counters.stats[f"{key}_ok"], counters.stats[f"{key}_unknown"]
        assert ok <= counters.stats[f"{key}_final"] <= ok + unknown


def test_stale_reads_from_a_lagging_node_are_not_linearizable() -> None:
    history, _ = run_kv(FakeKv(stale_node="node2"))
    verdicts = kv_verdicts(history)
    assert not verdicts["kv"].valid
    assert all(line.startswith("not linearizable") for line in verdicts["kv"].violations)


def test_lost_increments_fail_the_counter_check_and_linearizability() -> None:
    history, _ = run_kv(FakeKv(lose_every=5))
    verdicts = kv_verdicts(history)
    assert not verdicts["kv-counters"].valid
    assert any("lost" in line for line in verdicts["kv-counters"].violations)
    assert not verdicts["kv"].valid


def test_rakit_chaos_runs_the_kv_workloads_by_default() -> None:
    assert "kv" in RunConfig().workloads
    assert wkv.start(FakeContext(FakeKv(), 1), ["locks"], FAST) == []
