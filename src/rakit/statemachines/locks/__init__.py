"""The lock table: shared/exclusive locks as a deterministic Raft state machine.

A package along its numbered rules (stated at the top of ``table``):
``commands`` (what an entry carries, rule 1), ``results`` (rule 10),
``records`` (a resource's holds with leases and fencing tokens, its FIFO
waiters; the snapshot's format), ``deadlock`` (rule 8), ``views`` (rule 11)
and ``table`` (the machine, every other rule).
"""

from __future__ import annotations

from rakit.statemachines.locks.commands import (
    EXCLUSIVE,
    MODES,
    SHARED,
    Acquire,
    CancelWait,
    Command,
    DelayEnd,
    Expire,
    Release,
    Renew,
    SetOptions,
    compatible,
)
from rakit.statemachines.locks.results import (
    RESULT_TYPES,
    Cancelled,
    DelayEnded,
    EndedHold,
    Expired,
    Grant,
    Granted,
    NotHolder,
    OptionsSet,
    Refused,
    Released,
    Renewed,
    Result,
    SessionLocksEnded,
    Stale,
    TokenMismatch,
    Waiting,
)
from rakit.statemachines.locks.table import MAX_FREE_RECORDS, MAX_WAITERS, LockTable

__all__ = [
    "Acquire",
    "CancelWait",
    "Cancelled",
    "Command",
    "DelayEnd",
    "DelayEnded",
    "EXCLUSIVE",
    "EndedHold",
    "Expire",
    "Expired",
    "Grant",
    "Granted",
    "LockTable",
    "MAX_FREE_RECORDS",
    "MAX_WAITERS",
    "MODES",
    "NotHolder",
    "OptionsSet",
    "RESULT_TYPES",
    "Refused",
    "Release",
    "Released",
    "Renew",
    "Renewed",
    "Result",
    "SHARED",
    "SessionLocksEnded",
    "SetOptions",
    "Stale",
    "TokenMismatch",
    "Waiting",
    "compatible",
]
