"""How the chaos clients classify answers (the checkers' soundness rests on it) and spread over nodes."""

from __future__ import annotations

import asyncio

import pytest

from rakit.chaos import workloads as wl


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (wl.Answer(200, {"acquired": True}), "ok"),
        (wl.Answer(409, {"error": "timeout"}), "fail"),  # a definite refusal
        (wl.Answer(404, {"error": "not_in_flight"}), "fail"),
        (wl.Answer(422, {"error": "invalid_request"}), "fail"),
        (wl.Answer(503, {"error": "no_leader"}), "info"),  # may have been proposed before the answer
        (wl.Answer(503, {"error": "unavailable"}), "info"),
        (wl.Answer(500, None), "info"),
        (wl.Answer(None, error="TimeoutError"), "info"),  # sent, no answer: unknown
        (wl.Answer(None, error="ServerDisconnectedError"), "info"),
        (wl.Answer(None, error="ClientConnectorError", connect_failed=True), "fail"),  # never left
    ],
)
def test_classify(answer: wl.Answer, expected: str) -> None:
    assert wl.classify(answer)[0] == expected


def test_cache_miss_is_an_ok_read_and_queue_empty_is_an_ok_pop() -> None:
    assert wl._get_result(wl.Answer(404, {"error": "not_found"})) == ("ok", {"found": False})
    assert wl._get_result(wl.Answer(503, {"error": "unavailable"}))[0] == "info"
    assert wl._pop_result(wl.Answer(204)) == ("ok", {"empty": True})


def test_processes_are_spread_evenly_over_the_nodes() -> None:
    ctx = wl.Context(
        session=None,
        urls={"node2": "b", "node1": "a", "node3": "c"},  # type: ignore[arg-type]
        recorder=wl.Recorder(),
        stop=asyncio.Event(),
        seed=1,
    )
    homes = [ctx.home(p) for p in range(6)]
    assert homes == ["node1", "node2", "node3", "node1", "node2", "node3"]
    assert ctx.rng("locks", 1).random() == ctx.rng("locks", 1).random()  # one seed, one sequence
