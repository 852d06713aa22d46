"""``client.kv`` against a fake node (``kv_fake``): conditional writes, cas, txn builders, pages, and
the watch's rules (``rakit.client.kv_watch``): resume without repeats, compaction, dead streams."""

from __future__ import annotations

import contextlib
import http.server
import inspect
import itertools
import json
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from kv_fake import FakeKv, StreamPlan

from rakit.client import AsyncClient, Client, KvEvent, KvRecord, OutcomeUnknown, RevisionMismatch
from rakit.client.errors import ConnectionFailed, ServerError
from rakit.client.kv_txn import compare, op
from rakit.client.kv_watch import SseParser, WatchCursor

NODES = "http://n1:8001,http://n2:8001,http://n3:8001"


@pytest.fixture
def fake() -> FakeKv:
    return FakeKv()


@pytest.fixture
def client(fake: FakeKv) -> Iterator[Client]:
    c = Client(NODES, attempts=3, retry_deadline=5.0)
    c._runner.http.close()
    c._runner.http = httpx.Client(transport=httpx.MockTransport(fake))
    yield c
    c.close()


@pytest.fixture
async def aclient(fake: FakeKv) -> AsyncIterator[AsyncClient]:
    c = AsyncClient(NODES, attempts=3, retry_deadline=5.0)
    await c._runner.http.aclose()
    c._runner.http = httpx.AsyncClient(transport=httpx.MockTransport(fake))
    yield c
    await c.aclose()


def changes(events: list[KvEvent]) -> list[tuple[int, str | None, str, Any]]:
    return [(e.revision, e.key, e.type, e.value) for e in events]


# -- reads and writes --------------------------------------------------------------------------------


def test_get_answers_a_record_or_none(client: Client, fake: FakeKv) -> None:
    fake.put("a", 1)
    fake.put("a", {"x": [1, 2]})
    fake.put("b", None)
    assert client.kv.get("a") == KvRecord("a", {"x": [1, 2]}, 1, 2, 2, 3)
    assert client.kv.get("b") == KvRecord("b", None, 3, 3, 1, 3)  # a null value is not an absent key
    assert client.kv.get("nope") is None
    client.kv.get("a", serializable=True)
    assert fake.requests[-1].url.params["consistency"] == "serializable"
    assert "consistency" not in fake.requests[0].url.params


def test_a_false_condition_raises_revision_mismatch_with_the_current_revision(client: Client, fake: FakeKv) -> None:
    first = client.kv.put("k", "v1", if_absent=True)
    assert (first.revision, first.previous_revision) == (1, None)
    with pytest.raises(RevisionMismatch) as caught:
        client.kv.put("k", "v2", if_absent=True)
    assert caught.value.current_revision == 1 and caught.value.status == 409
    assert "current revision: 1" in str(caught.value)
    second = client.kv.put("k", "v2", if_revision=1)
    assert (second.revision, second.previous_revision) == (2, 1)
    with pytest.raises(RevisionMismatch) as stale:
        client.kv.delete("k", if_revision=1)
    assert stale.value.current_revision == 2
    assert client.kv.delete("k", if_revision=2) == 1
    with pytest.raises(RevisionMismatch) as gone:
        client.kv.put("k", "v3", if_revision=2)
    assert gone.value.current_revision is None
    assert fake.bodies("/kv/put")[0] == {"key": "k", "value": "v1", "if_absent": True}


def test_put_sends_ttl_and_session_id(client: Client, fake: FakeKv) -> None:
    client.kv.put("eph", 1, ttl=30)
    client.kv.put("owned", 2, session="s-17")
    assert fake.bodies("/kv/put") == [
        {"key": "eph", "value": 1, "ttl": 30},
        {"key": "owned", "value": 2, "session_id": "s-17"},
    ]
    with pytest.raises(ValueError, match="not granted"):
        client.kv.put("owned", 3, session=client.session())
    with pytest.raises(TypeError, match="value must be JSON-serializable"):
        client.kv.put("k", {1, 2})


def test_range_pages_and_scan_walks_every_page(client: Client, fake: FakeKv) -> None:
    for i in range(7):
        fake.put(f"jobs:{i}", i)
    fake.put("other", 0)
    page = client.kv.range("jobs:", limit=3)
    assert [r.key for r in page.items] == ["jobs:0", "jobs:1", "jobs:2"] and page.more and page.revision == 8
    assert all(r.revision == 8 for r in page.items)
    last = client.kv.range("jobs:", limit=3, after="jobs:5")
    assert [r.key for r in last.items] == ["jobs:6"] and not last.more
    assert [r.value for r in client.kv.scan("jobs:", page_size=3)] == list(range(7))
    assert [r.url.params.get("after") for r in fake.requests[-3:]] == [None, "jobs:2", "jobs:5"]


