"""The Python client of rakit: ``Client`` (blocking) and ``AsyncClient`` (asyncio).

No gRPC, no protobuf: JSON over HTTP to any node, with failover and retries.
See ``rakit.client.sync`` and ``rakit.client.aio`` for examples.
"""

from rakit.client.aio import AsyncCache, AsyncClient, AsyncLock, AsyncQueue
from rakit.client.calls import Message
from rakit.client.errors import (
    ConnectionFailed,
    Deadlock,
    Forbidden,
    InvalidRequest,
    LockConflict,
    LockLost,
    LockTimeout,
    NoLeader,
    NotFound,
    NotHolder,
    NotInFlight,
    QuotaExceeded,
    RakitError,
    RateLimited,
    ServerError,
    TokenMismatch,
    TooLarge,
    TooManyWaiters,
    Unauthorized,
    Unavailable,
)
from rakit.client.sync import Cache, Client, Lock, Queue

__all__ = [
    "AsyncCache",
    "AsyncClient",
    "AsyncLock",
    "AsyncQueue",
    "Cache",
    "Client",
    "ConnectionFailed",
    "Deadlock",
    "Forbidden",
    "InvalidRequest",
    "Lock",
    "LockConflict",
    "LockLost",
    "LockTimeout",
    "Message",
    "NoLeader",
    "NotFound",
    "NotHolder",
    "NotInFlight",
    "Queue",
    "RakitError",
    "ServerError",
    "TokenMismatch",
    "TooLarge",
    "QuotaExceeded",
    "RateLimited",
    "TooManyWaiters",
    "Unauthorized",
    "Unavailable",
]
