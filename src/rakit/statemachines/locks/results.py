"""What applying a lock command returns (rule 10 of ``rakit.statemachines.locks.table``).

Results, never exceptions: a committed entry must not crash a replica.
"""

from __future__ import annotations

import msgspec

# --- results ------------------------------------------------------------------


class Grant(msgspec.Struct, frozen=True):
    resource: str
    client_id: str
    mode: str
    token: int
    ttl: float
    lease: int
    session_id: str | None = None  # rule 18: no lease of its own to time


class EndedHold(msgspec.Struct, frozen=True):
    resource: str
    client_id: str
    mode: str
    token: int
    lease: int
    reason: str  # "released" | "expired"


class Granted(msgspec.Struct, frozen=True):
    resource: str
    client_id: str
    mode: str
    token: int
    ttl: float
    lease: int
    again: bool = False
    upgraded: bool = False
    session_id: str | None = None  # rule 18: no lease of its own to time


class Waiting(msgspec.Struct, frozen=True):
    resource: str
    client_id: str
    mode: str
    position: int  # waiters ahead of this one


class Refused(msgspec.Struct, frozen=True):
    code: str  # "conflict" | "deadlock" | "invalid" | "too_many_waiters"
    cycle: list[str] = msgspec.field(default_factory=list)
    detail: str = ""


class Released(msgspec.Struct, frozen=True):
    resource: str
    client_id: str
    token: int
    grants: list[Grant]
    removed_holds: list[EndedHold]


class Expired(msgspec.Struct, frozen=True):
    resource: str
    client_id: str
    token: int
    delay_since: int | None  # set while the resource is in delay: time its DelayEnd
    grants: list[Grant]
    removed_holds: list[EndedHold]


class NotHolder(msgspec.Struct, frozen=True):
    resource: str
    client_id: str


class TokenMismatch(msgspec.Struct, frozen=True):
    resource: str
    client_id: str
    given: int
    current: int


class Renewed(msgspec.Struct, frozen=True):
    resource: str
    client_id: str
    token: int
    ttl: float
    lease: int


class Stale(msgspec.Struct, frozen=True):
    """An Expire or DelayEnd overtaken by events: nothing changed."""

    resource: str
    client_id: str | None = None


class Cancelled(msgspec.Struct, frozen=True):
    resource: str
    client_id: str
    was_waiting: bool
    # The client's hold on the resource after the command, if any (for an upgrade
    # waiter: its shared hold).  A request that was not waiting but is holding was
    # granted meanwhile: the service can still answer "granted".
    holding: bool = False
    token: int | None = None
    mode: str | None = None
    grants: list[Grant] = msgspec.field(default_factory=list)


class SessionLocksEnded(msgspec.Struct, frozen=True):
    """Rule 18: a session's locks and waits, ended by the coordination machine's session end."""

    session_id: str
    removed_holds: list[EndedHold]
    cancelled: list[str]  # resources the session's client stopped waiting on
    grants: list[Grant]
    delayed: list[tuple[str, int, float]]  # (resource, delay_since, seconds): the DelayEnds to time


class DelayEnded(msgspec.Struct, frozen=True):
    resource: str
    grants: list[Grant]


class OptionsSet(msgspec.Struct, frozen=True):
    resource: str
    lock_delay: float


Result = (
    Granted
    | Waiting
    | Refused
    | Released
    | Expired
    | NotHolder
    | TokenMismatch
    | Renewed
    | Stale
    | Cancelled
    | DelayEnded
    | OptionsSet
)
RESULT_TYPES = frozenset(
    (
        Granted,
        Waiting,
        Refused,
        Released,
        Expired,
        NotHolder,
        TokenMismatch,
        Renewed,
        Stale,
        Cancelled,
        DelayEnded,
        OptionsSet,
        SessionLocksEnded,
    )
)