def test_delete_prefix_and_incr(client: Client, fake: FakeKv) -> None:
    fake.put("p:a", 1)
    fake.put("p:b", 2)
    fake.put("q", 3)
    assert client.kv.delete_prefix("p:") == 2
    assert sorted(fake.data) == ["q"]
    assert client.kv.incr("n") == 1 and client.kv.incr("n", 41) == 42
    assert fake.bodies("/kv/incr")[-1] == {"key": "n", "delta": 41}


# -- retries: what is safe to repeat ------------------------------------------------------------------


def test_an_unconditional_put_is_retried_on_another_node_after_a_timeout(client: Client, fake: FakeKv) -> None:
    fake.faults["/kv/put"] = [httpx.ReadTimeout]
    assert client.kv.put("k", 1).revision == 1
    hosts = [r.url.host for r in fake.requests]
    assert hosts == ["n1", "n2"]


def test_a_write_not_safe_to_repeat_is_not_retried_after_an_ambiguous_failure(client: Client, fake: FakeKv) -> None:
    fake.faults["/kv/incr"] = [httpx.ReadTimeout]
    with pytest.raises(OutcomeUnknown):
        client.kv.incr("n")
    fake.faults["/kv/put"] = [httpx.RemoteProtocolError]
    with pytest.raises(OutcomeUnknown):
        client.kv.put("k", 1, if_absent=True)
    assert [r.url.path for r in fake.requests] == ["/kv/incr", "/kv/put"]  # each sent once, never again
    assert "n" not in fake.data and "k" not in fake.data
    # No connection at all: it was never sent, so it is retried.
    fake.faults["/kv/incr"] = [httpx.ConnectError]
    assert client.kv.incr("n") == 1


def test_a_dropped_proposal_of_a_conditional_write_is_an_unknown_outcome(client: Client, fake: FakeKv) -> None:
    def dropped(node: FakeKv, path: str, body: dict[str, Any]) -> None:
        node.before_write = None
        raise _Answer(httpx.Response(503, json={"error": "unavailable", "detail": "proposal dropped"}))

    fake.before_write = dropped
    with pytest.raises(OutcomeUnknown) as caught:
        _answering(client, fake, lambda: client.kv.put("k", 1, if_revision=0))
    assert caught.value.status == 503


class _Answer(Exception):
    def __init__(self, response: httpx.Response) -> None:
        self.response = response


def _answering(client: Client, fake: FakeKv, call: Any) -> Any:
    """Run ``call`` with the fake's ``before_write`` able to answer a request itself (``_Answer``)."""

    def handler(request: httpx.Request) -> httpx.Response:
        try:
            return fake(request)
        except _Answer as answer:
            return answer.response

    client._runner.http = httpx.Client(transport=httpx.MockTransport(handler))
    return call()


# -- cas ----------------------------------------------------------------------------------------------


def test_cas_recomputes_after_a_rival_write_and_writes_with_if_revision(client: Client, fake: FakeKv) -> None:
    fake.put("counter", 10)
    rivals = iter([1, 1])  # two rival increments land between our read and our write

    def rival(node: FakeKv, path: str, body: dict[str, Any]) -> None:
        if path == "/kv/put" and next(rivals, None):
            node.put("counter", node.data["counter"]["value"] + 1)

    fake.before_write = rival
    seen: list[Any] = []

    def add(n: Any) -> Any:
        seen.append(n)
        return n + 1

    written = client.kv.cas("counter", add)
    assert seen == [10, 11, 12]  # fn saw each new value
    assert fake.data["counter"]["value"] == 13 and written.value == 13
    assert written == KvRecord("counter", 13, 1, 4, 4, 4)
    assert [b.get("if_revision") for b in fake.bodies("/kv/put")] == [1, 2, 3]


def test_cas_on_an_absent_key_writes_only_if_still_absent(client: Client, fake: FakeKv) -> None:
    written = client.kv.cas("new", lambda v: {"n": 1} if v is None else v)
    assert written == KvRecord("new", {"n": 1}, 1, 1, 1, 1)
    assert fake.bodies("/kv/put") == [{"key": "new", "value": {"n": 1}, "if_revision": 0}]


