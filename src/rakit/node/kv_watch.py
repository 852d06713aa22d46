"""The KV watch hub: wakes this node's watchers when its KV changes.

Watchers read the store's own history (``KvStore.events_since``), so a
watcher on a follower sees exactly what its node applied, in revision order,
whoever leads; the hub only tells them to look again.  Each waiter also
looks again at least every ``LOOK_AGAIN`` seconds (a snapshot installed from
the leader changes the store without an applied entry).
"""

from __future__ import annotations

import asyncio
from typing import Any

from rakit.raft.messages import Entry
from rakit.statemachines.kv import KvStore

LOOK_AGAIN = 2.0


class KvWatchHub:
    def __init__(self, store: KvStore) -> None:
        self.store = store
        self._seen = store.revision
        self._changed = asyncio.Event()
        self.watchers = 0  # open watches on this node (streams and long polls)
        self.events_sent = 0

    def on_applied(self, entry: Entry, result: Any) -> None:
        if self.store.revision != self._seen:
            self._seen = self.store.revision
            self.wake()

    def wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def signal(self) -> asyncio.Event:
        """Take it before reading the store, then wait on it: a change in between is not missed."""
        return self._changed

    async def wait(self, signal: asyncio.Event, timeout: float) -> None:
        """Until ``signal`` is set or ``min(timeout, LOOK_AGAIN)`` seconds pass."""
        try:
            await asyncio.wait_for(signal.wait(), max(0.0, min(timeout, LOOK_AGAIN)))
        except TimeoutError:
            pass
