"""What each client operation sends and how its answer is read: shared by both clients.

A ``Call`` is one API request (method, path, JSON body, query, how long the
server may take) plus ``parse`` (the answer's JSON -> the result) and the
answers that count as success: ``absent`` (a status and error code that mean
"nothing there", e.g. a 404 cache miss or a 204 empty pop) and
``retry_success`` (an error code that, on a *retried* attempt, means the
first attempt already did it: a release answered ``not_holder`` after a lost
answer).  ``Client`` and ``AsyncClient`` only differ in how they run calls.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

__all__ = ["Call", "Message", "default_client_id", "default_cluster_secret", "default_nodes", "default_token"]

DEFAULT_NODES = "http://127.0.0.1:8001,http://127.0.0.1:8002,http://127.0.0.1:8003"
LockMode = Literal["exclusive", "shared"]
_NAME_BAD = re.compile(r"[^A-Za-z0-9_.-]")


def default_nodes(nodes: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """``nodes`` as a list of base URLs; else ``$RAKIT_NODES``; else the local 3-node cluster."""
    if nodes is None:
        nodes = os.environ.get("RAKIT_NODES") or DEFAULT_NODES
    if isinstance(nodes, str):
        nodes = [n for n in nodes.split(",")]
    urls = [n.strip().rstrip("/") for n in nodes if n.strip()]
    if not urls:
        raise ValueError("no node URLs given")
    return [u if "://" in u else "http://" + u for u in urls]


def default_token(token: str | None) -> str | None:
    """``token``; else ``$RAKIT_TOKEN``; else None (no ``Authorization`` header)."""
    if token is None:
        token = os.environ.get("RAKIT_TOKEN") or None
    return (token.strip() or None) if token is not None else None


def default_cluster_secret(secret: str | None) -> str | None:
    """``secret``; else ``$CLUSTER_SECRET``; else the file ``$CLUSTER_SECRET_FILE`` names; else None."""
    if secret is None:
        secret = os.environ.get("CLUSTER_SECRET") or None
        path = os.environ.get("CLUSTER_SECRET_FILE")
        if secret is None and path:
            with open(path, encoding="utf-8") as f:
                secret = f.read().strip() or None
    return secret


def default_client_id() -> str:
    """``<host>-<pid>-<random>``: unique per process, in the API's name form."""
    host = _NAME_BAD.sub("-", socket.gethostname())[:60] or "client"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def key_path(name: str) -> str:
    return quote(name, safe="")


class _Bound:
    """The slot a popped ``Message`` keeps its queue in: not a dataclass field, so not compared, shown,
    copied by ``dataclasses.asdict``/``replace`` or pickled (the queue's client stays in this process)."""

    __slots__ = ("_queue",)


@dataclass(frozen=True, slots=True)
class Message(_Bound):
    """One delivered queue message.

    A popped message knows its consumer and its queue: ``m.ack()``,
    ``m.nack()`` and ``m.extend(seconds)`` are ``queue.ack(m)`` and so on
    (with ``AsyncClient``, await them).  Every queue method that takes a
    message id also takes the ``Message`` itself.  A dead letter
    (``queue.dead()``) is in flight for no one: it has no consumer or queue.

    >>> m = client.queue("emails").pop("worker-1")
    >>> if m: send(m.message); m.ack()
    """

    topic: str
    message_id: str
    message: Any
    delivery_count: int
    consumer_id: str | None = None  # the consumer that popped it (None: a dead letter)

    def ack(self) -> Any:
        """Acknowledge this message as the consumer that popped it (``NotInFlight`` if it is not in flight).

        >>> m.ack()  # AsyncClient: await m.ack()
        True
        """
        return self._bound("ack").ack(self)

    def nack(self) -> Any:
        """Give this message back at once (redelivered with ``delivery_count`` + 1).

        >>> m.nack()  # AsyncClient: await m.nack()
        """
        return self._bound("nack").nack(self)

    def extend(self, visibility_timeout: float) -> Any:
        """Keep this message in flight ``visibility_timeout`` more seconds.

        >>> m.extend(60)  # AsyncClient: await m.extend(60)
        """
        return self._bound("extend").extend(self, visibility_timeout)

    def bind(self, queue: Any) -> Message:
        """This message, bound to the ``Queue``/``AsyncQueue`` that popped it (which refers to its client,
        nothing back here: no cycle)."""
        object.__setattr__(self, "_queue", queue)
        return self

    def _bound(self, op: str) -> Any:
        queue = getattr(self, "_queue", None)
        if queue is None:
            raise ValueError(
                f"Message.{op}(): message {self.message_id!r} was not popped by a client (a dead "
                f"letter, or a copy); use client.queue({self.topic!r}).{op}(message_id, consumer_id)"
            )
        return queue

    def __reduce__(self) -> tuple[Any, ...]:
        # A pickled (or copied) message is the data only.
        return (Message, (self.topic, self.message_id, self.message, self.delivery_count, self.consumer_id))


