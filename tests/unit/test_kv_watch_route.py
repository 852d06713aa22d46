"""The watch's rules (rakit.http.routes.kv_watch) on a store and hub in memory, without a node."""

from __future__ import annotations

import asyncio
import json

from rakit.http.routes import kv_watch
from rakit.node.kv_watch import KvWatchHub
from rakit.statemachines.kv import History, KvDelete, KvPut, KvStore, KvTxn, TxnPut


def applied(store: KvStore, hub: KvWatchHub, index: int, command) -> None:
    store.apply(index, command)
    hub.on_applied(None, None)  # type: ignore[arg-type]


async def collect(stream, count: int, timeout: float = 2.0) -> list[dict]:
    out: list[dict] = []

    async def take() -> None:
        async for message in stream:
            out.append(json.loads(message.data))
            if len(out) >= count:
                return

    await asyncio.wait_for(take(), timeout)
    return out


async def test_a_stream_sends_matching_events_in_revision_order_and_follows_new_ones() -> None:
    store = KvStore()
    hub = KvWatchHub(store)
    applied(store, hub, 1, KvPut("a.x", b"1"))
    applied(store, hub, 2, KvPut("b.y", b"2"))
    applied(store, hub, 3, KvTxn([], [TxnPut("a.y", b"3"), TxnPut("a.z", b"4")], []))
    stream = kv_watch._stream(hub, lambda k: k.startswith("a."), 1)
    first = await collect(stream, 3)
    assert [(e["revision"], e["key"]) for e in first] == [(1, "a.x"), (3, "a.y"), (3, "a.z")]
    follow = asyncio.create_task(collect(stream, 1))
    await asyncio.sleep(0.01)
    applied(store, hub, 4, KvDelete("a.x"))
    (event,) = await follow
    assert (event["type"], event["key"], event["revision"], "value" in event) == ("delete", "a.x", 4, False)
    assert hub.watchers == 1 and hub.events_sent == 4


async def test_a_stream_from_before_the_history_gets_one_compacted_event_and_ends() -> None:
    store = KvStore(History(min_events=2, min_age=0, max_events=2))
    hub = KvWatchHub(store)
    for i in range(1, 6):
        applied(store, hub, i, KvPut(f"k{i}", b"1", now=float(i)))
    events = [json.loads(m.data) async for m in kv_watch._stream(hub, lambda k: True, 1)]
    assert events == [{"type": "compacted", "compact_revision": 4, "revision": 5}]
    assert hub.watchers == 0


async def test_a_long_poll_answers_at_the_first_event_or_empty_after_wait() -> None:
    store = KvStore()
    hub = KvWatchHub(store)
    empty = json.loads((await kv_watch._long_poll(hub, lambda k: True, 1, 0.05)).body)
    assert empty == {"events": [], "revision": 0}
    waiting = asyncio.create_task(kv_watch._long_poll(hub, "k".__eq__, 1, 5.0))
    await asyncio.sleep(0.01)
    applied(store, hub, 1, KvPut("other", b"0"))
    applied(store, hub, 2, KvPut("k", b'{"a": 1}'))
    answer = json.loads((await asyncio.wait_for(waiting, 2.0)).body)
    assert [(e["key"], e["value"], e["mod_revision"]) for e in answer["events"]] == [("k", {"a": 1}, 2)]
    assert answer["revision"] == 2
