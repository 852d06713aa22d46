"""rakit: a distributed synchronization service (Raft locks, Redis queue, coherent cache).

>>> import rakit
>>> client = rakit.Client()            # $RAKIT_NODES, else the local cluster of `rakit up`
>>> with client.lock("orders", ttl=10) as lease: ...
"""

from rakit.client import (
    AsyncClient,
    Client,
    ConnectionFailed,
    Deadlock,
    Forbidden,
    InvalidRequest,
    LockConflict,
    LockLost,
    LockTimeout,
    Message,
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

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "Client",
    "ConnectionFailed",
    "Deadlock",
    "Forbidden",
    "InvalidRequest",
    "LockConflict",
    "LockLost",
    "LockTimeout",
    "Message",
    "NoLeader",
    "NotFound",
    "NotHolder",
    "NotInFlight",
    "RakitError",
    "ServerError",
    "TokenMismatch",
    "TooLarge",
    "QuotaExceeded",
    "RateLimited",
    "TooManyWaiters",
    "Unauthorized",
    "Unavailable",
    "__version__",
]
