"""A KV watch without I/O: the SSE lines of ``GET /kv/watch`` in, events out, and where to resume.

Rules (both clients' watch loops follow them; ``rakit.client.kv`` / ``aio_kv`` do the I/O):

1. The stream is Server-Sent Events: ``id:``/``data:`` lines, a blank line
   ends an event, a line starting with ``:`` is a comment (the node's ping,
   at least every 5 s).  Any line, a ping included, proves the connection
   alive; none for ``idle_timeout`` (10 s) means it is dead: reconnect.
2. Events come in revision order; several may share a revision (a txn, a
   prefix delete, a session's end), each key at most once per revision.  A
   stream may break inside a revision, so a new stream starts *at* the last
   revision yielded (not after it) and the (revision, key) pairs already
   yielded at that revision are skipped: nothing is lost and nothing repeats.
3. ``{"type": "compacted"}``: the node no longer has the history from the
   revision asked for; the stream ends.  The watch then re-reads every key
   it watches (``range``), yields one ``compacted`` event carrying that
   snapshot, and goes on from the snapshot's revision + 1.
4. A reconnect goes to the next node (any node serves a watch).  Failures in
   a row are bounded (``attempts``); a stream that delivered anything (an
   event or a ping) resets the count.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any, Literal

from rakit.client.errors import ConnectionFailed, RakitError, ServerError, error_from_answer
from rakit.client.kv_calls import KvRecord

__all__ = ["IDLE_TIMEOUT", "KvEvent", "SseParser", "WatchCursor", "event_from_data"]

#: Seconds without a byte (the node pings at least every 5 s) after which a stream counts as dead.
IDLE_TIMEOUT = 10.0

EventType = Literal["put", "delete", "compacted"]


@dataclass(frozen=True, slots=True)
class KvEvent:
    """One change a watch saw, or (``type == "compacted"``) a gap in the history it could not replay.

    put/delete: ``key`` changed at ``revision`` (= its ``mod_revision``); ``value`` is the new value
    (None for a delete).  compacted: the changes between the last event and ``revision`` are gone
    from the node's history (it keeps at least ``compact_revision`` on); ``snapshot`` is every
    watched key as read at ``revision`` (a fresh ``range``), which replaces what you knew; the
    watch goes on with the changes after ``revision``.
    """

    type: EventType
    key: str | None
    value: Any
    revision: int
    mod_revision: int = 0
    create_revision: int = 0
    version: int = 0
    compact_revision: int | None = None
    snapshot: tuple[KvRecord, ...] = ()


def event_from_data(data: str, node: str) -> dict[str, Any]:
    """The JSON object of one ``data:`` payload (``ServerError`` if it is not an event)."""
    try:
        body = json.loads(data)
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise ServerError(f"a watch event that is not an event object: {data[:200]!r}", node=node)
    return body


def change(body: dict[str, Any]) -> KvEvent:
    """A put or delete event of the stream."""
    return KvEvent(
        body["type"],
        body["key"],
        body.get("value"),
        body["revision"],
        body.get("mod_revision", body["revision"]),
        body.get("create_revision", 0),
        body.get("version", 0),
    )


def compacted(compact_revision: int | None, snapshot: list[KvRecord], revision: int) -> KvEvent:
    return KvEvent("compacted", None, None, revision, compact_revision=compact_revision, snapshot=tuple(snapshot))


class SseParser:
    """Server-Sent Events, one line at a time (``feed`` returns an event's ``data`` once a blank line ends it).

    ``event:``, ``id:`` and ``retry:`` fields are read past: the revision is in the data.
    """

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> str | None:
        line = line.rstrip("\r\n")
        if not line:
            data, self._data = self._data, []
            return "\n".join(data) if data else None
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if name == "data":
            self._data.append(value[1:] if value.startswith(" ") else value)
        return None


@dataclass(slots=True)
class WatchCursor:
    """Where a watch stands: the first revision wanted (``start``) and what it already yielded at the last one."""

    start: int
    last: int | None = None
    keys_at_last: set[str] = field(default_factory=set)

    def resume_from(self) -> int:
        """The ``from_revision`` of the next stream (rule 2)."""
        return self.start if self.last is None else self.last

    def admit(self, event: KvEvent) -> bool:
        """True if ``event`` is new (and now counted as yielded); False for one already yielded or too old."""
        assert event.key is not None
        if event.revision < self.start:
            return False
        if self.last is not None:
            if event.revision < self.last or (event.revision == self.last and event.key in self.keys_at_last):
                return False
        if event.revision != self.last:
            self.last = event.revision
            self.keys_at_last = set()
        self.keys_at_last.add(event.key)
        return True

    def restart(self, start: int) -> None:
        """After a re-read at ``start - 1`` (rule 3): everything from ``start`` on is wanted."""
        self.start = start
        self.last = None
        self.keys_at_last = set()


def stream_params(key: str | None, prefix: str | None, from_revision: int) -> dict[str, Any]:
    params: dict[str, Any] = {"key": key} if key is not None else {"prefix": prefix}
    params["from_revision"] = from_revision
    return params


def snapshot_of(items: list[KvRecord], key: str | None) -> list[KvRecord]:
    """The re-read records a watch of ``key`` (None: a prefix watch, all of them) covers."""
    return items if key is None else [r for r in items if r.key == key]


def watch_target(where: str, key: str | None, prefix: str | None) -> None:
    """A watch names exactly one of ``key`` and ``prefix`` (``prefix=""``: every key)."""
    if (key is None) == (prefix is None):
        raise ValueError(f"{where}: give exactly one of key= and prefix= (prefix='' watches every key)")


def refusal(status: int, content: bytes, node: str) -> RakitError:
    """The error of a watch request the node refused (a non-200 answer instead of a stream)."""
    try:
        body: Any = json.loads(content) if content else None
    except ValueError:
        body = content.decode("utf-8", "replace")
    return error_from_answer(status, body, node)


def quiet_backoff(streams: int, initial: float, most: float, rng: random.Random) -> float:
    """Seconds to wait before reconnecting after ``streams`` streams in a row delivered nothing
    (exponential with jitter, as the runner's retries)."""
    return float(min(most, initial * 2 ** max(0, streams - 1)) + rng.uniform(0, initial))


def dead_stream(streams: int) -> ConnectionFailed:
    return ConnectionFailed(f"watch: {streams} streams in a row ended with nothing new (broken, or compacted again)")
