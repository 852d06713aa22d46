"""``client.kv`` of ``AsyncClient``: method for method ``rakit.client.kv.Kv``, awaited.

>>> rec = await client.kv.get("config:mode")
>>> await client.kv.put("config:mode", "green", if_revision=rec.mod_revision)
>>> async for event in client.kv.watch(prefix="config:"):
...     print(event.type, event.key, event.value, event.revision)
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

import httpx
import tenacity

from rakit.client import kv_calls
from rakit.client.aio_sessions import AsyncSession
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

if TYPE_CHECKING:
    from rakit.client.aio import AsyncClient

__all__ = ["AsyncKv"]


@checked
class AsyncKv:
    """The KV map of the cluster: ``AsyncClient.kv`` (see ``rakit.client.kv.Kv``)."""

    compare = compare
    op = op

    def __init__(self, client: Any) -> None:  # a AsyncClient (not checked: ``@checked`` cannot resolve its name)
        self.client: AsyncClient = client

    async def get(self, key: str, serializable: bool = False) -> KvRecord | None:
        """``key``'s record (value, create/mod revision, version, the map's revision), or None if absent.

        >>> await client.kv.get("config:mode").value
        """
        return await self.client._run(kv_calls.get(key, serializable))  # type: ignore[no-any-return]

    async def put(
        self,
        key: str,
        value: JSON,
        *,
        if_revision: int | None = None,
        if_absent: bool = False,
        ttl: float | None = None,
        session: AsyncSession | str | None = None,
    ) -> KvPut:
        """Set ``key`` to ``value`` (any JSON): ``KvPut(key, revision, previous_revision)``.

        ``if_revision``: only if the key's ``mod_revision`` is that (0: only if absent);
        ``if_absent``: only if absent.  Otherwise ``RevisionMismatch`` (``current_revision``), nothing
        changed.  ``ttl`` (s) or ``session`` (a ``Session`` or its id): the key is deleted when that
        runs out.

        >>> await client.kv.put("jobs:1", {"state": "new"}, if_absent=True)
        >>> async with client.session(ttl=10) as s:
        ...     await client.kv.put("workers:w1", {"host": host}, session=s)  # gone when the session ends
        """
        return await self.client._run(  # type: ignore[no-any-return]
            kv_calls.put(key, value, if_revision, if_absent, ttl, session_id(session))
        )

    async def delete(self, key: str, *, if_revision: int | None = None) -> int:
        """Delete ``key``: how many keys were deleted (0 or 1); ``RevisionMismatch`` as ``put``.

        >>> await client.kv.delete("jobs:1", if_revision=rec.mod_revision)
        """
        return await self.client._run(kv_calls.delete(key, if_revision))  # type: ignore[no-any-return]

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with ``prefix`` (in one revision): how many.

        >>> await client.kv.delete_prefix("jobs:")
        """
        return await self.client._run(kv_calls.delete_prefix(prefix))  # type: ignore[no-any-return]

    async def range(
        self, prefix: str = "", *, limit: int = 1000, after: str | None = None, serializable: bool = False
    ) -> KvPage:
        """One page of the keys starting with ``prefix``, after key ``after``, in key order (≤ ``limit``).

        >>> page = await client.kv.range("jobs:", limit=100)
        >>> page.items, page.more, page.revision
        """
        return await self.client._run(kv_calls.range_(prefix, limit, after, serializable))  # type: ignore[no-any-return]

    async def scan(
        self, prefix: str = "", *, page_size: int = 1000, serializable: bool = False
    ) -> AsyncIterator[KvRecord]:
        """Every key starting with ``prefix``, in key order, page after page (each page is one
        consistent read; the whole is not one cut: use one ``range`` for that).

        >>> {r.key: r.value async for r in client.kv.scan("config:")}
        """
        after: str | None = None
        while True:
            page = await self.range(prefix, limit=page_size, after=after, serializable=serializable)
            for item in page.items:
                yield item
            after = next_after(page, after)
            if after is None:
                return

    async def incr(self, key: str, delta: int = 1) -> int:
        """Add ``delta`` to the integer at ``key`` (absent: 0) atomically: the new value.

        >>> await client.kv.incr("counters:visits")
        """
        return await self.client._run(kv_calls.incr(key, delta))  # type: ignore[no-any-return]

    async def txn(
        self, compare: Sequence[Compare] = (), success: Sequence[Op] = (), failure: Sequence[Op] = ()
    ) -> TxnResult:
        """If every compare holds, run ``success``, else ``failure``: all one atomic step
        (``rakit.client.kv_txn``).  ``TxnResult(succeeded, revision, results)``.

        >>> c, o = client.kv.compare, client.kv.op
        >>> await client.kv.txn([c.value("leader") == "a"], [o.put("leader", "b")], [o.get("leader")])
        """
        return await self.client._run(kv_calls.txn(compare, success, failure))  # type: ignore[no-any-return]

    async def cas(self, key: str, fn: Callable[[Any], Any], *, retries: int = 16) -> KvRecord:
        """Read ``key``, write ``fn(its value)`` (``fn(None)`` if absent) only if the key did not change
        meanwhile; on a change, read and call ``fn`` again, at most ``retries`` more times (then
        ``RevisionMismatch``).  The record written.  ``fn`` may run several times: keep it pure.

        >>> await client.kv.cas("config:replicas", lambda n: (n or 0) + 1).value
        """
        for attempt in range(retries + 1):
            old = await self.get(key)
            value = fn(old.value if old is not None else None)
            try:
                written = await self.put(key, value, if_revision=old.mod_revision if old is not None else 0)
            except RevisionMismatch:
                if attempt == retries:
                    raise
                await asyncio.sleep(random.uniform(0, 0.005 * attempt))  # contenders spread out
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
    ) -> AsyncIterator[KvEvent]:
        """The changes of ``key`` (or of every key under ``prefix``) from ``start_revision`` on
        (default: after the first step of the loop), as ``KvEvent``s, until the loop breaks.

        Never a change twice or out of order, none lost across broken connections (it reconnects to
        any node and resumes where it was; ``rakit.client.kv_watch``).  If the history from where it
        stands is gone (compacted), one ``compacted`` event carries a fresh snapshot
        (``event.snapshot``, read at ``event.revision``) and the changes after it follow.  No node
        serving a stream within the client's retry budget (``attempts``, ``retry_deadline``), or
        ``attempts`` streams in a row ending with nothing new: ``ConnectionFailed``.
        Leaving the loop early closes the stream when the generator is collected; to close it at
        once, ``async with contextlib.aclosing(client.kv.watch(...)) as events:``.

        >>> page = await client.kv.range("config:")
        >>> state = {r.key: r.value for r in page.items}
        >>> async for ev in client.kv.watch(prefix="config:", start_revision=page.revision + 1):
        ...     if ev.type == "compacted":
        ...         state = {r.key: r.value for r in ev.snapshot}
        ...     elif ev.type == "put":
        ...         state[ev.key] = ev.value
        ...     else:
        ...         state.pop(ev.key, None)
        """
        watch_target("AsyncKv.watch()", key, prefix)
        return self._watch(key, prefix, start_revision, idle_timeout)

    # -- the watch loop (rules: rakit.client.kv_watch) ----------------------------------

    async def _watch(
        self, key: str | None, prefix: str | None, start_revision: int | None, idle_timeout: float
    ) -> AsyncIterator[KvEvent]:
        runner = self.client._runner
        target = key if key is not None else prefix or ""
        start = start_revision if start_revision is not None else (await self.range(target, limit=1)).revision + 1
        cursor = WatchCursor(start)
        rng = random.Random()
        quiet = 0  # streams in a row that delivered nothing
        while True:
            url, response = await self._open(stream_params(key, prefix, cursor.resume_from()), idle_timeout)
            alive, delivered, gap = False, False, None
            parser = SseParser()
            try:
                async for line in response.aiter_lines():
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
                await response.aclose()
            if gap is not None:
                snapshot, revision = await self._reread(key, target)
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
                await asyncio.sleep(quiet_backoff(quiet, runner.policy.backoff_initial, runner.policy.backoff_max, rng))

    async def _reread(self, key: str | None, target: str) -> tuple[list[KvRecord], int]:
        """Every watched key as one read sees it, and that read's revision (the first page's, when
        several: the changes after it are all replayed, so none is missed)."""
        if key is not None:
            page = await self.range(key, limit=1)
            return snapshot_of(page.items, key), page.revision
        items: list[KvRecord] = []
        first: int | None = None
        after: str | None = None
        while True:
            page = await self.range(target, limit=MAX_PAGE, after=after)
            first = page.revision if first is None else first
            items += page.items
            after = next_after(page, after)
            if after is None:
                return items, first

    async def _open(self, params: dict[str, Any], idle_timeout: float) -> tuple[str, httpx.Response]:
        """A watch stream from the first node that serves one (retried as every call; ``RetryPolicy``)."""
        runner = self.client._runner
        timeout = httpx.Timeout(runner.policy.timeout, connect=min(runner.policy.timeout, 2.0), read=idle_timeout)

        async def once() -> tuple[str, httpx.Response]:
            url = runner.nodes.pick()
            try:
                request = runner.http.build_request("GET", url + "/kv/watch", params=params, timeout=timeout)
                response = await runner.http.send(request, stream=True)
                if response.status_code == 200:
                    return url, response
                try:
                    error = refusal(response.status_code, await response.aread(), url)
                finally:
                    await response.aclose()
            except httpx.TransportError as exc:
                runner.nodes.failed(url)
                raise ConnectionFailed(f"{type(exc).__name__}: {exc}", node=url) from None
            if isinstance(error, RETRYABLE):
                runner.nodes.failed(url)
            raise error

        async for attempt in tenacity.AsyncRetrying(**runner.policy.tenacity_kwargs()):
            with attempt:
                return await once()
        raise AssertionError("unreachable")  # pragma: no cover