def test_cas_gives_up_after_its_retries(client: Client, fake: FakeKv) -> None:
    fake.put("hot", 0)

    def always(node: FakeKv, path: str, body: dict[str, Any]) -> None:
        node.put("hot", node.data["hot"]["value"] + 100)

    fake.before_write = always
    with pytest.raises(RevisionMismatch):
        client.kv.cas("hot", lambda v: v + 1, retries=3)
    assert len(fake.bodies("/kv/put")) == 4  # the first try and 3 retries


async def test_async_cas_and_reads(aclient: AsyncClient, fake: FakeKv) -> None:
    fake.put("c", 1)

    def rival_once(node: FakeKv, path: str, body: dict[str, Any]) -> None:
        node.before_write = None
        node.put("c", 5)

    fake.before_write = rival_once
    written = await aclient.kv.cas("c", lambda v: v * 2)
    assert written.value == 10 and fake.data["c"]["value"] == 10
    assert (await aclient.kv.get("c")) == KvRecord("c", 10, 1, 3, 3, 3)
    assert await aclient.kv.get("nope") is None
    with pytest.raises(RevisionMismatch):
        await aclient.kv.put("c", 0, if_absent=True)
    assert [r.key async for r in aclient.kv.scan("", page_size=1)] == ["c"]


# -- txn ----------------------------------------------------------------------------------------------


def test_txn_builders_send_the_api_form_and_gets_come_back_as_records(client: Client, fake: FakeKv) -> None:
    fake.put("mode", "blue")
    result = client.kv.txn(
        compare=[compare.value("mode") == "blue", compare.version("lock") == 0, compare.absent("lock")],
        success=[op.put("mode", "green"), op.get("mode"), op.get("missing")],
        failure=[op.get("mode")],
    )
    assert fake.bodies("/kv/txn")[0] == {
        "compare": [
            {"key": "mode", "target": "value", "op": "==", "value": "blue"},
            {"key": "lock", "target": "version", "op": "==", "value": 0},
            {"key": "lock", "target": "exists", "op": "==", "value": False},
        ],
        "success": [{"put": {"key": "mode", "value": "green"}}, {"get": {"key": "mode"}}, {"get": {"key": "missing"}}],
        "failure": [{"get": {"key": "mode"}}],
    }
    assert result.succeeded and result.revision == 2
    assert result.results[0] == {"revision": 2}
    assert result.results[1] == KvRecord("mode", "green", 1, 2, 2, 2) and result.results[2] is None
    failed = client.kv.txn([client.kv.compare.mod_revision("mode") < 2], [op.delete("mode")], [op.get("mode")])
    assert not failed.succeeded and failed.results == [KvRecord("mode", "green", 1, 2, 2, 2)]
    assert (compare.create_revision("a") > 3).op == ">" and (compare.exists("a") != True).op == "!="  # noqa: E712


def test_a_txn_with_writes_is_not_repeated_but_a_read_only_one_is(client: Client, fake: FakeKv) -> None:
    fake.faults["/kv/txn"] = [httpx.ReadTimeout, httpx.ReadTimeout]
    with pytest.raises(OutcomeUnknown):
        client.kv.txn([], [op.put("a", 1)])
    assert client.kv.txn([], [op.get("a")]).results == [None]


# -- watch: the pure rules ----------------------------------------------------------------------------


def test_sse_parser_joins_data_lines_and_skips_comments_and_other_fields() -> None:
    parser = SseParser()
    lines = [": ping", "", "id: 7", "event: change", 'data: {"a":', "data:1}", "retry: 100", "", ""]
    assert [d for d in map(parser.feed, lines) if d is not None] == ['{"a":\n1}']


def test_cursor_resumes_at_the_last_revision_and_skips_what_it_yielded() -> None:
    cursor = WatchCursor(5)

    def ev(rev: int, key: str) -> KvEvent:
        return KvEvent("put", key, None, rev)

    assert cursor.resume_from() == 5
    assert [cursor.admit(ev(r, k)) for r, k in [(4, "x"), (5, "a"), (5, "b")]] == [False, True, True]
    assert cursor.resume_from() == 5
    assert [cursor.admit(ev(r, k)) for r, k in [(5, "a"), (5, "b"), (5, "c"), (6, "a"), (5, "d")]] == [
        False,
        False,
        True,
        True,
        False,
    ]
    assert cursor.resume_from() == 6
    cursor.restart(10)
    assert cursor.resume_from() == 10 and not cursor.admit(ev(9, "z")) and cursor.admit(ev(10, "z"))


