"""The lock table's commands (what a Raft entry carries) and its two modes.

Rule 1 of ``rakit.statemachines.locks.table``: exclusive excludes everyone;
shared is compatible with shared.  Commands are frozen msgspec Structs with
a tag, so they travel in the log as they are.
"""

from __future__ import annotations

import msgspec

EXCLUSIVE = "exclusive"
SHARED = "shared"
MODES = (EXCLUSIVE, SHARED)


def compatible(a: str, b: str) -> bool:
    """Rule 1."""
    return a == SHARED and b == SHARED


# --- commands -----------------------------------------------------------------


class Acquire(msgspec.Struct, tag="lock.acquire", frozen=True):
    resource: str
    client_id: str
    mode: str  # "exclusive" | "shared"
    ttl: float  # lease length, seconds
    wait: float  # how long the request may wait, seconds; 0 = do not wait
    lock_delay: float | None = None  # when given, sets the resource's option
    owner: str | None = None  # rule 13: the API token's name (None: tokens are off)
    secret: str | None = None  # rule 15
    max_locks: int | None = None  # rule 16: the owner's quota of holds and waits
    session_id: str | None = None  # rule 18: the hold lives as long as that session


class Release(msgspec.Struct, tag="lock.release", frozen=True):
    resource: str
    client_id: str
    fencing_token: int | None = None
    owner: str | None = None  # rule 13: must be the hold's owner
    secret: str | None = None  # rule 15: must be the hold's secret, if it has one


class Renew(msgspec.Struct, tag="lock.renew", frozen=True):
    resource: str
    client_id: str
    ttl: float
    owner: str | None = None  # rule 13: must be the hold's owner
    secret: str | None = None  # rule 15: must be the hold's secret, if it has one


class Expire(msgspec.Struct, tag="lock.expire", frozen=True):
    resource: str
    client_id: str
    lease: int  # the hold's lease stamp the leader timed


class CancelWait(msgspec.Struct, tag="lock.cancel_wait", frozen=True):
    resource: str
    client_id: str
    owner: str | None = None
    any_owner: bool = True  # rule 13: False = only a waiter (and hold) of ``owner``


class DelayEnd(msgspec.Struct, tag="lock.delay_end", frozen=True):
    resource: str
    since: int | None = None  # the delay_since it ends; None = whichever delay is on


class SetOptions(msgspec.Struct, tag="lock.options", frozen=True):
    resource: str
    lock_delay: float


Command = Acquire | Release | Renew | Expire | CancelWait | DelayEnd | SetOptions
