"""``rakit.AsyncClient``: the asyncio client, method for method the same as ``rakit.Client``.

The one difference that matters: a lock lost while its ``async with`` block
runs *cancels the block*, which then raises ``LockLost`` — code that needs
the lock stops at its next ``await`` instead of running on unprotected.

>>> async with rakit.AsyncClient() as client:
...     async with client.lock("orders", ttl=10, timeout=5) as lease:
...         await storage.write(data, fencing_token=lease.fencing_token)
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from rakit.client import aio_elections, calls, coord_calls
from rakit.client.aio_elections import AsyncLeadership
from rakit.client.aio_kv import AsyncKv
from rakit.client.aio_locks import AsyncLock
from rakit.client.aio_semaphores import AsyncSemaphore
from rakit.client.aio_sessions import AsyncSession
from rakit.client.args import JSON, checked, message_and_consumer, semaphore_counts
from rakit.client.calls import (
    LockMode,
    Message,
    default_client_id,
    default_cluster_secret,
    default_nodes,
    default_token,
)
from rakit.client.coord_calls import LeaderChange
from rakit.client.errors import RakitError
from rakit.client.runner import AsyncRunner, RetryPolicy, Verify

__all__ = [
    "AsyncCache",
    "AsyncClient",
    "AsyncKv",
    "AsyncLeadership",
    "AsyncLock",
    "AsyncQueue",
    "AsyncSemaphore",
    "AsyncSession",
]

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


@checked
class AsyncClient:
    """The asyncio twin of ``rakit.Client`` (same arguments, same methods, awaited).

    >>> client = rakit.AsyncClient(["http://127.0.0.1:8001", "http://127.0.0.1:8002"])
    >>> await client.cache.set("k", 1)
    >>> await client.aclose()
    """

    def __init__(
        self,
        nodes: str | Sequence[str] | None = None,
        *,
        timeout: float = 5.0,
        attempts: int = 6,
        retry_deadline: float = 15.0,
        client_id: str | None = None,
        verify: Verify = True,
        token: str | None = None,
        cluster_secret: str | None = None,
    ) -> None:
        self.nodes = default_nodes(nodes if nodes is None or isinstance(nodes, str) else list(nodes))
        self.client_id = client_id or default_client_id()
        self._runner = AsyncRunner(
            self.nodes,
            RetryPolicy(timeout=timeout, attempts=attempts, deadline=retry_deadline),
            verify,
            default_token(token),
            cluster_secret=default_cluster_secret(cluster_secret),
        )
        self.cache = AsyncCache(self)
        self.kv = AsyncKv(self)

    async def _run(self, call: calls.Call, node: str | None = None) -> Any:
        return await self._runner.run(call, node)

    def lock(
        self,
        resource: str,
        *,
        ttl: float = 30.0,
        timeout: float | None = 0.0,
        mode: LockMode = "exclusive",
        client_id: str | None = None,
        lock_delay: float | None = None,
        renew: bool = True,
        session: AsyncSession | None = None,
    ) -> AsyncLock:
        """A lock on ``resource`` for ``async with``; renewed every ``ttl / 3`` while held.

        If the lock is lost (renewal refused, or the cluster unreachable until
        the lease ends), ``lease.lost`` is set and the block is cancelled: it
        raises ``LockLost``.  ``session``, ``timeout=None`` and the
        ``asyncio.Lock`` style: as ``Client.lock`` (``rakit.client.aio_locks``).

        >>> async with client.lock("orders", ttl=10, timeout=5) as lease:
        ...     await db.save(order, fencing_token=lease.fencing_token)
        """
        return AsyncLock(self, resource, client_id or self.client_id, mode, ttl, timeout, lock_delay, renew, session)

    async def acquire(
        self,
        resource: str,
        client_id: str | None = None,
        *,
        mode: LockMode = "exclusive",
        ttl: float = 30.0,
        timeout: float = 0.0,
        lock_delay: float | None = None,
        secret: str | None = None,
    ) -> dict[str, Any]:
        """One acquire, no renewal (prefer ``lock()``): the grant.

        >>> (await client.acquire("orders", "worker-1", ttl=60))["fencing_token"]
        """
        return await self._run(  # type: ignore[no-any-return]
            calls.acquire(
                resource,
                client_id or self.client_id,
                mode,
                ttl,
                timeout,
                lock_delay,
                secret,
            )
        )

    async def release(
        self,
        resource: str,
        client_id: str | None = None,
        fencing_token: int | None = None,
        *,
        secret: str | None = None,
    ) -> None:
        """Release a hold taken with ``acquire``.

        >>> await client.release("orders", "worker-1")
        """
        await self._run(calls.release(resource, client_id or self.client_id, fencing_token, secret))

    async def renew(
        self, resource: str, client_id: str | None = None, ttl: float | None = None, *, secret: str | None = None
    ) -> dict[str, Any]:
        """Restart a hold's lease.

        >>> await client.renew("orders", "worker-1", ttl=60)
        """
        return await self._run(calls.renew(resource, client_id or self.client_id, ttl, secret))  # type: ignore[no-any-return]

    async def lock_status(self, resource: str) -> dict[str, Any]:
        """The lock's holders, waiters, mode and highest fencing token (linearizable).

        >>> (await client.lock_status("orders"))["holders"]
        """
        return await self._run(calls.lock_status(resource))  # type: ignore[no-any-return]

    async def watch(self, resource: str, client_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until ``client_id``'s hold on ``resource`` ends (or ``timeout`` passes).

        >>> await client.watch("orders", "worker-1")
        """
        return await self._run(calls.lock_watch(resource, client_id, timeout))  # type: ignore[no-any-return]

    # -- sessions, semaphores, elections (as ``Client``'s; a loss cancels the block) --------

    def session(
        self,
        *,
        ttl: float = 10.0,
        lock_delay: float | None = None,
        client_id: str | None = None,
        keepalive_interval: float | None = None,
    ) -> AsyncSession:
        """A session for ``async with`` (see ``Client.session``); its loss cancels the block: ``SessionLost``.

        >>> async with client.session(ttl=10) as s:
        ...     async with client.lock("orders", session=s): ...
        """
        return AsyncSession(self, client_id or self.client_id, ttl, lock_delay, keepalive_interval)

    def semaphore(
        self,
        name: str,
        limit: int,
        *,
        permits: int = 1,
        ttl: float = 30.0,
        client_id: str | None = None,
        session: AsyncSession | None = None,
        renew: bool = True,
    ) -> AsyncSemaphore:
        """A counting semaphore, like ``asyncio.Semaphore`` (see ``Client.semaphore``).

        >>> async with client.semaphore("gpu", limit=4) as gpu: ...
        """
        semaphore_counts("AsyncClient.semaphore()", limit, permits)
        return AsyncSemaphore(self, name, limit, permits, ttl, client_id or self.client_id, session, renew)

    async def semaphore_status(self, name: str) -> dict[str, Any]:
        """The semaphore's limit, available permits, holders and waiters (linearizable)."""
        return await self._run(coord_calls.semaphore_status(name))  # type: ignore[no-any-return]

    def campaign(
        self,
        name: str,
        *,
        value: JSON = None,
        ttl: float = 10.0,
        timeout: float | None = None,
        candidate_id: str | None = None,
        session: AsyncSession | None = None,
    ) -> AsyncLeadership:
        """Run for leader of ``name`` (see ``Client.campaign``): the block runs once elected and is
        cancelled with ``LeadershipLost`` if the leadership is lost.

        >>> async with client.campaign("scheduler", value={"host": host}, ttl=10) as leadership:
        ...     await schedule(fencing_token=leadership.term)
        """
        return AsyncLeadership(self, name, candidate_id or self.client_id, value, ttl, timeout, session)

    async def election_leader(self, name: str) -> dict[str, Any]:
        """``{"name", "leader", "value", "term", "candidates"}`` (linearizable)."""
        return await self._run(coord_calls.election_leader(name))  # type: ignore[no-any-return]

    def observe(self, name: str, *, after_term: int = 0, poll: float = 60.0) -> AsyncIterator[LeaderChange]:
        """Each change of leader after ``after_term`` (see ``Client.observe``); terms only go up.

        >>> async for change in client.observe("scheduler"):
        ...     print(change.leader, change.term)
        """
        return aio_elections.observe(self, name, after_term, poll)

    def leader_only(
        self, name: str, *, ttl: float = 60.0, value: JSON = None, resign: bool = False
    ) -> Callable[[F], F]:
        """Decorate a coroutine function to run only in the process that wins election ``name``
        (else the call returns None); see ``Client.leader_only`` for the scheduler use case
        (celery beat, APScheduler).  A leadership lost meanwhile cancels it: ``LeadershipLost``.

        >>> @client.leader_only("nightly-report", ttl=600)
        ... async def nightly_report(): ...
        """
        return aio_elections.leader_only(self, name, ttl, value, resign)

    def queue(self, topic: str) -> AsyncQueue:
        """The queue ``topic``.

        >>> await client.queue("emails").push({"to": "a@b.c"})
        """
        return AsyncQueue(self, topic)

    async def status(self) -> list[dict[str, Any]]:
        """Every node's ``/status``, or its error, asked in parallel.

        >>> [n.get("role") for n in await client.status()]
        """

        async def one(url: str) -> dict[str, Any]:
            try:
                return {"url": url, "ok": True, **await self._runner.run(calls.status(), url, single=True)}
            except RakitError as exc:
                return {"url": url, "ok": False, "error": str(exc)}

        return list(await asyncio.gather(*(one(u) for u in self.nodes)))

    # -- membership (operators; see ``Client``) --------------------------------

    async def members(self) -> dict[str, Any]:
        return await self._run(calls.members())  # type: ignore[no-any-return]

    async def add_member(self, node_id: str, url: str) -> dict[str, Any]:
        return await self._run(calls.add_member(node_id, url))  # type: ignore[no-any-return]

    async def promote(self, node_id: str) -> dict[str, Any]:
        return await self._run(calls.promote(node_id))  # type: ignore[no-any-return]

    async def remove_member(self, node_id: str) -> dict[str, Any]:
        return await self._run(calls.remove_member(node_id))  # type: ignore[no-any-return]

    async def transfer_leader(self, to: str | None = None) -> dict[str, Any]:
        return await self._run(calls.transfer_leader(to))  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Close the connection pool (``with``/``async with`` the client does it).

        >>> await client.aclose()
        """
        await self._runner.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@checked
class AsyncQueue:
    """One topic of the distributed queue (awaitable methods)."""

    def __init__(self, client: AsyncClient, topic: str) -> None:
        self.client = client
        self.topic = topic

    async def push(self, message: JSON, message_id: str | None = None) -> str:
        """Enqueue ``message``; its id (the same ``message_id`` twice enqueues once).

        >>> await client.queue("emails").push({"to": "a@b.c"})
        """
        return await self.client._run(calls.push(self.topic, message, message_id or uuid.uuid4().hex))  # type: ignore[no-any-return]

    async def pop(
        self, consumer_id: str | None = None, *, visibility_timeout: float = 30.0, wait: float = 0.0
    ) -> Message | None:
        """The next message (in flight for ``consumer_id``) or None; long-polls up to ``wait`` s.

        >>> m = await client.queue("emails").pop("worker-1", wait=10)
        >>> if m: await send(m.message); await m.ack()  # as "worker-1"
        """
        return await self.client._run(  # type: ignore[no-any-return]
            calls.pop(
                self.topic,
                consumer_id or self.client.client_id,
                visibility_timeout,
                wait,
                self,
            )
        )

    async def ack(self, message_id: str | Message, consumer_id: str | None = None) -> bool:
        """Acknowledge a popped message.

        ``message_id``: the id or the ``Message`` itself (whose consumer is the default ``consumer_id``).

        >>> await client.queue("emails").ack(m.message_id, "worker-1")
        >>> await client.queue("emails").ack(m)
        """
        mid, consumer = message_and_consumer(self, "ack", message_id, consumer_id)
        return await self.client._run(calls.ack(self.topic, consumer, mid))  # type: ignore[no-any-return]

    async def nack(self, message_id: str | Message, consumer_id: str | None = None) -> bool:
        """Give a message back at once.

        >>> await client.queue("emails").nack(m.message_id, "worker-1")
        >>> await client.queue("emails").nack(m)
        """
        mid, consumer = message_and_consumer(self, "nack", message_id, consumer_id)
        return await self.client._run(calls.nack(self.topic, consumer, mid))  # type: ignore[no-any-return]

    async def extend(
        self, message_id: str | Message, visibility_timeout: float, consumer_id: str | None = None
    ) -> bool:
        """Keep a message in flight ``visibility_timeout`` more seconds.

        >>> await client.queue("emails").extend(m.message_id, 60, "worker-1")
        >>> await client.queue("emails").extend(m, 60)
        """
        mid, consumer = message_and_consumer(self, "extend", message_id, consumer_id)
        call = calls.extend(self.topic, consumer, mid, visibility_timeout)
        return await self.client._run(call)  # type: ignore[no-any-return]

    async def stats(self) -> dict[str, Any]:
        """``{"topic", "ready", "in_flight", "dead", "owner"}``.

        >>> (await client.queue("emails").stats())["ready"]
        """
        return await self.client._run(calls.queue_stats(self.topic))  # type: ignore[no-any-return]

    async def dead(self, limit: int = 100) -> list[Message]:
        """The dead-letter list.

        >>> await client.queue("emails").dead()
        """
        return await self.client._run(calls.dead(self.topic, limit))  # type: ignore[no-any-return]

    async def redrive(self, limit: int = 100) -> int:
        """Move dead letters back to the topic; how many moved.

        >>> await client.queue("emails").redrive()
        """
        return await self.client._run(calls.redrive(self.topic, limit))  # type: ignore[no-any-return]

    async def consume(
        self,
        handler: Callable[[Any], Awaitable[object]],
        consumer_id: str | None = None,
        *,
        wait: float = 10.0,
        visibility_timeout: float = 30.0,
        stop: asyncio.Event | None = None,
        max_messages: int | None = None,
        idle_exit: bool = False,
    ) -> int:
        """Loop: pop (long polling), ``await handler(message)``, ack on success, nack on exception.

        >>> await client.queue("emails").consume(send_email, "worker-1", stop=shutdown)
        """
        consumer = consumer_id or self.client.client_id
        done = 0
        while not (stop is not None and stop.is_set()) and (max_messages is None or done < max_messages):
            message = await self.pop(consumer, visibility_timeout=visibility_timeout, wait=wait)
            if message is None:
                if idle_exit:
                    break
                continue
            try:
                await handler(message.message)
            except Exception:
                log.exception("handler failed on %s/%s; nacking", self.topic, message.message_id)
                await self.nack(message.message_id, consumer)
                continue
            await self.ack(message.message_id, consumer)
            done += 1
        return done


@checked
class AsyncCache:
    """The distributed cache: ``client.cache`` (awaitable methods)."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    async def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default``.

        >>> await client.cache.get("user:42", default={})
        """
        answer = await self.client._run(calls.cache_get(key))
        return default if answer is None else answer["value"]

    async def get_entry(self, key: str) -> dict[str, Any] | None:
        """The whole answer (``value``, ``version``, ``node``, ``source``) or None.

        >>> (await client.cache.get_entry("user:42"))["version"]
        """
        return await self.client._run(calls.cache_get(key))  # type: ignore[no-any-return]

    async def set(self, key: str, value: JSON, ttl: float | None = None) -> str:
        """Store ``value``; answered once every peer dropped older copies.  Its version.

        >>> await client.cache.set("user:42", {"name": "Ada"}, ttl=300)
        """
        return await self.client._run(calls.cache_set(key, value, ttl))  # type: ignore[no-any-return]

    async def delete(self, key: str) -> bool:
        """Remove ``key`` everywhere; True if any node held it.

        >>> await client.cache.delete("user:42")
        """
        return await self.client._run(calls.cache_delete(key))  # type: ignore[no-any-return]

    async def stats(self, node: str | None = None) -> dict[str, Any]:
        """One node's cache statistics.

        >>> (await client.cache.stats())["hits"]
        """
        return await self.client._run(calls.cache_stats(), node)  # type: ignore[no-any-return]
