"""The dashboard's per-node KV counters (``rakit.http.routes.ui_kv``): read from a peer's ``/metrics``."""

from __future__ import annotations

from types import SimpleNamespace

import msgspec

from rakit.http.routes.ui_kv import GAUGES, KvNodeView, kv_from_metrics, local_kv
from rakit.metrics import NodeMetrics
from rakit.node.kv_watch import KvWatchHub
from rakit.statemachines.kv import KvDelete, KvPut, KvStore


def _store_with_changes() -> KvStore:
    store = KvStore()
    store.apply(3, KvPut("a", b'{"x":1}'))
    store.apply(4, KvPut("b", b"2"))
    store.apply(5, KvPut("a", b"3"))
    store.apply(6, KvDelete("b"))
    return store


def test_the_counters_read_from_metrics_are_the_ones_the_node_has() -> None:
    store = _store_with_changes()
    hub = KvWatchHub(store)
    hub.watchers = 2
    metrics = NodeMetrics("n1")
    metrics.watch_kv(store, hub)

    parsed = kv_from_metrics(metrics.render())
    local = local_kv(SimpleNamespace(kv=store, kv_watch=hub))  # type: ignore[arg-type]

    assert parsed == local
    assert local == KvNodeView(
        revision=6, keys=1, watchers=2, history_events=4, compact_revision=store.history.compact_revision
    )


def _exposition(**values: str) -> bytes:
    lines = ["# HELP rakit_kv_revision The KV map's revision.", "# TYPE rakit_kv_revision gauge"]
    lines += [f"{name} {values.get(name, '7.0')}" for name in GAUGES]
    lines += ["rakit_kv_watch_events_sent_total 12.0", "rakit_kv_revisionx 99.0", "process_cpu 1.5"]
    return ("\n".join(lines) + "\n").encode()


def test_other_lines_and_a_timestamp_are_ignored() -> None:
    view = kv_from_metrics(_exposition(rakit_kv_revision="41.0 1700000000000", rakit_kv_keys="3"))
    assert view is not None
    assert msgspec.structs.asdict(view) == {
        "revision": 41,
        "keys": 3,
        "watchers": 7,
        "history_events": 7,
        "compact_revision": 7,
    }


def test_a_missing_or_bad_gauge_gives_no_counters() -> None:
    whole = _exposition()
    assert kv_from_metrics(whole) is not None
    for name in GAUGES:
        without = b"\n".join(line for line in whole.splitlines() if not line.startswith(name.encode() + b" "))
        assert kv_from_metrics(without) is None, name
    for bad in ("nan", "+Inf", "1.5", "x", ""):
        assert kv_from_metrics(_exposition(rakit_kv_watchers=bad)) is None, bad
    assert kv_from_metrics(b"") is None
    assert kv_from_metrics(b"\xff\xfe garbage\nrakit_kv_revision \xff\n") is None
