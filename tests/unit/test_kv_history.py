"""The KV's change history (statemachines/kv/history.py): one test per rule of its docstring."""

from __future__ import annotations

from rakit.statemachines.kv.commands import KvEvent
from rakit.statemachines.kv.history import EVENT_OVERHEAD, History, event_size


def put(revision: int, key: str = "k", at: float = 0.0, value: bytes = b"1") -> KvEvent:
    return KvEvent(revision, "put", key, value, revision, 1, at)


def delete(revision: int, key: str = "k", at: float = 0.0) -> KvEvent:
    return KvEvent(revision, "delete", key, None, 1, 0, at)


def kept(history: History) -> list[int]:
    """The revisions of the kept events, one per event."""
    events = history.since(history.compact_revision)
    assert events is not None
    assert len(events) == len(history)
    return [e.revision for e in events]


def test_rule_1_events_are_kept_in_revision_order_several_sharing_one() -> None:
    history = History()
    history.append([put(1, "a")])
    history.append([put(3, "b"), delete(3, "a"), put(3, "c")])
    history.append([])  # a command that changed nothing appends nothing
    history.append([put(7, "d")])
    assert history.since(1) == [put(1, "a"), put(3, "b"), delete(3, "a"), put(3, "c"), put(7, "d")]
    assert history.since(2) == history.since(3) == [put(3, "b"), delete(3, "a"), put(3, "c"), put(7, "d")]
    assert history.since(4) == [put(7, "d")] and history.since(8) == []
    assert history.last_revision == 7 and len(history) == 5
    assert history.since(1, match=lambda k: k in ("a", "d")) == [put(1, "a"), delete(3, "a"), put(7, "d")]


def test_rule_2_whole_revisions_are_trimmed_never_part_of_one() -> None:
    history = History(min_events=0, min_age=0.0, max_events=4)
    history.append([put(1, "a"), put(1, "b"), put(1, "c")])
    history.append([put(2, "d"), put(2, "e")])  # 5 events > 4: all of revision 1 goes
    assert kept(history) == [2, 2] and history.compact_revision == 2
    history.append([put(3, "f")])
    assert kept(history) == [2, 2, 3]
    history.append([put(4, "g"), put(4, "h")])  # 5 > 4: revision 2 goes whole
    assert kept(history) == [3, 4, 4] and history.trimmed_upto == 2


def test_rule_3_the_last_min_events_are_kept_however_old() -> None:
    history = History(min_events=3, min_age=10.0, max_events=100)
    for revision in range(1, 6):
        history.append([put(revision, at=float(revision))])
    assert kept(history) == [1, 2, 3, 4, 5]  # all younger than 10 s (by the newest, at 5)
    history.append([put(6, at=1000.0)])  # now everything before is old: the count keeps more
    assert kept(history) == [4, 5, 6] and history.compact_revision == 4


def test_rule_3_events_younger_than_min_age_are_kept_beyond_min_events() -> None:
    history = History(min_events=2, min_age=10.0, max_events=100)
    for revision in range(1, 9):
        history.append([put(revision, at=100.0 + revision)])
    assert kept(history) == list(range(1, 9))  # the age keeps more than 2
    history.append([put(9, at=113.5)])  # now - min_age = 103.5: 1, 2, 3 are older
    assert kept(history) == list(range(4, 10))
    history.append([put(10, at=10_000.0)])  # all old: back to the last 2
    assert kept(history) == [9, 10]


def test_rule_3_whole_revisions_keep_at_least_min_events() -> None:
    """Rule 2 with rule 3: a revision whose events are partly among the last min_events stays whole."""
    history = History(min_events=3, min_age=10.0, max_events=100)
    history.append([put(1, "a", at=0.0)])
    history.append([put(2, "b", at=0.0), put(2, "c", at=0.0), put(2, "d", at=0.0)])
    history.append([put(3, "e", at=1000.0)])
    # The last 3 events are two of revision 2 and revision 3's: revision 2 is kept whole.
    assert kept(history) == [2, 2, 2, 3]
    history.append([put(4, "f", at=1000.0), put(4, "g", at=1000.0)])
    assert kept(history) == [3, 4, 4]


def test_rule_3_the_event_cap_trims_young_events() -> None:
    history = History(min_events=10, min_age=1e9, max_events=5)
    for revision in range(1, 9):
        history.append([put(revision, at=float(revision))])
    assert kept(history) == [4, 5, 6, 7, 8] and history.compact_revision == 4