@dataclass(slots=True)
class Call:
    method: str
    path: str
    json: Any = None
    params: dict[str, Any] | None = None
    wait: float = 0.0  # seconds the server may legitimately hold the request
    parse: Callable[[Any], Any] = lambda body: body
    absent: tuple[int, str | None] | None = None  # (status, error code or None) -> result None
    retry_success: str | None = None
    retry_result: Any = field(default=None)
    signed: bool = False  # an operator call: signed with the cluster secret (membership, leader transfer)
    # False: repeating it after it was applied changes the outcome (an incr, a conditional KV write), so it is
    # retried only after failures that prove it was not sent or not proposed (``rakit.client.runner``).
    idempotent: bool = True


# -- locks ---------------------------------------------------------------------


def new_lock_secret() -> str:
    """A holder secret (docs/api.md, "Locks"): only who took the hold can release or renew it."""
    return secrets.token_urlsafe(24)


def acquire(
    resource: str,
    client_id: str,
    mode: LockMode,
    ttl: float,
    timeout: float,
    lock_delay: float | None,
    secret: str | None = None,
    session_id: str | None = None,
) -> Call:
    body: dict[str, Any] = {"resource": resource, "client_id": client_id, "mode": mode, "ttl": ttl, "timeout": timeout}
    if lock_delay is not None:
        body["lock_delay"] = lock_delay
    if session_id is not None:
        body["session_id"] = session_id
    if secret is not None:
        body["secret"] = secret
    return Call("POST", "/lock/acquire", body, wait=timeout)


def release(resource: str, client_id: str, fencing_token: int | None, secret: str | None = None) -> Call:
    body: dict[str, Any] = {"resource": resource, "client_id": client_id}
    if fencing_token is not None:
        body["fencing_token"] = fencing_token
    if secret is not None:
        body["secret"] = secret
    return Call("POST", "/lock/release", body, retry_success="not_holder", retry_result={"released": True})


def renew(resource: str, client_id: str, ttl: float | None, secret: str | None = None) -> Call:
    body: dict[str, Any] = {"resource": resource, "client_id": client_id}
    if ttl is not None:
        body["ttl"] = ttl
    if secret is not None:
        body["secret"] = secret
    return Call("POST", "/lock/renew", body)


def lock_status(resource: str) -> Call:
    return Call("GET", "/lock/status/" + key_path(resource))


def lock_watch(resource: str, client_id: str, timeout: float) -> Call:
    return Call(
        "GET", "/lock/watch/" + key_path(resource), params={"client_id": client_id, "timeout": timeout}, wait=timeout
    )


# -- queue ---------------------------------------------------------------------


def push(topic: str, message: Any, message_id: str) -> Call:
    return Call(
        "POST",
        "/queue/push",
        {"topic": topic, "message": message, "message_id": message_id},
        parse=lambda body: body["message_id"],
    )