# -- watch: the loop ------------------------------------------------------------------------------------


def shared_revision_history(fake: FakeKv) -> None:
    fake.put("config:a", 1)  # revision 1
    fake.commit([("put", "config:b", 2), ("put", "config:c", 3), ("delete", "config:a", None)])  # revision 2
    fake.put("other", 0)  # revision 3: not watched
    fake.put("config:d", 4)  # revision 4


EXPECTED = [
    (1, "config:a", "put", 1),
    (2, "config:b", "put", 2),
    (2, "config:c", "put", 3),
    (2, "config:a", "delete", None),
    (4, "config:d", "put", 4),
]


def test_watch_resumes_across_a_dropped_stream_inside_a_revision_without_repeats(client: Client, fake: FakeKv) -> None:
    shared_revision_history(fake)
    fake.plans = [StreamPlan(events=2), StreamPlan(events=1, error=httpx.RemoteProtocolError)]
    events = list(itertools.islice(client.kv.watch(prefix="config:", start_revision=1), 5))
    assert changes(events) == EXPECTED
    watches = fake.watches()
    assert [w.url.params["from_revision"] for w in watches] == ["1", "2", "2"]
    assert [w.url.host for w in watches] == ["n1", "n2", "n3"]  # each reconnect to the next node
    assert all(w.url.params["prefix"] == "config:" for w in watches)


def test_watch_without_a_start_begins_after_the_revision_read_at_its_first_step(client: Client, fake: FakeKv) -> None:
    fake.put("k", "old")  # revision 1
    events = client.kv.watch("k")
    assert fake.requests == []  # nothing is read before the loop's first step
    fake.before_watch = lambda node: node.put("k", "new")  # revision 2, once the stream is asked for
    assert changes([next(events)]) == [(2, "k", "put", "new")]
    ranged, watched = fake.requests
    assert ranged.url.path == "/kv/range" and dict(ranged.url.params) == {"prefix": "k", "limit": "1"}
    assert dict(watched.url.params) == {"key": "k", "from_revision": "2"}


def test_a_dead_stream_is_noticed_by_its_read_timeout_and_reconnected(client: Client, fake: FakeKv) -> None:
    shared_revision_history(fake)
    fake.plans = [StreamPlan(events=1, error=httpx.ReadTimeout)]
    events = list(itertools.islice(client.kv.watch(prefix="config:", start_revision=1, idle_timeout=3.0), 5))
    assert changes(events) == EXPECTED
    first = fake.watches()[0]
    assert first.extensions["timeout"]["read"] == 3.0 and first.extensions["timeout"]["connect"] <= 2.0


def test_compaction_yields_a_snapshot_and_goes_on_from_its_revision(client: Client, fake: FakeKv) -> None:
    shared_revision_history(fake)
    fake.compact_revision = 3  # history before revision 3 is gone
    fake.plans = [StreamPlan(events=None, error=None), StreamPlan(events=None)]
    stream = client.kv.watch(prefix="config:", start_revision=1)
    gap = next(stream)
    assert gap.type == "compacted" and gap.compact_revision == 3 and gap.revision == 4
    assert [(r.key, r.value) for r in gap.snapshot] == [("config:b", 2), ("config:c", 3), ("config:d", 4)]
    fake.put("config:e", 5)  # revision 5
    assert changes([next(stream)]) == [(5, "config:e", "put", 5)]
    assert [w.url.params["from_revision"] for w in fake.watches()] == ["1", "5"]


def test_compaction_of_a_key_watch_snapshots_that_key_only(client: Client, fake: FakeKv) -> None:
    fake.put("k", 1)
    fake.put("k2", 2)
    fake.compact_revision = 3
    gap = next(client.kv.watch("k", start_revision=1))
    assert gap.type == "compacted" and [(r.key, r.value) for r in gap.snapshot] == [("k", 1)]


def test_streams_that_deliver_nothing_are_bounded(client: Client, fake: FakeKv) -> None:
    fake.plans = [StreamPlan(events=0, ping=False) for _ in range(3)]
    with pytest.raises(ConnectionFailed, match="3 streams in a row"):
        next(client.kv.watch(prefix="", start_revision=1))
    fake.faults["/kv/watch"] = [httpx.ConnectError] * 3
    with pytest.raises(ConnectionFailed):
        next(client.kv.watch(prefix="", start_revision=1))


