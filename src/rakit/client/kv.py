"""``client.kv``: the replicated key-value map (API v2 "KV"), for the blocking client.

>>> kv = client.kv
>>> kv.put("config:mode", "blue").revision
>>> rec = kv.get("config:mode")            # None if absent
>>> kv.put("config:mode", "green", if_revision=rec.mod_revision)   # RevisionMismatch if it changed
>>> kv.cas("counters:jobs", lambda n: (n or 0) + 1)
>>> for event in kv.watch(prefix="config:"):
...     print(event.type, event.key, event.value, event.revision)

Reads are linearizable unless ``serializable=True`` (the node's own state,
possibly stale: ``revision`` says how fresh).  Writes not safe to repeat
(``incr``, conditional writes, txns) are not retried after a failure that may
have reached the cluster: ``OutcomeUnknown`` (``rakit.client.runner``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import httpx
import tenacity

from rakit.client import kv_calls
from rakit.client.args import JSON, checked
from rakit.client.errors import ConnectionFailed, RevisionMismatch
from rakit.client.kv_calls import MAX_PAGE, KvPage, KvPut, KvRecord, TxnResult, cas_record, next_after, session_id
from rakit.client.kv_txn import Compare, Op, compare, op
from rakit.client.kv_watch import (
    IDLE_TIMEOUT,
    KvEvent,
    SseParser,
    WatchCursor,
    change,
    compacted,
    dead_stream,
    event_from_data,
    quiet_backoff,
    refusal,
    snapshot_of,
    stream_params,
    watch_target,
)
from rakit.client.runner import RETRYABLE
from rakit.client.sessions import Session

if TYPE_CHECKING:
    from rakit.client.sync import Client

__all__ = ["Kv"]


@checked
class Kv:
    """The KV map of the cluster: ``client.kv``."""

    compare = compare
    op = op

    def __init__(self, client: Any) -> None:  # a Client (not checked: ``@checked`` cannot resolve its name)
        self.client: Client = client

    def get(self, key: str, serializable: bool = False) -> KvRecord | None:
        """``key``'s record (value, create/mod revision, version, the map's revision), or None if absent.

        >>> client.kv.get("config:mode").value
        """
        return self.client._run(kv_calls.get(key, serializable))  # type: ignore[no-any-return]

    def put(
        self,
        key: str,
        value: JSON,
        *,
        if_revision: int | None = None,
        if_absent: bool = False,
        ttl: float | None = None,
        session: Session | str | None = None,
    ) -> KvPut:
        """Set ``key`` to ``value`` (any JSON): ``KvPut(key, revision, previous_revision)``.

        ``if_revision``: only if the key's ``mod_revision`` is that (0: only if absent);
        ``if_absent``: only if absent.  Otherwise ``RevisionMismatch`` (``current_revision``), nothing
        changed.  ``ttl`` (s) or ``session`` (a ``Session`` or its id): the key is deleted when that
        runs out.

        >>> client.kv.put("jobs:1", {"state": "new"}, if_absent=True)
        >>> with client.session(ttl=10) as s:
        ...     client.kv.put("workers:w1", {"host": host}, session=s)  # gone when the session ends
        """
        return self.client._run(  # type: ignore[no-any-return]
            kv_calls.put(key, value, if_revision, if_absent, ttl, session_id(session))
        )

    def delete(self, key: str, *, if_revision: int | None = None) -> int:
        """Delete ``key``: how many keys were deleted (0 or 1); ``RevisionMismatch`` as ``put``.

        >>> client.kv.delete("jobs:1", if_revision=rec.mod_revision)
        """
        return self.client._run(kv_calls.delete(key, if_revision))  # type: ignore[no-any-return]

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with ``prefix`` (in one revision): how many.

        >>> client.kv.delete_prefix("jobs:")
        """
        return self.client._run(kv_calls.delete_prefix(prefix))  # type: ignore[no-any-return]

    def range(
        self, prefix: str = "", *, limit: int = 1000, after: str | None = None, serializable: bool = False
    ) -> KvPage:
        """One page of the keys starting with ``prefix``, after key ``after``, in key order (≤ ``limit``).

        >>> page = client.kv.range("jobs:", limit=100)
        >>> page.items, page.more, page.revision
        """
        return self.client._run(kv_calls.range_(prefix, limit, after, serializable))  # type: ignore[no-any-return]

    def scan(self, prefix: str = "", *, page_size: int = 1000, serializable: bool = False) -> Iterator[KvRecord]:
        """Every key starting with ``prefix``, in key order, page after page (each page is one
        consistent read; the whole is not one cut: use one ``range`` for that).

        >>> {r.key: r.value for r in client.kv.scan("config:")}
        """
        after: str | None = None
        while True:
            page = self.range(prefix, limit=page_size, after=after, serializable=serializable)
            yield from page.items
            after = next_after(page, after)
            if after is None:
                return

    def incr(self, key: str, delta: int = 1) -> int:
        """Add ``delta`` to the integer at ``key`` (absent: 0) atomically: the new value.

        >>> client.kv.incr("counters:visits")
        """
        return self.client._run(kv_calls.incr(key, delta))  # type: ignore[no-any-return]

    def txn(self, compare: Sequence[Compare] = (), success: Sequence[Op] = (), failure: Sequence[Op] = ()) -> TxnResult:
        """If every compare holds, run ``success``, else ``failure``: all one atomic step
        (``rakit.client.kv_txn``).  ``TxnResult(succeeded, revision, results)``.

        >>> c, o = client.kv.compare, client.kv.op
        >>> client.kv.txn([c.value("leader") == "a"], [o.put("leader", "b")], [o.get("leader")])
        """
        return self.client._run(kv_calls.txn(compare, success, failure))  # type: ignore[no-any-return]

    def cas(self, key: str, fn: Callable[[Any], Any], *, retries: int = 16) -> KvRecord:
        """Read ``key``, write ``fn(its value)`` (``fn(None)`` if absent) only if the key did not change
        meanwhile; on a change, read and call ``fn`` again, at most ``retries`` more times (then
        ``RevisionMismatch``).  The record written.  ``fn`` may run several times: keep it pure.

        >>> client.kv.cas("config:replicas", lambda n: (n or 0) + 1).value
        """
        for attempt in range(retries + 1):
            old = self.get(key)
            value = fn(old.value if old is not None else None)
            try:
                written = self.put(key, value, if_revision=old.mod_revision if old is not None else 0)
            except RevisionMismatch:
                if attempt == retries:
                    raise
                time.sleep(random.uniform(0, 0.005 * attempt))  # contenders spread out
                continue
            return cas_record(key, old, value, written)
        raise AssertionError("unreachable")  # pragma: no cover

    def watch(
        self,
        key: str | None = None,
        *,
        prefix: str | None = None,
        start_revision: int | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> Iterator[KvEvent]:
        """The changes of ``key`` (or of every key under ``prefix``) from ``start_revision`` on
        (default: after the first step of the loop), as ``KvEvent``s, until the loop breaks.

        Never a change twice or out of order, none lost across broken connections (it reconnects to
        any node and resumes where it was; ``rakit.client.kv_watch``).  If the history from where it
        stands is gone (compacted), one ``compacted`` event carries a fresh snapshot
        (``event.snapshot``, read at ``event.revision``) and the changes after it follow.  No node
        serving a stream within the client's retry budget (``attempts``, ``retry_deadline``), or
        ``attempts`` streams in a row ending with nothing new: ``ConnectionFailed``.

        >>> page = client.kv.range("config:")
        >>> state = {r.key: r.value for r in page.items}
        >>> for ev in client.kv.watch(prefix="config:", start_revision=page.revision + 1):
        ...     if ev.type == "compacted":
        ...         state = {r.key: r.value for r in ev.snapshot}
        ...     elif ev.type == "put":
        ...         state[ev.key] = ev.value
        ...     else:
        ...         state.pop(ev.key, None)
        """
        watch_target("Kv.watch()", key, prefix)
        return self._watch(key, prefix, start_revision, idle_timeout)

    # -- the watch loop (rules: rakit.client.kv_watch) ----------------------------------

    def _watch(
        self, key: str | None, prefix: str | None, start_revision: int | None, idle_timeout: float
    ) -> Iterator[KvEvent]:
        runner = self.client._runner
        target = key if key is not None else prefix or ""
        start = start_revision if start_revision is not None else self.range(target, limit=1).revision + 1
        cursor = WatchCursor(start)
        rng = random.Random()
        quiet = 0  # streams in a row that delivered nothing
        while True:
            url, response = self._open(stream_params(key, prefix, cursor.resume_from()), idle_timeout)
            alive, delivered, gap = False, False, None
            parser = SseParser()
            try:
                for line in response.iter_lines():
                    alive = True
                    data = parser.feed(line)
                    if data is None:
                        continue
                    body = event_from_data(data, url)
                    if body["type"] == "compacted":
                        gap = body
                        break
                    event = change(body)
                    if cursor.admit(event):
                        delivered = True
                        yield event
            except httpx.TransportError:
                pass  # a dead or broken stream: reconnect below
            finally:
                response.close()
            if gap is not None:
                snapshot, revision = self._reread(key, target)
                cursor.restart(revision + 1)
                quiet = 0 if delivered else quiet + 1  # compacted again and again: bounded as dead streams
                if quiet >= runner.policy.attempts:
                    raise dead_stream(quiet)
                yield compacted(gap.get("compact_revision"), snapshot, revision)
                continue
            runner.nodes.failed(url)
            quiet = 0 if alive else quiet + 1
            if quiet >= runner.policy.attempts:
                raise dead_stream(quiet)
            if quiet:
                time.sleep(quiet_backoff(quiet, runner.policy.backoff_initial, runner.policy.backoff_max, rng))

    def _reread(self, key: str | None, target: str) -> tuple[list[KvRecord], int]:
        """Every watched key as one read sees it, and that read's revision (the first page's, when
        several: the changes after it are all replayed, so none is missed)."""
        if key is not None:
            page = self.range(key, limit=1)
            return snapshot_of(page.items, key), page.revision
        items: list[KvRecord] = []
        first: int | None = None
        after: str | None = None
        while True:
            page = self.range(target, limit=MAX_PAGE, after=after)
            first = page.revision if first is None else first
            items += page.items
            after = next_after(page, after)
            if after is None:
                return items, first

    def _open(self, params: dict[str, Any], idle_timeout: float) -> tuple[str, httpx.Response]:
        """A watch stream from the first node that serves one (retried as every call; ``RetryPolicy``)."""
        runner = self.client._runner
        timeout = httpx.Timeout(runner.policy.timeout, connect=min(runner.policy.timeout, 2.0), read=idle_timeout)

        def once() -> tuple[str, httpx.Response]:
            url = runner.nodes.pick()
            try:
                request = runner.http.build_request("GET", url + "/kv/watch", params=params, timeout=timeout)
                response = runner.http.send(request, stream=True)
                if response.status_code == 200:
                    return url, response
                try:
                    error = refusal(response.status_code, response.read(), url)
                finally:
                    response.close()
            except httpx.TransportError as exc:
                runner.nodes.failed(url)
                raise ConnectionFailed(f"{type(exc).__name__}: {exc}", node=url) from None
            if isinstance(error, RETRYABLE):
                runner.nodes.failed(url)
            raise error

        for attempt in tenacity.Retrying(**runner.policy.tenacity_kwargs()):
            with attempt:
                return once()
        raise AssertionError("unreachable")  # pragma: no cover
