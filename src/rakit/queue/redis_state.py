"""Whether this node's Redis serves the queue, as its last calls found (``/health``, ``/status``).

Rules:

1. **Unknown, then observed.**  ``available`` is None until the first call
   (the start-up PING, ``QueueService.probe_redis``) ends; after that it is
   what the latest calls found.  Every store call reports its outcome
   (``RedisQueueStore._call``): a refusal or no answer (``rakit.queue.
   redis_errors`` rules 1-2) makes the queue unavailable, a success makes it
   available again.  Rule 3 errors (Redis answered one request oddly) change
   nothing.
2. **Write refusals hold against reads.**  A replica (``READONLY``), a Redis
   that cannot persist (``MISCONF``), one out of memory (``OOM``) or short
   of replicas (``NOREPLICAS``) still answers reads: the monitor's reads
   every 0.2 s must not flip the state back and forth.  Such a refusal is
   cleared by a successful write, or by a successful read once
   ``write_hold`` seconds passed without another write refusal (an idle
   queue then stops reporting an outage it no longer sees).
3. **One warning per outage.**  Becoming unavailable logs one warning
   naming what Redis said and what to do; while unavailable nothing more is
   logged.  Becoming available again logs one warning too.  An outage for
   the same reason as one warned within ``quiet`` seconds (a flapping
   Redis) is logged at info level, and so is its end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from rakit.queue.redis_errors import RedisFailure

log = logging.getLogger(__name__)


class RedisState:
    def __init__(
        self,
        *,
        write_hold: float = 30.0,
        quiet: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.write_hold = write_hold
        self.quiet = quiet
        self._clock = clock
        self._wall = wall
        self.available: bool | None = None
        self.failure: RedisFailure | None = None
        self.since: float | None = None  # wall-clock time of the last change of ``available``
        self._failed_at = 0.0  # clock time of the latest failure
        self._warned: dict[str, float] = {}  # reason -> clock time it was last warned
        self._outage_level = logging.WARNING

    @property
    def detail(self) -> str | None:
        return self.failure.detail if self.failure is not None else None

    def view(self, *, detail: bool = True) -> dict[str, Any]:
        """``{"available", "detail", "since"}`` (``detail=False``: ``{"available"}`` only)."""
        if not detail:
            return {"available": self.available}
        return {"available": self.available, "detail": self.detail, "since": self.since}

    def served(self, write: bool) -> None:
        """A call succeeded (``write``: one that changes data)."""
        if self.available:
            return
        f = self.failure
        if f is not None and f.writes_only and not write and self._clock() - self._failed_at < self.write_hold:
            return  # rule 2
        was_known = self.available is not None
        self.available, self.failure, self.since = True, None, self._wall()
        if was_known:
            log.log(self._outage_level, "queue: Redis serves this node again")

    def failed(self, failure: RedisFailure) -> None:
        """A call failed for a reason that concerns Redis as a whole (rules 1-2 of redis_errors)."""
        if failure.kind == "unexpected":
            return
        now = self._clock()
        self._failed_at = now
        if self.available is False:
            self.failure = failure  # the latest reason
            return
        self.available, self.failure, self.since = False, failure, self._wall()
        reason = failure.code or failure.kind
        warned = self._warned.get(reason)
        self._outage_level = logging.INFO if warned is not None and now - warned < self.quiet else logging.WARNING
        if self._outage_level == logging.WARNING:
            self._warned[reason] = now
        hint = f" ({failure.hint})" if failure.hint else ""
        log.log(
            self._outage_level,
            "queue: unavailable: %s%s; queue calls answer 503 until Redis serves this node again",
            failure.detail,
            hint,
        )