def test_watch_needs_exactly_one_of_key_and_prefix(client: Client) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        client.kv.watch()
    with pytest.raises(ValueError, match="exactly one"):
        client.kv.watch("k", prefix="p")


async def test_async_watch_resumes_and_handles_compaction(aclient: AsyncClient, fake: FakeKv) -> None:
    shared_revision_history(fake)
    fake.plans = [StreamPlan(events=3), StreamPlan(events=1, error=httpx.ReadTimeout)]
    seen: list[KvEvent] = []
    async for event in aclient.kv.watch(prefix="config:", start_revision=1):
        seen.append(event)
        if len(seen) == 5:
            break
    assert changes(seen) == EXPECTED
    assert [w.url.params["from_revision"] for w in fake.watches()] == ["1", "2", "2"]
    fake.compact_revision = 4
    fake.plans = [StreamPlan(events=None, error=None)]
    async for event in aclient.kv.watch(prefix="config:", start_revision=2):
        assert event.type == "compacted" and event.revision == 4 and len(event.snapshot) == 3
        break


# -- a real socket that falls silent ------------------------------------------------------------------


class _Node(http.server.BaseHTTPRequestHandler):
    """``/kv/watch`` over a real socket: sends the events at >= from_revision, then falls silent
    (``silent``) or ends the stream."""

    events: list[dict[str, Any]]
    silent: bool
    release: threading.Event
    seen: list[str]

    def do_GET(self) -> None:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        self.seen.append(query["from_revision"])
        self.send_response(200)
        self.send_header("content-type", "text:event-stream")
        self.end_headers()
        for e in self.events:
            if e["revision"] >= int(query["from_revision"]):
                self.wfile.write(f"id: {e['revision']}\ndata: {json.dumps(e)}\n\n".encode())
        self.wfile.flush()
        if self.silent:
            self.release.wait(10.0)  # a connection that stays open and sends nothing: dead

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _serving(events: list[dict[str, Any]], silent: bool) -> Iterator[tuple[str, list[str], threading.Event]]:
    release, seen = threading.Event(), list[str]()
    handler = type("Handler", (_Node,), {"events": events, "silent": silent, "release": release, "seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen, release
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def test_a_silent_connection_times_out_and_the_watch_resumes_on_another_node() -> None:
    def ev(rev: int, key: str) -> dict[str, Any]:
        return {"type": "put", "key": key, "value": rev, "mod_revision": rev, "revision": rev}

    history = [ev(3, "a"), ev(3, "b"), ev(4, "c")]
    with _serving(history[:1], silent=True) as (dead, dead_seen, _), _serving(history, silent=False) as (good, seen, _):
        with Client([dead, good], attempts=3) as client:
            started = time.monotonic()
            events = list(itertools.islice(client.kv.watch(prefix="", start_revision=3, idle_timeout=0.5), 3))
            waited = time.monotonic() - started
    assert changes(events) == [(3, "a", "put", 3), (3, "b", "put", 3), (4, "c", "put", 4)]
    assert dead_seen == ["3"] and seen == ["3"]  # resumed at revision 3, skipping "a" already yielded
    assert 0.5 <= waited < 5.0


def test_the_async_kv_has_the_sync_kv_methods_and_arguments() -> None:
    from rakit.client.aio_kv import AsyncKv
    from rakit.client.kv import Kv

    def public(cls: type) -> dict[str, list[str]]:
        return {
            name: list(inspect.signature(fn).parameters)
            for name, fn in vars(cls).items()
            if callable(fn) and not name.startswith("_")
        }

    assert public(AsyncKv) == public(Kv)
    assert {"get", "put", "delete", "delete_prefix", "range", "scan", "incr", "txn", "cas", "watch"} <= set(public(Kv))


def test_a_stream_that_is_not_sse_events_raises_server_error(client: Client, fake: FakeKv) -> None:
    def garbage(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/kv/watch":
            return httpx.Response(200, content=b"data: <html>\n\n")
        return fake(request)

    client._runner.http = httpx.Client(transport=httpx.MockTransport(garbage))
    with pytest.raises(ServerError, match="not an event"):
        next(client.kv.watch("k", start_revision=1))
