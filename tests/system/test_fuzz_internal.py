"""Hostile bodies for every internal endpoint of a running 3-node cluster.

Hypothesis sends, to a random node at a time:

* ``POST /append_entries``, ``/request_vote``, ``/install_snapshot``: garbage
  bytes, mutated valid frames, and Raft messages built against the node's
  current ``/status`` -- stale, current and far-ahead terms, huge and
  negative numbers, indexes past the log, entries that do not follow
  ``prev_index``, entries of unknown commands, snapshots that do not restore
  or name other members, senders that are not members;
* ``POST /cache/internal/batch`` and ``/cache/invalidate``: garbage, hostile
  clocks and versions, keys outside the API's form, unknown senders;
* ``POST /queue/internal/{push,pop,ack,nack,extend}``: hostile JSON;
* every public JSON ``POST`` endpoint: valid bodies mutated into invalid UTF-8,
  deep nesting, huge numbers, truncation, ...; and hostile relay headers.

After every request: an answer below 500 (a ``503`` only with the API's
``no_leader`` / ``unavailable`` codes), the API's error shape on every
``4xx``, every node still running, and the node's commit index never past
what the cluster had logged.  At the end, once settled: a leader, equal
``/debug/digest`` on every replica at equal applied indexes, and a lock, a
kv write, a cache write and a queue round trip still work.

What Raft itself cannot tell from the truth -- a forged but well-formed
message (a fake leader's matching append, a fake granted vote) -- is left out:
only the cluster secret keeps those away, and the last test checks that,
with a secret, an unsigned hostile call gets ``401`` and nothing more.

The nodes run without a cluster secret here so that the bodies reach the
handlers.  About a minute in all.
"""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from httpcall import call, get, post, retry_until_ok
from rakit.cache.rules.messages import Batch as CacheBatch
from rakit.cache.rules.messages import Fence, Fetch, Invalidate
from rakit.cache.rules.messages import encode as cache_encode
from rakit.node.inbound import MAX_TERM_JUMP
from rakit.raft.messages import (
    ENTRY_NOOP,
    ENTRY_NORMAL,
    MAX_WIRE_INT,
    AppendEntries,
    AppendEntriesResp,
    Batch,
    Entry,
    Heartbeat,
    HeartbeatResp,
    InstallSnapshot,
    RequestVote,
    RequestVoteResp,
    Snapshot,
    SnapshotMeta,
    TimeoutNow,
    encode_batch,
)
from rakit.statemachines.kv import KvPut, KvStore
from rakit.statemachines.locks import Acquire, LockTable
from rakit.statemachines.registry import Registry

pytestmark = pytest.mark.integration

MSGPACK = {"Content-Type": "application/msgpack"}
RAFT_PATHS = ["/append_entries", "/request_vote", "/install_snapshot"]
BAD_UTF8_COMMAND = b"\x82\xa4type\xa6kv.put\xa3key\xa1\xff"


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
    )


