"""What Redis said, as rakit's errors: every Redis failure is a ``503 unavailable`` naming its reason.

Rules:

1. **Refusals.**  Redis answered with an error reply whose code (its first
   word) is in ``REFUSALS``: it refuses this node, whatever the command.
   ``DENIED`` (protected mode), ``NOAUTH`` / ``WRONGPASS`` / ``NOPERM``
   (password, ACL), ``LOADING`` (reading its data at start), ``READONLY`` (a
   replica), ``MISCONF`` (cannot persist, so refuses writes), ``OOM``,
   ``NOREPLICAS``, ``BUSY`` (a script runs too long), ``MASTERDOWN`` /
   ``CLUSTERDOWN`` / ``TRYAGAIN``.  Detail: ``"Redis refused the node:
   <what Redis said>"``.
2. **Unreachable.**  No reply at all: connection refused or reset, a
   timeout, a reply that is not Redis's protocol, a Redis Cluster without a
   serving primary.  Detail: ``"Redis unavailable during <op>: <exception
   type>: <message>"``.
3. **Anything else Redis answers** (``WRONGTYPE``, an ``ERR`` from a script,
   an unknown command on a proxy...; or redis-py's ``DataError``, arguments
   it refuses to send) is no internal error of rakit either: still ``503
   unavailable``, detail ``"Redis could not serve <op>: <what Redis
   said>"``, so the caller sees the reason instead of a bare 500.  It
   says nothing about Redis as a whole (the next call may well succeed), so
   it does not mark the queue unavailable (``rakit.queue.redis_state``); it
   is logged at error level, once per reply code.
4. **What Redis said** is the reply code and the first line of its message,
   at most ``MAX_SAID`` characters (protected mode's explanation is a whole
   paragraph).  It never holds the Redis URL, so never its password.

redis-py strips known codes from the message (``NOAUTH Authentication
required.`` arrives as ``AuthenticationError("Authentication required.")``
with ``status_code="NOAUTH"``); ``reply_code`` puts it back, from the
exception class when the client gives no ``status_code``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Final, Literal

from redis import exceptions as rex

from rakit.errors import Unavailable

log = logging.getLogger(__name__)

MAX_SAID: Final = 200

#: Reply codes meaning "Redis refuses this node" (rule 1), each with a hint for the operator's log.
REFUSALS: Final = {
    "DENIED": "Redis is in protected mode: give it a password (and put it in --redis-url) or bind it "
    "to the nodes' network only and turn protected mode off",
    "NOAUTH": "Redis wants a password: put it in --redis-url (redis://:PASSWORD@host:port/0)",
    "WRONGPASS": "the user or password in --redis-url is wrong",
    "NOPERM": "the Redis user of --redis-url lacks a permission the queue needs (EVALSHA, keys *)",
    "LOADING": "Redis is loading its data; it serves again when done",
    "READONLY": "--redis-url names a read-only replica: point it at the primary",
    "MISCONF": "Redis cannot persist its data and refuses writes: see its log",
    "OOM": "Redis reached maxmemory and refuses writes",
    "NOREPLICAS": "Redis has too few replicas (min-replicas-to-write) and refuses writes",
    "BUSY": "a script keeps Redis busy",
    "MASTERDOWN": "the Redis replica lost its primary",
    "CLUSTERDOWN": "the Redis Cluster is down",
    "TRYAGAIN": "the Redis Cluster is moving slots",
}
#: Refusals of writes only: reads still work meanwhile (``rakit.queue.redis_state``).
WRITE_REFUSALS: Final = frozenset({"READONLY", "MISCONF", "OOM", "NOREPLICAS"})

# The codes of redis-py's exception classes, for clients that do not keep ``status_code``.
_CLASS_CODES: Final[tuple[tuple[type[Exception], str], ...]] = (
    (rex.BusyLoadingError, "LOADING"),
    (rex.ReadOnlyError, "READONLY"),
    (rex.NoPermissionError, "NOPERM"),
    (rex.OutOfMemoryError, "OOM"),
    (rex.MasterDownError, "MASTERDOWN"),
    (rex.ClusterDownError, "CLUSTERDOWN"),
    (rex.TryAgainError, "TRYAGAIN"),
    (rex.AuthenticationWrongNumberOfArgsError, "NOAUTH"),
    (rex.AuthenticationError, "NOAUTH"),
)
_CODE = re.compile(r"[A-Z][A-Z0-9_]{1,31}", re.ASCII)

Kind = Literal["refused", "unreachable", "unexpected"]


@dataclass(frozen=True, slots=True)
class RedisFailure:
    """One failed Redis call, classified (module rules 1-3)."""

    kind: Kind
    detail: str  # the 503's detail
    code: str | None = None  # the reply code, when Redis answered
    said: str = ""  # what Redis said (rule 4), or the client's message when it did not answer
    hint: str = ""  # what the operator may do about a refusal (for the log)

    @property
    def writes_only(self) -> bool:
        """Redis refuses writes only; reads still work."""
        return self.code in WRITE_REFUSALS

    def error(self) -> Unavailable:
        return Unavailable(self.detail)


def _bounded(text: str) -> str:
    lines = text.strip().splitlines()
    first = lines[0].strip() if lines else ""
    return first if len(first) <= MAX_SAID else first[: MAX_SAID - 1].rstrip() + "…"


def _class_code(exc: BaseException) -> str | None:
    for cls, known in _CLASS_CODES:
        if isinstance(exc, cls):
            return known
    return None


def reply_code(exc: BaseException) -> str | None:
    """The code of the error reply behind ``exc`` (``"NOAUTH"``), None when Redis did not answer."""
    code = getattr(exc, "status_code", None)
    if isinstance(code, str) and _CODE.fullmatch(code):
        return code
    if (known := _class_code(exc)) is not None:
        return known
    if isinstance(exc, rex.ResponseError):
        first = str(exc).split(" ", 1)[0]
        return first if _CODE.fullmatch(first) else None
    return None


def redis_said(exc: BaseException) -> str:
    """The reply code and the first line of what Redis said, bounded (rule 4)."""
    text = str(exc).strip()
    code = reply_code(exc)
    if code is not None and text.split(" ", 1)[0] != code:
        text = f"{code} {text}"
    return _bounded(text)


def classify(what: str, exc: BaseException) -> RedisFailure:
    """The failure of Redis call ``what`` (``"push"``...) that raised ``exc``."""
    code = reply_code(exc)
    refusal = code if code in REFUSALS else _class_code(exc)  # "ERR invalid password" is an auth refusal too
    if refusal is not None:
        said = redis_said(exc)
        return RedisFailure("refused", f"Redis refused the node: {said}", code, said, REFUSALS[refusal])
    if isinstance(exc, rex.ResponseError):
        said = redis_said(exc)
        return RedisFailure("unexpected", f"Redis could not serve {what}: {said}", code, said)
    if isinstance(exc, rex.DataError):  # the client refused our arguments: nothing about Redis
        said = _bounded(str(exc))
        return RedisFailure("unexpected", f"Redis could not serve {what}: DataError: {said}", None, said)
    message = _bounded(str(exc)) or "no reply"
    return RedisFailure(
        "unreachable", f"Redis unavailable during {what}: {type(exc).__name__}: {message}", code, message
    )


def timed_out(what: str, seconds: float | None) -> RedisFailure:
    """Our own bound on a call passed (the store's ``op_timeout``)."""
    message = f"Redis did not answer {what} within {seconds or 0:g} s"
    return RedisFailure("unreachable", message, None, message)


_logged_unexpected: set[str] = set()


def log_unexpected(failure: RedisFailure) -> None:
    """Rule 3's error log, once per reply code per process (at most 64 codes, then silence)."""
    key = failure.code or "?"
    if key in _logged_unexpected or len(_logged_unexpected) >= 64:
        log.debug("queue: %s", failure.detail)
        return
    _logged_unexpected.add(key)
    log.error(
        "queue: unexpected Redis error (answered 503 unavailable; further %s errors are logged at debug level): %s",
        key,
        failure.detail,
    )
