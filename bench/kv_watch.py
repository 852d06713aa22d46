"""Watch fan-out rows of ``bench/kv.py``: watchers on one prefix, writers putting keys under it.

One slice of a row: ``watchers`` streams are opened on the target node and
seen ready — rakit: GET /kv/watch?prefix=P&from_revision=R (SSE, one
``data:`` line per event); etcd: POST /v3/watch ``{"create_request": {"key",
"range_end", "start_revision": R}}`` through its gateway (one JSON object per
line; ready once it answered ``"created": true``), R being the revision just
after a marker put outside the prefix, so no event is missed however late a
stream starts.  Then ``writers`` writers put keys ``P<seq>`` to the
system's *leader* for a warm-up plus ``seconds``: closed-loop, or paced at
``pace`` puts/s over all of them (a delivery that cannot keep up with
closed-loop writers falls ever further behind, so its latencies measure the
backlog; a pace both systems sustain measures the latency itself).  ``events/s`` counts the
events that arrived inside the measured window (any watcher, any put): the
delivery rate.  The latencies are those of the events of the puts sent inside
the window, from the put's send to the event's arrival at one watcher (a put
gives one sample per watcher).  After the window the slice waits (at most
``DRAIN`` s) for those events still due; ``drain s`` is how long the last one
took to come after the window (a delivery falling behind the writers shows
there), and the ones still missing are *lost*.  ``gen CPU`` is this
process's CPU time over the slice's wall time, drain included: near 100 %
the load generator, not the server, would be the limit.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httptools
import msgspec

from coordination import pct
from etcd_cluster import b64
from fasthttp import Connection, HttpError
from loadgen import OpError
from locks import call

DRAIN = 5.0  # seconds a slice waits after its window for the events still due
OPEN_TIMEOUT = 10.0
PUT_TIMEOUT = 10.0
VALUE = "v" * 32

LineFn = Callable[[bytes, float], None]  # (one line of the stream, arrival time)
_slices = itertools.count()  # a fresh prefix per slice


class RakitEvent(msgspec.Struct):
    type: str
    key: str = ""


class EtcdKv(msgspec.Struct):
    key: str = ""


class EtcdEvent(msgspec.Struct):
    kv: EtcdKv = msgspec.field(default_factory=EtcdKv)


class EtcdResult(msgspec.Struct):
    created: bool = False
    events: list[EtcdEvent] = []


class EtcdMessage(msgspec.Struct):
    result: EtcdResult | None = None


@dataclass
class Tally:
    """What one slice's watchers received: every arrival inside the window, and the events of
    the puts sent inside it (those are the latencies, and the ones due)."""

    watchers: int
    measure_from: float = float("inf")
    stop_at: float = float("inf")
    sent: dict[int, float] = field(default_factory=dict)  # seq -> send time, measured puts only
    puts: int = 0  # measured puts answered 2xx
    put_errors: int = 0
    arrived: int = 0  # events of any put that arrived inside the window
    delivered: int = 0  # events of measured puts, whenever they arrived
    last: float = 0.0  # arrival of the last of those
    latencies: list[float] = field(default_factory=list)

    def event(self, seq: int, now: float) -> None:
        if self.measure_from <= now < self.stop_at:
            self.arrived += 1
        sent = self.sent.get(seq)
        if sent is not None:
            self.delivered += 1
            self.last = now
            self.latencies.append(now - sent)

    @property
    def due(self) -> int:
        return self.puts * self.watchers


@dataclass
class WatchResult:
    name: str
    writers: int
    pace: float  # puts/s over all writers; 0: each put as soon as the last was answered
    watchers: int
    seconds: float = 0.0
    puts: int = 0
    delivered: int = 0  # events that arrived inside the measured windows
    lost: int = 0
    drain: float = 0.0  # seconds after the window until the last due event arrived (the worst slice)
    errors: int = 0
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)

    def pct(self, p: float) -> float:
        return pct(self.latencies, p)

    @property
    def events_per_s(self) -> float:
        return self.delivered / self.seconds if self.seconds else 0.0

    @property
    def puts_per_s(self) -> float:
        return self.puts / self.seconds if self.seconds else 0.0

    @property
    def cpu_share(self) -> float:
        return self.cpu_seconds / self.wall_seconds if self.wall_seconds else 0.0

    def add(self, other: WatchResult) -> None:
        """Pools another slice of the same row into this one."""
        for name in ("seconds", "puts", "delivered", "lost", "errors", "cpu_seconds", "wall_seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.drain = max(self.drain, other.drain)
        self.latencies.extend(other.latencies)
        self.error_samples.extend(other.error_samples[: 3 - len(self.error_samples)])


class _Stream(asyncio.Protocol):
    """One streaming HTTP response, its body cut into lines (httptools undoes the chunking)."""

    def __init__(self, on_line: LineFn, ready_on_headers: bool) -> None:
        self.on_line = on_line
        self.ready_on_headers = ready_on_headers
        self.parser = httptools.HttpResponseParser(self)
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.rest = b""
        self.broken: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(f"bad response: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(f"stream closed: {exc}")

    def _fail(self, why: str) -> None:
        self.broken = self.broken or why
        if not self.ready.done():
            self.ready.set_exception(OpError(why))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status != 200:
            self._fail(f"watch answered {status}")
        elif self.ready_on_headers and not self.ready.done():
            self.ready.set_result(None)

    def on_body(self, body: bytes) -> None:
        lines = (self.rest + body).split(b"\n")
        self.rest = lines.pop()
        now = time.perf_counter()
        for line in lines:
            if line.strip():
                self.on_line(line, now)

    def close(self) -> None:
        self.broken = self.broken or "closed by the bench"
        if self.transport is not None:
            self.transport.close()


def rakit_lines(prefix: str, tally: Tally) -> LineFn:
    decode, skip = msgspec.json.Decoder(RakitEvent).decode, len(prefix)

    def on_line(line: bytes, now: float) -> None:
        if line.startswith(b"data:"):
            event = decode(line[5:])
            if event.type == "put" and event.key.startswith(prefix):
                tally.event(int(event.key[skip:]), now)

    return on_line


def etcd_lines(prefix: str, tally: Tally, stream: Callable[[], _Stream]) -> LineFn:
    decode, skip = msgspec.json.Decoder(EtcdMessage).decode, len(prefix)

    def on_line(line: bytes, now: float) -> None:
        result = decode(line).result
        if result is None:
            return
        if result.created and not stream().ready.done():
            stream().ready.set_result(None)
        for event in result.events:
            tally.event(int(base64.b64decode(event.kv.key)[skip:]), now)

    return on_line


async def open_stream(url: str, request: bytes, make: Callable[[], _Stream]) -> _Stream:
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    _, proto = await asyncio.wait_for(
        loop.create_connection(make, parts.hostname or "127.0.0.1", parts.port or 80), OPEN_TIMEOUT
    )
    assert proto.transport is not None
    proto.transport.write(request)
    await asyncio.wait_for(proto.ready, OPEN_TIMEOUT)
    return proto


def prefix_end(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


@dataclass
class WatchSide:
    """Where a row's watchers listen and its writers write, and how each system spells it."""

    system: str  # "rakit" | "etcd"
    target: str  # "leader" | "follower": the node the watchers are on
    url: str
    leader: str

    def put(self, key: str) -> tuple[str, str, dict[str, Any]]:
        if self.system == "rakit":
            return "POST", self.leader + "/kv/put", {"key": key, "value": VALUE}
        return "POST", self.leader + "/v3/kv/put", {"key": b64(key), "value": b64(VALUE)}

    async def revision(self, conn: Connection, key: str) -> int:
        """The revision of a marker put (outside every watched prefix)."""
        answer = await call(conn, *self.put(key))
        if self.system == "rakit":
            return int(answer.get("revision", answer.get("index")))
        return int(answer["header"]["revision"])

    async def watcher(self, prefix: str, from_revision: int, tally: Tally) -> _Stream:
        host = urlsplit(self.url).netloc
        if self.system == "rakit":
            path = f"/kv/watch?prefix={prefix}&from_revision={from_revision}"
            request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode()
            on_line = rakit_lines(prefix, tally)
            return await open_stream(self.url, request, lambda: _Stream(on_line, ready_on_headers=True))
        create = {"key": b64(prefix), "range_end": b64(prefix_end(prefix)), "start_revision": from_revision}
        body = msgspec.json.encode({"create_request": create})
        request = (
            f"POST /v3/watch HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        made: list[_Stream] = []

        def make() -> _Stream:
            made.append(_Stream(etcd_lines(prefix, tally, lambda: made[0]), ready_on_headers=False))
            return made[0]

        return await open_stream(self.url, request, make)


async def writer(side: WatchSide, prefix: str, seqs: itertools.count[int], tally: Tally, pace: float) -> None:
    """Puts until the window ends, each as soon as the last one was answered or, with a ``pace``
    (puts/s over all writers), on a schedule from the slice's start; the puts sent inside the
    window are measured."""
    conn = Connection(PUT_TIMEOUT)
    start = time.perf_counter()
    try:
        while (t0 := time.perf_counter()) < tally.stop_at:
            seq = next(seqs)
            if pace and (ahead := start + seq / pace - t0) > 0:
                await asyncio.sleep(ahead)
                t0 = time.perf_counter()
            measured = t0 >= tally.measure_from
            if measured:
                tally.sent[seq] = t0
            try:
                status, _ = await conn.request(*side.put(f"{prefix}{seq}"))
                good = 200 <= status < 300
            except HttpError:
                good = False
            if measured:
                tally.puts += good
                tally.put_errors += not good
    finally:
        conn.close()


async def watch_slice(
    side: WatchSide, watchers: int, writers: int, pace: float, seconds: float, warmup: float
) -> WatchResult:
    result = WatchResult(f"watch {side.system}→{side.target}", writers, pace, watchers)
    tally = Tally(watchers)
    prefix = f"wf{next(_slices)}-"
    streams: list[_Stream] = []
    conn = Connection(PUT_TIMEOUT)
    try:
        from_revision = await side.revision(conn, f"wmark-{prefix}") + 1

        async def one() -> None:
            streams.append(await side.watcher(prefix, from_revision, tally))

        async with asyncio.TaskGroup() as opening:  # one failing cancels the rest
            for _ in range(watchers):
                opening.create_task(one())
    except* (OpError, OSError, HttpError, TimeoutError, KeyError, ValueError) as failed:
        for s in streams:
            s.close()
        exc = failed.exceptions[0]
        result.errors, result.error_samples = 1, [f"{type(exc).__name__}: {exc}"[:160]]
    finally:
        conn.close()
    if result.errors:
        return result
    cpu0, wall0 = time.process_time(), time.perf_counter()
    seqs, tally.measure_from, tally.stop_at = itertools.count(), wall0 + warmup, wall0 + warmup + seconds
    await asyncio.gather(*(writer(side, prefix, seqs, tally, pace) for _ in range(writers)))
    deadline = time.perf_counter() + DRAIN
    while tally.delivered < tally.due and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    result.cpu_seconds, result.wall_seconds = time.process_time() - cpu0, time.perf_counter() - wall0
    broken = [s.broken for s in streams if s.broken]
    for s in streams:
        s.close()
    result.seconds, result.puts, result.delivered = seconds, tally.puts, tally.arrived
    result.lost = max(0, tally.due - tally.delivered)
    result.drain = DRAIN if result.lost else max(0.0, tally.last - tally.stop_at)
    result.errors = tally.put_errors + len(broken)
    result.error_samples = [b for b in broken if b][:3]
    result.latencies = tally.latencies
    return result
