"""``rakit.Client``: the blocking client (threads; see ``rakit.AsyncClient`` for asyncio).

>>> import rakit
>>> client = rakit.Client(["http://127.0.0.1:8001", "http://127.0.0.1:8002"])
>>> with client.lock("orders", ttl=10, timeout=5) as lease:
...     storage.write(data, fencing_token=lease.fencing_token)
>>> client.queue("emails").push({"to": "a@b.c"})
>>> client.cache.set("user:42", {"name": "Ada"}, ttl=300)
>>> client.cache.get("user:42", default=None)
>>> client.kv.put("config:mode", "blue", if_absent=True)   # the linearizable KV: rakit.client.kv
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from rakit.client import calls, coord_calls, elections
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
from rakit.client.elections import Leadership
from rakit.client.errors import RakitError
from rakit.client.kv import Kv
from rakit.client.locks import Lock
from rakit.client.runner import RetryPolicy, SyncRunner, Verify
from rakit.client.semaphores import Semaphore
from rakit.client.sessions import Session

__all__ = ["Cache", "Client", "Kv", "LeaderChange", "Leadership", "Lock", "Queue", "Semaphore", "Session"]

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


@checked
class Client:
    """A connection to a rakit cluster through any of its nodes.

    ``nodes``: base URLs (a list or a comma-separated string); default
    ``$RAKIT_NODES``, else the local cluster of ``rakit up``.  Requests go to
    the node that last answered and fail over to the others on connection
    errors and ``503`` (see ``rakit.client.runner`` for the retry policy).
    ``verify``: how https:// nodes' certificates are checked: True (default
    CAs), a CA file such as the cluster's ``--tls-ca``, an ``ssl.SSLContext``,
    or False (no check).  ``token``: the API token sent as ``Authorization:
    Bearer`` when the cluster runs with ``--auth-tokens`` (default
    ``$RAKIT_TOKEN``; none if unset); refusals raise ``Unauthorized`` (401)
    and ``Forbidden`` (403).  Locks taken with a token can only be released
    or renewed with the same token.

    >>> with rakit.Client("http://10.0.0.1:8001,http://10.0.0.2:8001") as client:
    ...     print(client.status())
    >>> rakit.Client("https://10.0.0.1:8001,https://10.0.0.2:8001", verify="ca.pem")
    >>> rakit.Client(token=os.environ["ORDERS_TOKEN"])
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
        self._runner = SyncRunner(
            self.nodes,
            RetryPolicy(timeout=timeout, attempts=attempts, deadline=retry_deadline),
            verify,
            default_token(token),
            cluster_secret=default_cluster_secret(cluster_secret),
        )
        self.cache = Cache(self)
        self.kv = Kv(self)

    def _run(self, call: calls.Call, node: str | None = None) -> Any:
        return self._runner.run(call, node)

    # -- locks ---------------------------------------------------------------

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
        session: Session | None = None,
    ) -> Lock:
        """A lock on ``resource``, to use as a context manager (or ``acquire()``/``release()``).

        ``timeout``: seconds to wait in the FIFO queue (0: fail at once with
        ``LockConflict``; None: no end).  While held, a background thread renews the lease
        every ``ttl / 3``; if a renewal is refused or cannot reach the
        cluster before the lease would end, ``lease.lost`` is set and leaving
        the block raises ``LockLost``.  With ``session``, the lock lives as
        long as the session (its ``ttl`` is ignored, it is not renewed on
        its own) and its holder is the session's client.  It also stands
        where code expects a ``threading.Lock`` (``rakit.client.locks``).

        >>> with client.lock("orders", ttl=10, timeout=5) as lease:
        ...     db.save(order, fencing_token=lease.fencing_token)
        ...     lease.check()  # raises LockLost if the lock was lost meanwhile
        >>> with client.lock("config", mode="shared") as lease: ...
        >>> if client.lock("orders").acquire(timeout=5): ...  # threading.Lock style: True/False
        """
        return Lock(self, resource, client_id or self.client_id, mode, ttl, timeout, lock_delay, renew, session)

    def acquire(
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
        """One acquire, no renewal (prefer ``lock()``): the grant ``{"fencing_token", "ttl", ...}``.

        >>> client.acquire("orders", "worker-1", ttl=60)["fencing_token"]
        """
        return self._run(  # type: ignore[no-any-return]
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

    def release(
        self,
        resource: str,
        client_id: str | None = None,
        fencing_token: int | None = None,
        *,
        secret: str | None = None,
    ) -> None:
        """Release a hold taken with ``acquire`` (``NotHolder`` if it is not held).

        >>> client.release("orders", "worker-1")
        """
        self._run(calls.release(resource, client_id or self.client_id, fencing_token, secret))

    def renew(
        self, resource: str, client_id: str | None = None, ttl: float | None = None, *, secret: str | None = None
    ) -> dict[str, Any]:
        """Restart a hold's lease (at ``ttl``, or its own): ``{"renewed", "ttl", "fencing_token"}``.

        >>> client.renew("orders", "worker-1", ttl=60)
        """
        return self._run(calls.renew(resource, client_id or self.client_id, ttl, secret))  # type: ignore[no-any-return]

    def lock_status(self, resource: str) -> dict[str, Any]:
        """The lock's holders, waiters, mode and highest fencing token (a linearizable read).

        >>> client.lock_status("orders")["holders"]
        ['worker-1']
        """
        return self._run(calls.lock_status(resource))  # type: ignore[no-any-return]

    def watch(self, resource: str, client_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """Block until ``client_id``'s hold on ``resource`` ends (or ``timeout`` passes).

        >>> client.watch("orders", "worker-1", timeout=30)
        """
        return self._run(calls.lock_watch(resource, client_id, timeout))  # type: ignore[no-any-return]

    # -- sessions, semaphores, elections (``rakit.client.sessions`` ...) ---------

    def session(
        self,
        *,
        ttl: float = 10.0,
        lock_delay: float | None = None,
        client_id: str | None = None,
        keepalive_interval: float | None = None,
    ) -> Session:
        """A session: one lease that locks, permits and candidacies attached to it share (``with``).

        Granted on entering, kept alive every ``ttl / 3`` (or ``keepalive_interval``) by a thread,
        revoked on leaving (every attached hold ends with it).  ``s.lost`` is set if a keepalive
        gets ``session_not_found`` or cannot reach the cluster before the ttl runs out; leaving the
        block then raises ``SessionLost``.  ``lock_delay``: how long the session's locks stay
        ungranted after it expires.

        >>> with client.session(ttl=10) as s:
        ...     with client.lock("orders", session=s), client.semaphore("gpu", 4, session=s):
        ...         work()
        ...     s.info()["locks"]
        """
        return Session(self, client_id or self.client_id, ttl, lock_delay, keepalive_interval)

    def semaphore(
        self,
        name: str,
        limit: int,
        *,
        permits: int = 1,
        ttl: float = 30.0,
        client_id: str | None = None,
        session: Session | None = None,
        renew: bool = True,
    ) -> Semaphore:
        """A counting semaphore of ``limit`` permits shared by every client, like ``threading.Semaphore``.

        This handle takes ``permits`` at once; ``acquire(blocking=True, timeout=None)`` -> bool,
        ``release()``, ``with``; ``fencing_token`` once held; renewed every ``ttl / 3`` unless attached
        to ``session``.  Loss sets ``lost`` and leaving the block raises ``PermitsLost``.

        >>> with client.semaphore("gpu", limit=4, ttl=30) as gpu:
        ...     train(fencing_token=gpu.fencing_token)
        """
        semaphore_counts("Client.semaphore()", limit, permits)
        return Semaphore(self, name, limit, permits, ttl, client_id or self.client_id, session, renew)

    def semaphore_status(self, name: str) -> dict[str, Any]:
        """The semaphore's limit, available permits, holders and waiters (a linearizable read)."""
        return self._run(coord_calls.semaphore_status(name))  # type: ignore[no-any-return]

    def campaign(
        self,
        name: str,
        *,
        value: JSON = None,
        ttl: float = 10.0,
        timeout: float | None = None,
        candidate_id: str | None = None,
        session: Session | None = None,
    ) -> Leadership:
        """Run for leader of election ``name``: the ``with`` block runs once elected (``rakit.client.elections``).

        Waits (``timeout`` s; None: no end) in bounded long-polls; renews every ``ttl / 3``; resigns
        on leaving.  ``leadership.term`` (a fencing token), ``leadership.proclaim(value)``,
        ``leadership.lost`` (set on loss; leaving the block then raises ``LeadershipLost``).

        >>> with client.campaign("scheduler", value={"host": host}, ttl=10) as leadership:
        ...     schedule(fencing_token=leadership.term)
        """
        return Leadership(self, name, candidate_id or self.client_id, value, ttl, timeout, session)

    def election_leader(self, name: str) -> dict[str, Any]:
        """``{"name", "leader", "value", "term", "candidates"}`` (a linearizable read).

        >>> client.election_leader("scheduler")["leader"]
        """
        return self._run(coord_calls.election_leader(name))  # type: ignore[no-any-return]

    def observe(self, name: str, *, after_term: int = 0, poll: float = 60.0) -> Iterator[LeaderChange]:
        """Each change of leader (``LeaderChange``: name, leader or None when vacant, value, term) after
        ``after_term``, as it happens, by long-polls of ``poll`` s; terms only go up.  Runs until
        the loop breaks.

        >>> for change in client.observe("scheduler"):
        ...     print(change.leader, change.value, change.term)
        """
        return elections.observe(self, name, after_term, poll)

    def leader_only(
        self, name: str, *, ttl: float = 60.0, value: JSON = None, resign: bool = False
    ) -> Callable[[F], F]:
        """Decorate a function (or coroutine function) to run only in the process that wins election ``name``.

        Each call campaigns with ``timeout=0``: elected (or still leader), the function runs while
        the lease is renewed in the background; another process leads: the call returns None
        without running.  The use case: several replicas of a scheduler (celery beat, APScheduler,
        cron on every host) all fire the same job; only one runs it.  After the run the win is kept
        for ``ttl`` s (unless ``resign``), so the same job fired a little later by another
        replica (clock skew) finds the election taken and does not run twice; pick a ``ttl``
        longer than the replicas' skew and shorter than the interval between runs.  A leadership
        lost while the function ran raises ``LeadershipLost`` after it returns.

        >>> @client.leader_only("nightly-report", ttl=600)
        ... def nightly_report(): ...
        >>> scheduler.add_job(nightly_report, "cron", hour=2)   # on every replica (APScheduler)
        >>> @app.task  # celery: beat on several hosts, the task runs once per firing
        ... @client.leader_only("cleanup", ttl=120)
        ... def cleanup(): ...
        """
        return elections.leader_only(self, name, ttl, value, resign)

    # -- queue and cluster ---------------------------------------------------

    def queue(self, topic: str) -> Queue:
        """The queue ``topic`` (created on first push).

        >>> emails = client.queue("emails")
        >>> emails.push({"to": "a@b.c"})
        """
        return Queue(self, topic)

    def status(self) -> list[dict[str, Any]]:
        """Every node's ``/status`` (role, term, leader, commit/applied index), or its error.

        >>> [(n["url"], n.get("role")) for n in client.status()]
        """
        out: list[dict[str, Any]] = []
        for url in self.nodes:
            try:
                answer = self._runner.run(calls.status(), url, single=True)
                out.append({"url": url, "ok": True, **answer})
            except RakitError as exc:
                out.append({"url": url, "ok": False, "error": str(exc)})
        return out

    # -- membership (operators; README "Membership") -------------------------

    def members(self) -> dict[str, Any]:
        """The configuration as the first node that answers sees it: voters, learners, leader."""
        return self._run(calls.members())  # type: ignore[no-any-return]

    def add_member(self, node_id: str, url: str) -> dict[str, Any]:
        """Add a node as a learner (usually done by ``rakit node --join``)."""
        return self._run(calls.add_member(node_id, url))  # type: ignore[no-any-return]

    def promote(self, node_id: str) -> dict[str, Any]:
        """Make a caught-up learner a voter."""
        return self._run(calls.promote(node_id))  # type: ignore[no-any-return]

    def remove_member(self, node_id: str) -> dict[str, Any]:
        """Remove a voter or learner (the leader hands over leadership first)."""
        return self._run(calls.remove_member(node_id))  # type: ignore[no-any-return]

    def transfer_leader(self, to: str | None = None) -> dict[str, Any]:
        """Hand leadership to ``to`` (default: the most caught-up other voter)."""
        return self._run(calls.transfer_leader(to))  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close the connection pool (``with``/``async with`` the client does it).

        >>> client.close()
        """
        self._runner.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@checked
class Queue:
    """One topic of the distributed queue."""

    def __init__(self, client: Client, topic: str) -> None:
        self.client = client
        self.topic = topic

    def push(self, message: JSON, message_id: str | None = None) -> str:
        """Enqueue ``message`` (any JSON); its id.  The same ``message_id`` twice enqueues once.

        >>> client.queue("emails").push({"to": "a@b.c"}, message_id="order-17-mail")
        'order-17-mail'
        """
        return self.client._run(calls.push(self.topic, message, message_id or uuid.uuid4().hex))  # type: ignore[no-any-return]

    def pop(
        self, consumer_id: str | None = None, *, visibility_timeout: float = 30.0, wait: float = 0.0
    ) -> Message | None:
        """The next message (now in flight for ``consumer_id``), or None; long-polls up to ``wait`` s.

        >>> m = client.queue("emails").pop("worker-1", wait=10)
        >>> if m: send(m.message); m.ack()  # as "worker-1"
        """
        return self.client._run(  # type: ignore[no-any-return]
            calls.pop(
                self.topic,
                consumer_id or self.client.client_id,
                visibility_timeout,
                wait,
                self,
            )
        )

    def ack(self, message_id: str | Message, consumer_id: str | None = None) -> bool:
        """Acknowledge a message popped by ``consumer_id``; ``NotInFlight`` if it is not in flight.

        ``message_id``: the id or the ``Message`` itself (whose consumer is the default ``consumer_id``).

        >>> client.queue("emails").ack(m.message_id, "worker-1")
        >>> client.queue("emails").ack(m)
        """
        mid, consumer = message_and_consumer(self, "ack", message_id, consumer_id)
        return self.client._run(calls.ack(self.topic, consumer, mid))  # type: ignore[no-any-return]

    def nack(self, message_id: str | Message, consumer_id: str | None = None) -> bool:
        """Give a message back at once (redelivered with ``delivery_count`` + 1).

        >>> client.queue("emails").nack(m.message_id, "worker-1")
        >>> client.queue("emails").nack(m)
        """
        mid, consumer = message_and_consumer(self, "nack", message_id, consumer_id)
        return self.client._run(calls.nack(self.topic, consumer, mid))  # type: ignore[no-any-return]

    def extend(self, message_id: str | Message, visibility_timeout: float, consumer_id: str | None = None) -> bool:
        """Keep a message in flight ``visibility_timeout`` more seconds.

        >>> client.queue("emails").extend(m.message_id, 60, "worker-1")
        >>> client.queue("emails").extend(m, 60)
        """
        mid, consumer = message_and_consumer(self, "extend", message_id, consumer_id)
        call = calls.extend(self.topic, consumer, mid, visibility_timeout)
        return self.client._run(call)  # type: ignore[no-any-return]

    def stats(self) -> dict[str, Any]:
        """``{"topic", "ready", "in_flight", "dead", "owner"}``.

        >>> client.queue("emails").stats()["ready"]
        """
        return self.client._run(calls.queue_stats(self.topic))  # type: ignore[no-any-return]

    def dead(self, limit: int = 100) -> list[Message]:
        """The dead-letter list (messages past ``max_deliveries``).

        >>> [m.message_id for m in client.queue("emails").dead()]
        """
        return self.client._run(calls.dead(self.topic, limit))  # type: ignore[no-any-return]

    def redrive(self, limit: int = 100) -> int:
        """Move up to ``limit`` dead letters back to the topic; how many moved.

        >>> client.queue("emails").redrive()
        """
        return self.client._run(calls.redrive(self.topic, limit))  # type: ignore[no-any-return]

    def consume(
        self,
        handler: Callable[[Any], object],
        consumer_id: str | None = None,
        *,
        wait: float = 10.0,
        visibility_timeout: float = 30.0,
        stop: threading.Event | None = None,
        max_messages: int | None = None,
        idle_exit: bool = False,
    ) -> int:
        """Loop: pop (long polling), call ``handler(message)``, ack on success, nack on exception.

        Runs until ``stop`` is set, ``max_messages`` were handled, or (with
        ``idle_exit``) a poll finds nothing.  Returns how many messages were
        acked.  A handler exception is logged and the message nacked
        (redelivered, dead-lettered after ``max_deliveries``).

        >>> client.queue("emails").consume(send_email, "worker-1", stop=shutdown)
        """
        consumer = consumer_id or self.client.client_id
        done = 0
        while not (stop is not None and stop.is_set()) and (max_messages is None or done < max_messages):
            message = self.pop(consumer, visibility_timeout=visibility_timeout, wait=wait)
            if message is None:
                if idle_exit:
                    break
                continue
            try:
                handler(message.message)
            except Exception:
                log.exception("handler failed on %s/%s; nacking", self.topic, message.message_id)
                self.nack(message.message_id, consumer)
                continue
            self.ack(message.message_id, consumer)
            done += 1
        return done


@checked
class Cache:
    """The distributed cache: ``client.cache``."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when no node holds a current copy.

        >>> client.cache.get("user:42", default={})
        """
        answer = self.client._run(calls.cache_get(key))
        return default if answer is None else answer["value"]

    def get_entry(self, key: str) -> dict[str, Any] | None:
        """The whole answer (``value``, ``version``, ``node``, ``source``) or None.

        >>> client.cache.get_entry("user:42")["version"]
        """
        return self.client._run(calls.cache_get(key))  # type: ignore[no-any-return]

    def set(self, key: str, value: JSON, ttl: float | None = None) -> str:
        """Store ``value`` (any JSON, ≤ 1 MiB); answered once every peer dropped older copies.

        >>> client.cache.set("user:42", {"name": "Ada"}, ttl=300)
        '1795706155548208.node1'
        """
        return self.client._run(calls.cache_set(key, value, ttl))  # type: ignore[no-any-return]

    def delete(self, key: str) -> bool:
        """Remove ``key`` everywhere; True if any node held it.

        >>> client.cache.delete("user:42")
        True
        """
        return self.client._run(calls.cache_delete(key))  # type: ignore[no-any-return]

    def stats(self, node: str | None = None) -> dict[str, Any]:
        """One node's cache statistics (``node``: its URL; default: the current node).

        >>> client.cache.stats("http://127.0.0.1:8002")["hits"]
        """
        return self.client._run(calls.cache_stats(), node)  # type: ignore[no-any-return]
