"""The KV counters of one node for the dashboard's overview (``GET /cluster/overview``, ``NodeView.kv``).

Rules
-----
1.  This node reads its own store and watch hub; a peer's come from the
    gauges of its ``/metrics`` (``rakit_kv_*``), the same numbers Prometheus
    scrapes, so no new peer endpoint is needed.
2.  A ``/metrics`` without every gauge below (an older node, a cut answer)
    gives no counters (``None``), never a half-filled view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from rakit.node.runtime import NodeRuntime

METRICS_PATH = "/metrics"


class KvNodeView(msgspec.Struct, kw_only=True):
    """One node's KV map as it has applied it: ``revision`` (lags the leader's while it catches up), ``keys``,
    ``watchers`` (open watches on this node), ``history_events`` (changes kept for watches) and
    ``compact_revision`` (the oldest revision a watch may start from)."""

    revision: int
    keys: int
    watchers: int
    history_events: int
    compact_revision: int


#: gauge name -> field of KvNodeView.
GAUGES = {
    "rakit_kv_revision": "revision",
    "rakit_kv_keys": "keys",
    "rakit_kv_watchers": "watchers",
    "rakit_kv_history_events": "history_events",
    "rakit_kv_compact_revision": "compact_revision",
}


def local_kv(runtime: NodeRuntime) -> KvNodeView:
    store, hub = runtime.kv, runtime.kv_watch
    return KvNodeView(
        revision=store.revision,
        keys=len(store.records),
        watchers=hub.watchers,
        history_events=len(store.history),
        compact_revision=store.history.compact_revision,
    )


def kv_from_metrics(text: bytes) -> KvNodeView | None:
    """Rule 2: the ``rakit_kv_*`` gauges of a Prometheus text exposition, or None if one is missing or bad."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        if not line.startswith(b"rakit_kv_"):
            continue
        name, _, value = line.decode(errors="replace").partition(" ")
        field = GAUGES.get(name)
        if field is None:
            continue
        try:
            number = float(value.split()[0])  # a timestamp may follow the value
        except (ValueError, IndexError):
            return None
        if not number.is_integer():  # also nan and inf
            return None
        found[field] = int(number)
    if len(found) != len(GAUGES):
        return None
    return KvNodeView(**found)
