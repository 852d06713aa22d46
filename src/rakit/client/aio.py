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
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any

from rakit.client import calls
from rakit.client.args import JSON, checked, message_and_consumer
from rakit.client.calls import (
    LockMode,
    Message,
    default_client_id,
    default_cluster_secret,
    default_nodes,
    default_token,
)
from rakit.client.errors import LockLost, NotHolder, RakitError
from rakit.client.runner import AsyncRunner, RetryPolicy, Verify

__all__ = ["AsyncCache", "AsyncClient", "AsyncLock", "AsyncQueue"]

log = logging.getLogger(__name__)


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

    async def _run(self, call: calls.Call, node: str | None = None) -> Any:
        return await self._runner.run(call, node)

    def lock(
        self,
        resource: str,
        *,
        ttl: float = 30.0,
        timeout: float = 0.0,
        mode: LockMode = "exclusive",
        client_id: str | None = None,
        lock_delay: float | None = None,
        renew: bool = True,
    ) -> AsyncLock:
        """A lock on ``resource`` for ``async with``; renewed every ``ttl / 3`` while held.

        If the lock is lost (renewal refused, or the cluster unreachable until
        the lease ends), ``lease.lost`` is set and the block is cancelled: it
        raises ``LockLost``.

        >>> async with client.lock("orders", ttl=10, timeout=5) as lease:
        ...     await db.save(order, fencing_token=lease.fencing_token)
        """
        return AsyncLock(self, resource, client_id or self.client_id, mode, ttl, timeout, lock_delay, renew)

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


class AsyncLock:
    """A lock and, once acquired, its lease (``fencing_token``, ``lost``)."""

    def __init__(
        self,
        client: AsyncClient,
        resource: str,
        client_id: str,
        mode: LockMode,
        ttl: float,
        timeout: float,
        lock_delay: float | None,
        renew: bool,
    ) -> None:
        self.client = client
        self.resource = resource
        self.client_id = client_id
        self.mode = mode
        self.ttl = ttl
        self.timeout = timeout
        self.lock_delay = lock_delay
        self.renew_in_background = renew
        self.fencing_token: int | None = None
        self.secret = calls.new_lock_secret()  # never shown by a read: a client id alone cannot release this
        self.lost = asyncio.Event()
        self.held = False
        self._renewer: asyncio.Task[None] | None = None
        self._owner: asyncio.Task[Any] | None = None
        self._cancelled_owner = False
        self._expires_at = 0.0

    async def acquire(self) -> AsyncLock:
        """Take the lock (waiting up to ``timeout``); ``LockConflict``/``LockTimeout``/``Deadlock`` if not.

        >>> lease = await client.lock("orders", ttl=10).acquire()
        """
        started = time.monotonic()
        grant = await self.client._run(
            calls.acquire(
                self.resource, self.client_id, self.mode, self.ttl, self.timeout, self.lock_delay, self.secret
            )
        )
        self.fencing_token = grant["fencing_token"]
        self.held = True
        self.lost.clear()
        self._expires_at = started + self.ttl
        if self.renew_in_background:
            self._renewer = asyncio.create_task(self._renew_loop(), name=f"rakit-renew-{self.resource}")
        return self

    async def renew(self) -> None:
        """Renew the lease now (the background task does this every ``ttl / 3``).

        >>> await lease.renew()
        """
        started = time.monotonic()
        await self.client._run(calls.renew(self.resource, self.client_id, self.ttl, self.secret))
        self._expires_at = started + self.ttl

    def check(self) -> None:
        """Raise ``LockLost`` if the lock was lost.

        >>> lease.check()  # before a write the lock must protect
        """
        if self.lost.is_set() or (self.held and time.monotonic() >= self._expires_at):
            raise LockLost(f"lost the lock on {self.resource!r}")

    @property
    def is_lost(self) -> bool:
        """Whether the lock was lost (``lease.lost`` is the event itself).

        >>> if lease.is_lost: abort()
        """
        return self.lost.is_set()

    async def release(self) -> None:
        """Release the lock (stops renewal); a lock already lost is not an error here.

        >>> await lease.release()
        """
        await self._stop_renewal()
        if not self.held:
            return
        self.held = False
        try:
            await self.client._run(calls.release(self.resource, self.client_id, self.fencing_token, self.secret))
        except NotHolder:
            if not self.lost.is_set():
                raise

    async def _stop_renewal(self) -> None:
        task, self._renewer = self._renewer, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _renew_loop(self) -> None:
        interval = self.ttl / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.wait_for(self.renew(), timeout=max(0.05, self._expires_at - time.monotonic()))
            except NotHolder as exc:
                self._lose(exc)
                return
            except (RakitError, TimeoutError) as exc:
                if time.monotonic() >= self._expires_at:
                    self._lose(exc)
                    return
                log.warning("renewing %r failed (%s); retrying until the lease ends", self.resource, exc)
                interval = min(self.ttl / 6, max(0.05, self._expires_at - time.monotonic()) / 2)
                continue
            interval = self.ttl / 3

    def _lose(self, cause: BaseException) -> None:
        log.warning("lost the lock on %r: %s", self.resource, cause)
        self.lost.set()
        if self._owner is not None and not self._owner.done():
            self._cancelled_owner = True
            self._owner.cancel()

    async def __aenter__(self) -> AsyncLock:
        await self.acquire()
        self._owner = asyncio.current_task()
        self._cancelled_owner = False
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        owner, self._owner = self._owner, None
        lost = self.lost.is_set()
        await self.release()
        if self._cancelled_owner and owner is not None:
            self._cancelled_owner = False
            if owner.uncancel() == 0 and exc_type is asyncio.CancelledError:
                raise LockLost(f"the lock on {self.resource!r} was lost; the block was cancelled") from None
        if lost and exc_type is None:
            raise LockLost(f"the lock on {self.resource!r} was lost while the block ran")


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