def pop(topic: str, consumer_id: str, visibility_timeout: float, wait: float, queue: Any = None) -> Call:
    """``queue``: the ``Queue``/``AsyncQueue`` popping, which the message is bound to (``m.ack()``)."""
    return Call(
        "GET",
        f"/queue/pop/{key_path(topic)}/{key_path(consumer_id)}",
        params={"visibility_timeout": visibility_timeout, "wait": wait},
        wait=wait,
        parse=lambda b: Message(b["topic"], b["message_id"], b["message"], b["delivery_count"], consumer_id).bind(
            queue
        ),
        absent=(204, None),
    )


def _message_call(op: str, topic: str, consumer_id: str, message_id: str, extra: dict[str, Any] | None = None) -> Call:
    body = {"topic": topic, "consumer_id": consumer_id, "message_id": message_id, **(extra or {})}
    return Call("POST", f"/queue/{op}", body, parse=lambda b: True, retry_success="not_in_flight", retry_result=True)


def ack(topic: str, consumer_id: str, message_id: str) -> Call:
    return _message_call("ack", topic, consumer_id, message_id)


def nack(topic: str, consumer_id: str, message_id: str) -> Call:
    return _message_call("nack", topic, consumer_id, message_id)


def extend(topic: str, consumer_id: str, message_id: str, visibility_timeout: float) -> Call:
    return _message_call("extend", topic, consumer_id, message_id, {"visibility_timeout": visibility_timeout})


def queue_stats(topic: str) -> Call:
    return Call("GET", "/queue/stats/" + key_path(topic))


def dead(topic: str, limit: int) -> Call:
    return Call(
        "GET",
        "/queue/dead/" + key_path(topic),
        params={"limit": limit},
        parse=lambda b: [Message(topic, m["message_id"], m["message"], m["delivery_count"]) for m in b["messages"]],
    )


def redrive(topic: str, limit: int) -> Call:
    return Call("POST", "/queue/redrive", {"topic": topic, "limit": limit}, parse=lambda b: b["redriven"])


# -- cache ---------------------------------------------------------------------


def cache_get(key: str) -> Call:
    return Call("GET", "/cache/get/" + key_path(key), absent=(404, "not_found"))


def cache_set(key: str, value: Any, ttl: float | None) -> Call:
    body: dict[str, Any] = {"key": key, "value": value}
    if ttl is not None:
        body["ttl"] = ttl
    return Call("POST", "/cache/set", body, parse=lambda b: b["version"])


def cache_delete(key: str) -> Call:
    return Call("POST", "/cache/delete", {"key": key}, parse=lambda b: b["deleted"])


def cache_stats() -> Call:
    return Call("GET", "/cache/stats")


def status() -> Call:
    return Call("GET", "/status")


# -- membership ---------------------------------------------------------------------


def members() -> Call:
    return Call("GET", "/cluster/members")


def add_member(node_id: str, url: str) -> Call:
    # A retry after a lost answer finds the node added already.
    return Call(
        "POST",
        "/cluster/members",
        {"id": node_id, "url": url},
        wait=5.0,
        retry_success="member_exists",
        retry_result={"id": node_id},
        signed=True,
    )


def promote(node_id: str) -> Call:
    return Call(
        "POST",
        f"/cluster/members/{key_path(node_id)}/promote",
        {},
        wait=5.0,
        retry_success="already_voter",
        retry_result={"id": node_id},
        signed=True,
    )


def remove_member(node_id: str) -> Call:
    return Call(
        "DELETE",
        f"/cluster/members/{key_path(node_id)}",
        wait=5.0,
        retry_success="unknown_member",
        retry_result={"id": node_id},
        signed=True,
    )


def transfer_leader(to: str | None) -> Call:
    return Call("POST", "/cluster/transfer-leader", {"to": to} if to else {}, wait=2.0, signed=True)