class Target:
    """The cluster under fuzz, and the checks made after every request."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self.ids = sorted(cluster.nodes)
        self.urls = {i: n.url for i, n in cluster.nodes.items()}
        self.requests = 0
        self.statuses: dict[int, int] = {}
        self.unavailable: list[str] = []  # the 503 answers (no leader during an election, ...)

    def status(self, node: str) -> dict[str, Any]:
        code, body = get(self.urls[node] + "/status", timeout=5)
        assert code == 200, (node, code, body)
        return body  # type: ignore[no-any-return]

    def max_last_index(self) -> int:
        return max(self.status(i)["last_log_index"] for i in self.ids)

    def send(self, node: str, path: str, raw: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        code, body = call("POST", self.urls[node] + path, raw=raw, timeout=30, headers=headers)
        self.requests += 1
        self.statuses[code] = self.statuses.get(code, 0) + 1
        if code == 503:
            self.unavailable.append(f"{path}: {body}")
        self.check_answer(node, path, raw, code, body)
        return code, body

    def check_answer(self, node: str, path: str, raw: bytes, code: int, body: Any) -> None:
        where = f"POST {path} on {node} with {raw[:300]!r}"
        assert code != 0, f"{where}: no answer (crashed? {self.dead()})"
        assert code < 500 or (
            code == 503 and isinstance(body, dict) and body.get("error") in ("no_leader", "not_leader", "unavailable")
        ), f"{where}: {code} {body!r}"
        if code >= 400:
            assert (
                isinstance(body, dict) and isinstance(body.get("error"), str) and isinstance(body.get("detail"), str)
            ), f"{where}: {code} without the error shape: {body!r}"
        assert not self.dead(), f"{where}: nodes stopped: {self.dead()}"

    def dead(self) -> list[str]:
        return [i for i, n in self.cluster.nodes.items() if not n.alive]


# -- strategies ------------------------------------------------------------------------
#
# Hypothesis replays and shrinks by replaying choices, so what a strategy draws must not
# depend on the live cluster: only fixed ranges are drawn, and the node's state enters
# afterwards, in arithmetic (offsets from its term, commit and last index).

ANY = st.integers(0, 2**32)  # a choice, mapped into a state-dependent range with %


@st.composite
def mutated(draw: st.DrawFn, frame: bytes) -> bytes:
    data = bytearray(frame)
    for _ in range(draw(st.integers(1, 5))):
        at = draw(ANY) % max(1, len(data))
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        bit = draw(st.integers(0, 7))
        junk = draw(
            st.sampled_from(
                [b"\xff", b"\xc1", b"\xdd\xff\xff\xff\xff", b"\xcf" + b"\xff" * 8, b"\xa1\xff", b"\x91" * 64]
            )
        )
        if op == "flip" and data:
            data[at] ^= 1 << bit
        elif op == "insert":
            data[at:at] = junk
        elif op == "delete" and data:
            del data[at : at + 1 + bit % 4]
        else:
            del data[at:]
    return bytes(data)


def big() -> st.SearchStrategy[int]:
    return st.one_of(
        st.integers(0, 50),
        st.integers(0, 2**64 - 1),
        st.sampled_from([MAX_WIRE_INT, MAX_WIRE_INT + 1, 2**63 - 1, 2**63, 2**64 - 1]),
    )


@st.composite
def command_data(draw: st.DrawFn) -> bytes:
    return draw(
        st.one_of(
            st.binary(max_size=24),  # garbage: an unknown command
            st.just(msgspec.msgpack.encode({"type": "lock.nuke", "resource": "x"})),  # a newer node's command
            st.just(BAD_UTF8_COMMAND),
            st.just(Registry([KvStore()]).encode(KvPut("fz.kv", b"1"))),
            st.just(Registry([LockTable()]).encode(Acquire("fz.r", "c", "exclusive", 30.0, 0.0))),
        )
    )


@st.composite
def entries_after(draw: st.DrawFn, prev_index: int, prev_term: int, term: int, *, wellformed: bool) -> list[Entry]:
    count = draw(st.integers(0 if wellformed else 1, 4))
    out, t = [], prev_term
    for i in range(count):
        step, index_shift = draw(st.integers(0, 2)), draw(st.integers(-3, 3))
        kind, data = draw(st.sampled_from([ENTRY_NORMAL, ENTRY_NOOP])), draw(command_data())
        if wellformed:
            t = min(max(t, term), t + step)
            out.append(Entry(t, prev_index + 1 + i, kind, data))
        else:  # anything: gaps, terms going down or past the message's
            out.append(Entry(max(0, term + 2 - 2 * step), max(0, prev_index + 1 + i + index_shift), kind, data))
    return out


KINDS = [
    "stale",
    "append_past_log",
    "append_below_commit",
    "append_no_such_term",
    "append_malformed",
    "heartbeat",
    "vote",
    "vote_refused",
    "append_resp",
    "heartbeat_resp",
    "snapshot",
    "timeout_now",
    "far_ahead",
]
MEMBERS = ["node1", "node2", "node3"]


@st.composite
def raft_messages(draw: st.DrawFn, me: str, src: str, s: dict[str, Any]) -> Any:
    """One message for ``me`` from ``src``, hostile but never a forgery Raft could not spot."""
    term, commit, last = s["term"], s["commit_index"], s["last_log_index"]
    kind = draw(st.sampled_from(KINDS))
    ahead = draw(st.integers(0, 3))  # the message's term: ours plus this
    t = term + ahead
    k1, k2, b1, b2, flag = draw(ANY), draw(ANY), draw(big()), draw(big()), draw(st.booleans())
    if kind == "stale":  # a message at a term below ours: answered as stale
        t = max(0, term - 1 - ahead)
        prev = min(b1, 2**64 - 10)  # entries after it still encode
        prev_term = min(t, prev)
        return [
            AppendEntries(
                term=t,
                src=src,
                dst=me,
                prev_index=prev,
                prev_term=prev_term,
                commit=b2,
                entries=draw(entries_after(prev, prev_term, t, wellformed=True)),
            ),
            Heartbeat(term=t, src=src, dst=me, commit=b2),
            RequestVoteResp(term=t, src=src, dst=me, granted=True),
            InstallSnapshot(
                term=t,
                src=src,
                dst=me,
                snapshot=Snapshot(SnapshotMeta(b1, t, MEMBERS), Registry([KvStore()]).snapshot()),
            ),
        ][k1 % 4]
    if kind == "append_below_commit" and commit > 0:  # acked with our commit index, nothing appended
        prev, prev_term = k1 % commit, k2 % (t + 1)
    elif kind in ("append_below_commit", "append_no_such_term"):  # no entry of ours has prev_term: rejected
        t = term + 1 + ahead
        prev, prev_term = commit + k1 % (last - commit + 1), term + 1 + k2 % (ahead + 1)
    elif kind == "append_past_log":  # prev_index past our log: rejected with a hint
        prev = last + 1 + (k1 % 100 if flag else k1 * 2**28 % (MAX_WIRE_INT - last - 10))
        prev_term = k2 % (t + 1)
    elif kind == "append_malformed":  # refused by the route whatever the term
        prev = k1 % (last + 3)
        return AppendEntries(
            term=t,
            src=src,
            dst=me,
            prev_index=prev,
            prev_term=k2 % (t + 4),
            commit=b1,
            entries=draw(entries_after(prev, 0, t, wellformed=False)),
        )
    else:
        prev = prev_term = -1
    if prev >= 0:
        return AppendEntries(
            term=t,
            src=src,
            dst=me,
            prev_index=prev,
            prev_term=prev_term,
            commit=b1,
            entries=draw(entries_after(prev, prev_term, t, wellformed=True)),
        )
    if kind == "heartbeat":  # commit capped by our own log
        return Heartbeat(term=t, src=src, dst=me, commit=b1, ctx=b2)
    if kind == "vote":
        t = k1 % (term + 4)
        return RequestVote(
            term=t, src=src, dst=me, last_index=b1, last_term=k2 % (t + 3), pre_vote=flag, transfer=draw(st.booleans())
        )
    if kind == "vote_refused":  # a granted real vote at our term would be a forgery: refused ones only
        return RequestVoteResp(term=t, src=src, dst=me, granted=False, pre_vote=flag)
    if kind == "append_resp":  # rejections, and acks past our log (ignored) or at most our commit
        ack = k1 % (commit + 1) if flag else last + 1 + k1 * 2**28 % (MAX_WIRE_INT - last - 10)
        return AppendEntriesResp(
            term=t, src=src, dst=me, success=draw(st.booleans()), index=ack, hint_index=b1, hint_term=b2
        )
    if kind == "heartbeat_resp":
        return HeartbeatResp(term=t, src=src, dst=me, ctx=b1)
    if kind == "snapshot":  # refused (data, members, term), or at most our commit (acked)
        voters = [MEMBERS, ["node1", "node2"], ["node1", "node2", "node3", "nodeX"], [], ["node1"] * 3][k1 % 5]
        data = [
            b"",
            b"garbage",
            Registry([LockTable(), KvStore()]).snapshot(),
            msgspec.msgpack.encode({"locks": b"\xc1", "kv": b""}),
        ][k2 % 4]
        # Restorable data and a valid configuration (another one included) make a well-formed snapshot,
        # which only the cluster secret can keep away (see the module docstring): sent at most at our
        # commit.  The others are refused whatever their index.
        valid_conf = voters not in ([], ["node1"] * 3)
        good = valid_conf and data == Registry([LockTable(), KvStore()]).snapshot()
        index = k2 % (commit + 1) if good else b1
        return InstallSnapshot(
            term=t, src=src, dst=me, snapshot=Snapshot(SnapshotMeta(index, t + (2 if flag else 0), voters), data)
        )
    if kind == "timeout_now":
        return TimeoutNow(term=term + ahead % 2, src=src, dst=me)
    # far_ahead: beyond what any honest peer can be ahead of us (refused)
    return RequestVote(
        term=term + MAX_TERM_JUMP + 1 + k1 % (MAX_WIRE_INT - term - MAX_TERM_JUMP),
        src=src,
        dst=me,
        last_index=b1,
        last_term=0,
        transfer=True,
    )


# -- the test ----------------------------------------------------------------------------


def test_internal_endpoints_survive_hostile_bodies(cluster_factory: Any) -> None:
    cluster = cluster_factory(3, cluster_secret=False)
    cluster.wait_for_leader(20)
    fuzz = Target(cluster)
    leader = cluster.leader()
    assert retry_until_ok("POST", fuzz.urls[leader] + "/kv/put", {"key": "fz.before", "value": 1})[0] == 200
    started = time.monotonic()

    # 1. Public JSON bodies, mutated; relay headers (before the Raft fuzz: the cluster is quiet).
    templates: dict[str, dict[str, Any]] = {
        "/kv/put": {"key": "fz.k", "value": {"a": [1, "b"]}},
        "/kv/incr": {"key": "fz.n", "delta": 2},
        "/kv/delete": {"key": "fz.k"},
        "/lock/acquire": {"resource": "fz.lock", "client_id": "fz", "timeout": 0, "ttl": 5},
        "/lock/release": {"resource": "fz.lock", "client_id": "fz"},
        "/lock/renew": {"resource": "fz.lock", "client_id": "fz", "ttl": 5},
        "/cache/set": {"key": "fz.c", "value": {"v": "x"}, "ttl": 60},
        "/cache/delete": {"key": "fz.c"},
        "/cache/invalidate": {"src": "node2", "key": "fz.c", "version": "1.node2"},
        "/queue/push": {"topic": "fz", "message": {"m": 1}},
        "/queue/ack": {"topic": "fz", "consumer_id": "c", "message_id": "m1"},
        "/queue/nack": {"topic": "fz", "consumer_id": "c", "message_id": "m1"},
        "/queue/extend": {"topic": "fz", "consumer_id": "c", "message_id": "m1", "visibility_timeout": 5},
        "/queue/redrive": {"topic": "fz", "limit": 3},
        "/queue/internal/push": {"topic": "fz", "message": 1, "message_id": "m1"},
        "/queue/internal/pop": {"topic": "fz", "consumer_id": "c", "visibility_timeout": 5, "wait": 0},
        "/queue/internal/ack": {"topic": "fz", "consumer_id": "c", "message_id": "m1"},
        "/queue/internal/nack": {"topic": "fz", "consumer_id": "c", "message_id": "m1"},
        "/queue/internal/extend": {"topic": "fz", "consumer_id": "c", "message_id": "m1", "visibility_timeout": 5},
    }

    @st.composite
    def hostile_json(draw: st.DrawFn, template: dict[str, Any]) -> bytes:
        body = dict(template)
        field = draw(st.sampled_from(sorted(body)))
        how = draw(
            st.sampled_from(
                [
                    "bad_utf8",
                    "nested",
                    "number",
                    "value",
                    "raw_tail",
                    "truncate",
                    "bom",
                    "duplicate",
                    "empty",
                    "not_object",
                ]
            )
        )
        if how == "value" and field in ("wait", "timeout"):  # no long waits: out of range or wrong type
            body[field] = draw(st.sampled_from([-1, 21, 301, "5", None, True, 1e308, [0]]))
            return json.dumps(body).encode()
        if how == "value":
            body[field] = draw(
                st.one_of(
                    st.none(),
                    st.booleans(),
                    st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=False),
                    st.text(max_size=200),
                    st.lists(st.integers(), max_size=3),
                    st.just("a" * 200_000),
                )
            )
            return json.dumps(body).encode()
        text = json.dumps(body).encode()
        if how == "bad_utf8":
            return (
                json.dumps({**body, field: "@@"})
                .encode()
                .replace(
                    b"@@",
                    draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"a\x80b"])),
                )
            )
        if how == "nested":
            depth = draw(st.sampled_from([990, 1000, 1100, 5000, 50_000]))
            return json.dumps({**body, field: "@@"}).encode().replace(b'"@@"', b"[" * depth + b"]" * depth)
        if how == "number":
            return (
                json.dumps({**body, field: "@@"})
                .encode()
                .replace(
                    b'"@@"',
                    draw(
                        st.sampled_from(
                            [b"1e400", b"-1e400", b"NaN", b"Infinity", b"1" * 5000, b"-0", b"0x10", b"1.5e-400"]
                        )
                    ),
                )
            )
        if how == "raw_tail":
            return text + draw(st.sampled_from([b"}", b" x", b"\x00", b"{}"]))
        if how == "truncate":
            return text[: draw(st.integers(0, len(text) - 1))]
        if how == "bom":
            return b"\xef\xbb\xbf" + text
        if how == "duplicate":
            return text[:-1] + b", " + json.dumps({field: None})[1:].encode()
        if how == "empty":
            return b""
        return draw(st.sampled_from([b"[]", b"null", b"1", b'"x"', json.dumps([body]).encode()]))

    @fuzz_settings(300)
    @given(st.data())
    def fuzz_public_bodies(data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(sorted(templates)))
        node = data.draw(st.sampled_from(fuzz.ids))
        fuzz.send(node, path, data.draw(hostile_json(templates[path])))

    fuzz_public_bodies()

    @fuzz_settings(60)
    @given(st.data())
    def fuzz_headers(data: st.DataObject) -> None:
        header = data.draw(st.sampled_from(["x-rakit-hops", "x-rakit-remaining", "content-type"]))
        value = data.draw(
            st.sampled_from(
                ["abc", "-1", "1.5", "nan", "inf", "-inf", "1e309", "", " 1 ", "application/msgpack", "text/plain"]
            )
        )
        path = data.draw(st.sampled_from(["/kv/put", "/lock/acquire", "/queue/push", "/cache/set"]))
        node = data.draw(st.sampled_from(fuzz.ids))
        fuzz.send(node, path, json.dumps(templates[path]).encode(), headers={header: value})

    fuzz_headers()

    # 2. Cache peer batches.
    @fuzz_settings(300)
    @given(st.data())
    def fuzz_cache(data: st.DataObject) -> None:
        node = data.draw(st.sampled_from(fuzz.ids))
        now_us = time.time_ns() // 1000
        key = st.one_of(st.sampled_from(["fz.c", "fz.d"]), st.text(max_size=140))
        version = st.one_of(
            st.integers(0, 10**12).map(lambda back: f"{now_us - back}.node1"),  # a plausible one
            st.sampled_from(
                [
                    f"{now_us + 3 * 86_400_000_000}.node1",
                    "18446744073709551615.x",
                    "99999999999999999999999999.node2",
                    "-5.node1",
                    "5",
                    ".node1",
                    "x.y",
                    "",
                    "1" * 5000 + ".node1",
                    "12." + "n" * 5000,
                ]
            ),
            st.text(max_size=30),
        )
        op = st.one_of(
            st.builds(Invalidate, key, version),
            st.builds(Fetch, key),
            st.builds(Fence, st.sampled_from(["node1", "node2", "node3", "nodeX", ""])),
        )
        src = data.draw(st.sampled_from(["node1", "node2", "node3", "nodeX", ""]))
        clock = data.draw(
            st.one_of(
                st.integers(0, 10**12).map(lambda back: now_us - back),
                st.integers(-(2**63), 2**64 - 1),
                st.just(now_us + 3 * 86_400_000_000),
            )
        )
        frame = cache_encode(CacheBatch(src, clock, data.draw(st.lists(op, max_size=5))))
        how = data.draw(st.sampled_from(["batch", "batch", "mutated", "garbage", "invalidate"]))
        if how == "mutated":
            frame = data.draw(mutated(frame))
        elif how == "garbage":
            frame = data.draw(st.binary(max_size=64))
        if how == "invalidate":
            body = json.dumps({"src": src, "key": data.draw(key), "version": data.draw(version)}).encode()
            fuzz.send(node, "/cache/invalidate", body)
        else:
            fuzz.send(node, "/cache/internal/batch", frame, MSGPACK)

    fuzz_cache()

    # 3. Raft RPCs, built against the target's current state.
    baseline = fuzz.max_last_index()
    examples = 700

    @fuzz_settings(examples)
    @given(st.data())
    def fuzz_raft(data: st.DataObject) -> None:
        node = data.draw(st.sampled_from(fuzz.ids))
        before = fuzz.status(node)
        logged = fuzz.max_last_index()
        src = data.draw(st.sampled_from([*(i for i in fuzz.ids if i != node)] * 4 + [node, "nodeX"]))
        messages = data.draw(st.lists(raft_messages(node, src, before), min_size=1, max_size=3))
        frame = encode_batch(Batch(src, messages, data.draw(big()), data.draw(big())))
        how = data.draw(st.sampled_from(["frame"] * 6 + ["mutated", "garbage"]))
        if how == "mutated":
            frame = data.draw(mutated(frame))
        elif how == "garbage":
            frame = data.draw(st.binary(max_size=200))
        fuzz.send(node, data.draw(st.sampled_from(RAFT_PATHS)), frame, MSGPACK)
        after = fuzz.status(node)
        assert after["commit_index"] >= before["commit_index"], (before, after)
        assert after["commit_index"] <= logged + 3, f"commit index jumped: {before} -> {after}"

    fuzz_raft()
    fuzzed = time.monotonic() - started

    # 4. Settled: one leader, the same state everywhere, and everything still works.
    leader = cluster.wait_for_leader(30)
    url = fuzz.urls[leader]
    assert retry_until_ok("POST", url + "/kv/put", {"key": "fz.after", "value": 2}, timeout=30)[0] == 200

    def converged() -> dict[str, Any] | None:
        statuses = {i: fuzz.status(i) for i in fuzz.ids}
        applied = {s["last_applied"] for s in statuses.values()}
        if len(applied) != 1 or len({s["commit_index"] for s in statuses.values()}) != 1:
            return None
        digests = {i: get(fuzz.urls[i] + "/debug/digest")[1] for i in fuzz.ids}
        return digests if len({(d["applied"], d["digest"]) for d in digests.values()}) == 1 else None

    digests = cluster.wait_until(converged, 30, "equal digests on every replica")
    applied = next(iter(digests.values()))["applied"]
    assert applied <= baseline + 2 * examples + 10, f"applied index {applied} after a baseline of {baseline}"
    for node in fuzz.ids:
        assert get(fuzz.urls[node] + "/kv/get/fz.after")[1]["value"] == 2

    status, grant = retry_until_ok(
        "POST", url + "/lock/acquire", {"resource": "fz.after", "client_id": "checker", "ttl": 10}, timeout=20
    )
    assert status == 200 and grant["acquired"], grant
    assert post(url + "/lock/release", {"resource": "fz.after", "client_id": "checker"})[0] == 200
    status, _ = retry_until_ok("POST", fuzz.urls["node1"] + "/cache/set", {"key": "fz.after", "value": 3}, timeout=20)
    assert status == 200
    assert get(fuzz.urls["node2"] + "/cache/get/fz.after")[1]["value"] == 3
    assert post(fuzz.urls["node3"] + "/queue/push", {"topic": "fzafter", "message": 4})[0] == 200
    status, delivery = get(fuzz.urls["node1"] + "/queue/pop/fzafter/checker")
    assert status == 200 and delivery["message"] == 4
    print(f"\n{fuzz.requests} hostile requests in {fuzzed:.1f} s, answers by status: {sorted(fuzz.statuses.items())}")
    print("503 answers:", *sorted(set(fuzz.unavailable))[:20], sep="\n  ")


def test_with_a_cluster_secret_unsigned_hostile_calls_get_401(cluster_factory: Any) -> None:
    cluster = cluster_factory(1)  # the launcher gives it a random cluster secret
    fuzz = Target(cluster)
    node = fuzz.ids[0]
    paths = [
        *RAFT_PATHS,
        "/cache/internal/batch",
        "/cache/invalidate",
        "/queue/internal/push",
        "/queue/internal/pop",
        "/queue/internal/ack",
        "/queue/internal/nack",
        "/queue/internal/extend",
    ]

    @fuzz_settings(60)
    @given(
        st.sampled_from(paths),
        st.binary(max_size=100),
        st.dictionaries(
            st.sampled_from(["x-rakit-node", "x-rakit-ts", "x-rakit-nonce", "x-rakit-sig"]),
            st.sampled_from(["node1", "abc", "-1", "1e999", "nan", "0" * 300, ""]),
        ),
    )
    def fuzz_unsigned(path: str, body: bytes, headers: dict[str, str]) -> None:
        code, answer = fuzz.send(node, path, body, {**MSGPACK, **headers})
        assert code == 401 and answer["error"] == "unauthorized", (path, headers, code, answer)

    fuzz_unsigned()