def test_rule_3_the_byte_cap_counts_keys_and_values() -> None:
    one = event_size(put(1, "key", value=b"x" * 100))
    assert one == EVENT_OVERHEAD + 3 + 100 and event_size(delete(1, "key")) == EVENT_OVERHEAD + 3
    history = History(min_events=100, min_age=1e9, max_events=100, max_bytes=3 * one)
    for revision in range(1, 6):
        history.append([put(revision, "key", at=float(revision), value=b"x" * 100)])
        assert history.size_bytes <= 3 * one
    assert kept(history) == [3, 4, 5] and history.size_bytes == 3 * one
    history.append([put(6, "key", value=b"x" * (3 * one))])  # one revision over the cap alone
    assert len(history) == 0 and history.size_bytes == 0 and history.compact_revision == 7
    assert history.since(7) == [] and history.since(6) is None


def test_rule_3_long_runs_stay_bounded_and_ordered() -> None:
    history = History(min_events=5, min_age=0.0, max_events=10)
    for revision in range(1, 20_001):
        history.append([put(revision, at=float(revision))])
    assert kept(history) == list(range(19_996, 20_001))
    assert len(history._events) < 10_000  # the trimmed prefix is dropped in bulk


def test_rule_4_since_is_none_below_compact_revision() -> None:
    history = History()
    assert history.compact_revision == 1 and history.since(1) == [] and history.since(0) == []  # nothing trimmed yet
    history = History(min_events=2, min_age=0.0)
    for revision in (2, 4, 6, 8):
        history.append([put(revision, at=float(revision))])
    assert history.trimmed_upto == 4 and history.compact_revision == 5
    assert history.since(4) is None and history.since(1) is None
    assert history.since(5) == history.since(6) == [put(6, at=6.0), put(8, at=8.0)]
    assert history.since(9) == [] and history.last_revision == 8


def test_rule_4_limit_never_ends_inside_a_revision() -> None:
    history = History()
    history.append([put(1, "a")])
    history.append([put(2, "b"), put(2, "c"), put(2, "d")])
    history.append([put(3, "e")])
    since = history.since
    assert [e.revision for e in since(1, limit=1) or []] == [1]
    assert [e.revision for e in since(1, limit=2) or []] == [1, 2, 2, 2]
    assert [e.revision for e in since(1, limit=4) or []] == [1, 2, 2, 2]
    assert [e.revision for e in since(1, limit=5) or []] == [1, 2, 2, 2, 3]
    assert [e.revision for e in since(2, limit=1) or []] == [2, 2, 2]
    # With a match, the limit counts matching events and still ends on a whole revision.
    batch = since(1, match=lambda k: k in ("a", "c", "d", "e"), limit=2)
    assert [(e.revision, e.key) for e in batch or []] == [(1, "a"), (2, "c"), (2, "d")]
    assert since(1, limit=0) == []  # no room for any revision


def test_rule_5_snapshot_and_restore_round_trip() -> None:
    history = History(min_events=2, min_age=0.0)
    history.append([put(1, "a")])
    history.append([put(2, "b", value=b'"bb"'), delete(2, "a")])
    history.append([put(3, "c", at=5.0)])
    assert history.trimmed_upto == 1
    twin = History(min_events=2, min_age=0.0)
    twin.restore(history.snapshot())
    assert twin.snapshot() == history.snapshot()
    assert twin.since(2) == history.since(2) and twin.size_bytes == history.size_bytes
    assert twin.compact_revision == history.compact_revision and len(twin) == len(history)
    for h in (history, twin):
        h.append([put(4, "d", at=6.0)])
    assert twin.snapshot() == history.snapshot()
    twin.restore(b"")
    assert len(twin) == 0 and twin.compact_revision == 1 and twin.size_bytes == 0
    assert twin.snapshot() == History().snapshot()


def test_rule_4_scan_says_where_to_go_on_past_unmatched_events() -> None:
    history = History()
    assert history.scan(1) == ([], 1) and history.scan(0) == ([], 0)
    history.append([put(1, "a")])
    history.append([put(2, "b"), put(2, "c")])
    history.append([put(3, "b")])
    history.append([put(5, "a")])
    only_a = lambda k: k == "a"  # noqa: E731
    assert history.scan(1, only_a) == ([put(1, "a"), put(5, "a")], 6)
    assert history.scan(2, only_a, limit=1) == ([put(5, "a")], 6)  # past the unmatched 2 and 3
    assert history.scan(1, only_a, limit=1) == ([put(1, "a")], 2)  # stopped at 2: go on from there
    assert history.scan(1, lambda k: k == "c", limit=1) == ([put(2, "c")], 3)
    assert history.scan(2, limit=1) == ([put(2, "b"), put(2, "c")], 3)  # a whole revision
    assert history.scan(6) == ([], 6) and history.scan(9, only_a) == ([], 9)
    assert history.scan(1, limit=0) == ([], 1)
    following = 1
    seen: list[KvEvent] = []
    for _ in range(10):  # a watcher paging with limit 1 sees every event once, in order
        scanned = history.scan(following, limit=1)
        assert scanned is not None
        batch, following = scanned
        if not batch:
            break
        seen += batch
    assert seen == history.since(1) and following == 6
