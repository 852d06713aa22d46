"""Hostile bytes on the Raft wire: ``decode_batch`` and the route's ``check_message``.

1. ``decode_batch`` on random bytes and on mutated valid frames raises only
   msgspec's ``DecodeError`` / ``ValidationError``, and whatever it accepts has
   every term and index in ``[0, MAX_WIRE_INT]``.
2. Any message that passes ``check_message`` (what ``/append_entries`` and the
   other Raft routes let through), stepped into a core with a committed log --
   a follower, and a leader -- never breaks it: no exception (``LogCorrupt``,
   a state machine failing to restore or apply), the commit index never goes
   down nor past the log, and committed entries are never rewritten.
3. The messages that crashed a node before (found by the fuzzers) are refused.
"""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rakit.errors import InvalidRequest
from rakit.node.inbound import MAX_INDEX_JUMP, MAX_TERM_JUMP, accept_batch, check_message
from rakit.raft.config import RaftConfig
from rakit.raft.core import RaftCore
from rakit.raft.messages import (
    ENTRY_CONF,
    ENTRY_NOOP,
    ENTRY_NORMAL,
    MAX_WIRE_INT,
    AnyMessage,
    AppendEntries,
    AppendEntriesResp,
    Batch,
    ConfChange,
    ConfEntry,
    ConfState,
    Entry,
    HardState,
    Heartbeat,
    HeartbeatResp,
    InstallSnapshot,
    RequestVote,
    RequestVoteResp,
    Snapshot,
    SnapshotMeta,
    TimeoutNow,
    decode_batch,
    encode_batch,
    encode_conf_entry,
)
from rakit.statemachines.kv import KvPut, KvStore
from rakit.statemachines.locks import LockTable
from rakit.statemachines.registry import Registry

PEERS = ["a", "b", "c"]
ME = "b"
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


def runtime(term: int = 3) -> Any:
    """What ``accept_batch`` / ``check_message`` read of a node's runtime."""
    return SimpleNamespace(
        node_id=ME,
        config=SimpleNamespace(peers={p: f"http://{p}" for p in PEERS}),
        machines=Registry([LockTable(), KvStore()]),
        driver=SimpleNamespace(
            core=SimpleNamespace(term=term, last_index=len(LOG_TERMS)), addresses={p: f"http://{p}" for p in PEERS}
        ),
    )


def registry_snapshot(**kv: bytes) -> bytes:
    machines = Registry([LockTable(), KvStore()])
    for i, (key, value) in enumerate(kv.items(), start=1):
        machines.apply(i, machines.encode(KvPut(key, value)))
    return machines.snapshot()


# -- 1. the decoder ----------------------------------------------------------------------

SAMPLES = [
    Batch("a", [RequestVote(term=3, src="a", dst="b", last_index=7, last_term=3, pre_vote=True)], 1, 2),
    Batch("a", [RequestVoteResp(term=3, src="a", dst="b", granted=True)]),
    Batch(
        "a",
        [
            AppendEntries(
                term=3,
                src="a",
                dst="b",
                prev_index=5,
                prev_term=3,
                entries=[Entry(3, 6, ENTRY_NORMAL, b"\x93\x01\x02\x03"), Entry(3, 7, ENTRY_NOOP)],
                commit=5,
            )
        ],
    ),
    Batch(
        "a",
        [
            AppendEntriesResp(term=3, src="a", dst="b", success=False, index=9, hint_index=4, hint_term=2),
            Heartbeat(term=3, src="a", dst="b", commit=5, ctx=17),
            HeartbeatResp(term=3, src="a", dst="b"),
        ],
    ),
    Batch(
        "a",
        [
            InstallSnapshot(
                term=3, src="a", dst="b", snapshot=Snapshot(SnapshotMeta(9, 3, PEERS), registry_snapshot(k=b"1"))
            ),
            TimeoutNow(term=3, src="a", dst="b"),
        ],
    ),
]
FRAMES = [encode_batch(b) for b in SAMPLES]


def wire_ints(m: AnyMessage) -> list[int]:
    out = [m.term]
    for name in ("last_index", "last_term", "prev_index", "prev_term", "commit", "index", "hint_index", "hint_term"):
        if hasattr(m, name):
            out.append(getattr(m, name))
    for e in getattr(m, "entries", ()):
        out += [e.term, e.index]
    if isinstance(m, InstallSnapshot):
        out += [m.snapshot.meta.index, m.snapshot.meta.term]
    return out


def decodes_or_refuses(data: bytes) -> None:
    try:
        batch = decode_batch(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return
    for m in batch.messages:
        assert all(0 <= n <= MAX_WIRE_INT for n in wire_ints(m)), m
        for e in getattr(m, "entries", ()):
            assert e.kind in (ENTRY_NORMAL, ENTRY_NOOP, ENTRY_CONF)


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_decode_or_raise_msgspec_errors(data: bytes) -> None:
    decodes_or_refuses(data)


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    frame = bytearray(draw(st.sampled_from(FRAMES)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "splice"]))
        at = draw(st.integers(0, max(0, len(frame) - 1)))
        if op == "flip" and frame:
            frame[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and frame:
            frame[at] = draw(st.sampled_from([0x00, 0x7F, 0xC0, 0xC1, 0xCF, 0xD3, 0xDC, 0xDD, 0xDF, 0xFF]))
        elif op == "insert":
            frame[at:at] = draw(st.binary(min_size=1, max_size=9))
        elif op == "delete" and frame:
            del frame[at : at + draw(st.integers(1, 8))]
        elif op == "truncate":
            del frame[at:]
        elif op == "splice":
            other = draw(st.sampled_from(FRAMES))
            frame[at:] = other[draw(st.integers(0, len(other) - 1)) :]
    return bytes(frame)


@FUZZ
@given(mutated_frames())
def test_mutated_frames_decode_or_raise_msgspec_errors(data: bytes) -> None:
    decodes_or_refuses(data)


@pytest.mark.parametrize(
    "bad",
    [
        {"term": -1},
        {"term": 2**63},
        {"term": 2**64 - 1},
        {"prev_index": -5},
        {"commit": MAX_WIRE_INT + 1},
    ],
)
def test_negative_and_huge_numbers_do_not_decode(bad: dict[str, int]) -> None:
    message = {
        "t": "AppendEntries",
        "term": 1,
        "src": "a",
        "dst": "b",
        "prev_index": 0,
        "prev_term": 0,
        "entries": [],
        "commit": 0,
        **bad,
    }
    with pytest.raises(msgspec.ValidationError):
        decode_batch(msgspec.msgpack.encode({"src": "a", "messages": [message]}))


def test_an_entry_of_an_unknown_kind_does_not_decode() -> None:
    message = {
        "t": "AppendEntries",
        "term": 1,
        "src": "a",
        "dst": "b",
        "prev_index": 0,
        "prev_term": 0,
        "entries": [[1, 1, 7, b""]],
        "commit": 0,
    }
    with pytest.raises(msgspec.ValidationError):
        decode_batch(msgspec.msgpack.encode({"src": "a", "messages": [message]}))


# -- 2. what passes the route cannot break a core -----------------------------------------

# Entries whose bytes some msgspec versions decode by raising something other than a DecodeError /
# ValidationError (which Registry.apply turns into UnknownCommand): a kv.put whose key is not UTF-8
# (UnicodeDecodeError before msgspec 0.23, a DecodeError since), a kv.put with a deeply nested unknown
# field (RecursionError).
BAD_UTF8 = b"\x82\xa4type\xa6kv.put\xa3key\xa1\xff"
DEEP_FIELD = b"\x82\xa4type\xa6kv.put\xa5extra" + b"\x91" * 5000 + b"\x00"
LOG_TERMS = [1, 1, 2, 3, 3, 3, 3]  # entries 1..7; terms of a plausible log
COMMIT = 5
TERM = 3
CFG = RaftConfig(election_ticks=10, heartbeat_ticks=1)


def follower() -> RaftCore:
    entries = [
        Entry(t, i, ENTRY_NORMAL, Registry([KvStore()]).encode(KvPut(f"k{i}", b"%d" % i)))
        for i, t in enumerate(LOG_TERMS, start=1)
    ]
    return RaftCore(
        ME, PEERS, config=CFG, rng=random.Random(0), hard_state=HardState(TERM, None, COMMIT), entries=entries
    )


class Driver:
    """The driver's contract, in memory: persist nothing, restore and apply into a registry."""

    def __init__(self, core: RaftCore) -> None:
        self.core = core
        self.machines = Registry([LockTable(), KvStore()])
        self.commit = core.commit_index
        self.committed_terms = {i: core.log.term_at(i) for i in range(1, core.commit_index + 1)}
        self.run()

    def run(self) -> None:
        core = self.core
        for _ in range(50):
            if not core.has_ready():
                break
            rd = core.ready()
            if rd.snapshot is not None:
                self.machines.restore(rd.snapshot.data)
            for entry in rd.committed_entries:
                if entry.kind == ENTRY_NORMAL:
                    self.machines.apply(entry.index, entry.data)
            core.advance(rd)
        self.check()

    def check(self) -> None:
        core = self.core
        assert self.commit <= core.commit_index <= core.last_index
        self.commit = core.commit_index
        for index, term in self.committed_terms.items():
            now = core.log.term_at(index)
            assert now is None or now == term, f"committed entry {index} rewritten: term {term} -> {now}"

    def step(self, message: AnyMessage) -> None:
        self.core.step(message)
        self.run()


def leader() -> Driver:
    driver = Driver(follower())
    driver.core.campaign()
    driver.run()
    driver.step(RequestVoteResp(term=driver.core.term, src="a", dst=ME, granted=True))
    assert driver.core.role == "leader"
    return driver


small_term = st.integers(0, TERM + 3)
small_index = st.integers(0, len(LOG_TERMS) + 3)
term = st.one_of(small_term, st.integers(0, MAX_WIRE_INT))
index = st.one_of(small_index, st.integers(0, MAX_WIRE_INT))
peer = st.sampled_from(["a", "c"])
_ABC = ConfState.of(PEERS)
CONF_ENTRIES = [
    ConfEntry(c, _ABC.apply(c)) for c in (ConfChange.remove(ME), ConfChange.remove("a"), ConfChange.add_learner("d"))
]


@st.composite
def entries_after(draw: st.DrawFn, prev_index: int, prev_term: int, msg_term: int) -> list[Entry]:
    """Mostly well-formed entries after ``prev_index``; sometimes anything."""
    if draw(st.integers(0, 4)) == 0:
        return draw(
            st.lists(
                st.builds(Entry, small_term, small_index, st.sampled_from([0, 1]), st.binary(max_size=8)), max_size=4
            )
        )
    out, t = [], prev_term
    for i in range(draw(st.integers(0, 4))):
        t = draw(st.integers(t, max(t, msg_term)))
        data = draw(
            st.one_of(
                st.binary(max_size=12),  # unknown commands, garbage
                st.sampled_from([Registry([KvStore()]).encode(KvPut("x", b"1")), BAD_UTF8, DEEP_FIELD]),
            )
        )
        kind = draw(st.sampled_from([ENTRY_NORMAL, ENTRY_NOOP, ENTRY_CONF]))
        if kind == ENTRY_CONF and draw(st.booleans()):  # a well-formed membership change
            data = encode_conf_entry(draw(st.sampled_from(CONF_ENTRIES)))
        out.append(Entry(t, prev_index + 1 + i, kind, data))
    return out


@st.composite
def hostile_messages(draw: st.DrawFn) -> AnyMessage:
    src, t = draw(peer), draw(term)
    kind = draw(
        st.sampled_from(
            ["vote", "vote_resp", "append", "append_resp", "heartbeat", "heartbeat_resp", "snapshot", "timeout_now"]
        )
    )
    if kind == "vote":
        return RequestVote(
            term=t,
            src=src,
            dst=ME,
            last_index=draw(index),
            last_term=draw(term),
            pre_vote=draw(st.booleans()),
            transfer=draw(st.booleans()),
        )
    if kind == "vote_resp":
        return RequestVoteResp(term=t, src=src, dst=ME, granted=draw(st.booleans()), pre_vote=draw(st.booleans()))
    if kind == "append":
        if draw(st.booleans()):  # one that matches the log: a (forged) leader's append goes through
            prev_index = draw(st.integers(COMMIT, len(LOG_TERMS)))
            prev_term, t = LOG_TERMS[prev_index - 1], draw(st.integers(TERM, TERM + 2))
        else:
            prev_index, prev_term = draw(index), draw(term)
        return AppendEntries(
            term=t,
            src=src,
            dst=ME,
            prev_index=prev_index,
            prev_term=prev_term,
            entries=draw(entries_after(prev_index, prev_term, t)),
            commit=draw(index),
        )
    if kind == "append_resp":
        return AppendEntriesResp(
            term=t,
            src=src,
            dst=ME,
            success=draw(st.booleans()),
            index=draw(index),
            hint_index=draw(index),
            hint_term=draw(term),
        )
    if kind == "heartbeat":
        return Heartbeat(term=t, src=src, dst=ME, commit=draw(index), ctx=draw(st.integers(0, 2**64 - 1)))
    if kind == "heartbeat_resp":
        return HeartbeatResp(term=t, src=src, dst=ME, ctx=draw(st.integers(0, 2**64 - 1)))
    if kind == "snapshot":
        voters = draw(st.one_of(st.just(PEERS), st.lists(st.sampled_from([*PEERS, "z"]), max_size=4)))
        data = draw(
            st.one_of(
                st.binary(max_size=16),
                st.just(registry_snapshot(x=b"1", y=b"2")),
                st.just(msgspec.msgpack.encode({"locks": b"\x01", "kv": b"\xc1"})),
            )
        )
        return InstallSnapshot(
            term=t, src=src, dst=ME, snapshot=Snapshot(SnapshotMeta(draw(index), draw(term), voters), data)
        )
    return TimeoutNow(term=t, src=src, dst=ME)


def step_checked(driver: Driver, messages: list[AnyMessage]) -> None:
    for message in messages:
        try:
            check_message(runtime(driver.core.term), message)
        except InvalidRequest:
            continue
        driver.step(message)
        for _ in range(3):
            driver.core.tick()
            driver.run()


@FUZZ
@given(st.lists(hostile_messages(), min_size=1, max_size=6))
def test_messages_the_route_lets_through_never_break_a_follower(messages: list[AnyMessage]) -> None:
    step_checked(Driver(follower()), messages)


@FUZZ
@given(st.lists(hostile_messages(), min_size=1, max_size=6))
def test_messages_the_route_lets_through_never_break_a_leader(messages: list[AnyMessage]) -> None:
    step_checked(leader(), messages)


# -- 3. regressions: these crashed a node (exit 70) before check_message and the wire bounds --------


def test_entries_that_do_not_follow_prev_index_are_refused() -> None:
    # Found by the node fuzz: prev_index at the commit index, an entry for index 1 with another
    # term -> the core truncated below its commit index (LogCorrupt) and the node stopped.
    message = AppendEntries(term=TERM, src="a", dst=ME, prev_index=COMMIT, prev_term=3, entries=[Entry(0, 1)], commit=0)
    with pytest.raises(InvalidRequest, match="index"):
        check_message(runtime(), message)
    with pytest.raises(Exception, match="truncating committed"):  # what the core did with it
        Driver(follower()).step(message)


@pytest.mark.parametrize(
    "entries, prev_term, why",
    [
        ([Entry(3, 7), Entry(3, 9)], 3, "index"),  # a gap
        ([Entry(3, 7), Entry(2, 8)], 3, "term"),  # terms going down
        ([Entry(4, 7)], 3, "term"),  # an entry of a term above the leader's
        ([Entry(3, 7)], 4, "prev_term"),  # prev_term above the leader's term
    ],
)
def test_malformed_appends_are_refused(entries: list[Entry], prev_term: int, why: str) -> None:
    message = AppendEntries(term=TERM, src="a", dst=ME, prev_index=6, prev_term=prev_term, entries=entries, commit=0)
    with pytest.raises(InvalidRequest, match=why):
        check_message(runtime(), message)


@pytest.mark.parametrize(
    "voters, data, why",
    [
        (PEERS, b"garbage", "does not restore"),  # found: the driver's restore raised and the node stopped
        (PEERS, msgspec.msgpack.encode({"locks": b"\x01"}), "does not restore"),
        ([], registry_snapshot(), "valid configuration"),  # no voter at all
        (["a", "b", "c", "c"], registry_snapshot(), "valid configuration"),  # a voter twice
        # (A different but valid set of voters is fine: membership changes make it so.)
    ],
)
def test_snapshots_that_cannot_be_installed_are_refused(voters: list[str], data: bytes, why: str) -> None:
    message = InstallSnapshot(term=TERM, src="a", dst=ME, snapshot=Snapshot(SnapshotMeta(9, 3, voters), data))
    with pytest.raises(InvalidRequest, match=why):
        check_message(runtime(), message)


def test_a_term_beyond_64_bits_is_refused_by_the_decoder() -> None:
    # Found: a RequestVote with term 2**63 + 5 was accepted, the node took the term and its
    # SQLite store could not write it (OverflowError): the node stopped.
    frame = msgspec.msgpack.encode(
        {
            "src": "a",
            "messages": [
                {
                    "t": "RequestVote",
                    "term": 2**63 + 5,
                    "src": "a",
                    "dst": "b",
                    "last_index": 1,
                    "last_term": 1,
                    "transfer": True,
                }
            ],
        }
    )
    with pytest.raises(InvalidRequest, match="malformed raft batch"):
        accept_batch(runtime(), frame)


def test_a_term_too_far_ahead_is_refused() -> None:
    # Found while fixing the one above: with terms merely bounded, one RequestVote at the bound moved
    # the cluster there, and the next election's term (bound + 1) no longer decoded: no leader ever.
    frame = encode_batch(
        Batch("a", [RequestVote(term=MAX_WIRE_INT, src="a", dst="b", last_index=1, last_term=1, transfer=True)])
    )
    with pytest.raises(InvalidRequest, match="far ahead"):
        accept_batch(runtime(), frame)
    accept_batch(
        runtime(),
        encode_batch(Batch("a", [RequestVote(term=3 + MAX_TERM_JUMP, src="a", dst="b", last_index=1, last_term=1)])),
    )


def test_a_log_index_too_far_ahead_is_refused() -> None:
    # Found by the internal-endpoint fuzz: an InstallSnapshot at index 2**62 from the term's leader
    # moved a follower's log (and its commit index) there.
    far = len(LOG_TERMS) + MAX_INDEX_JUMP + 1
    snapshot = Snapshot(SnapshotMeta(index=far, term=3, voters=sorted(PEERS)), registry_snapshot())
    for message in (
        InstallSnapshot(term=TERM, src="a", dst=ME, snapshot=snapshot),
        RequestVote(term=TERM, src="a", dst=ME, last_index=far, last_term=3),
        Heartbeat(term=TERM, src="a", dst=ME, commit=far),
    ):
        with pytest.raises(InvalidRequest, match="implausibly far ahead"):
            check_message(runtime(), message)
    check_message(runtime(), RequestVote(term=TERM, src="a", dst=ME, last_index=far - 1, last_term=3))


def test_a_well_formed_batch_is_accepted() -> None:
    src, messages = accept_batch(runtime(), FRAMES[2])
    assert src == "a" and len(messages) == 1
    src, messages = accept_batch(runtime(), FRAMES[4])
    assert [type(m) for m in messages] == [InstallSnapshot, TimeoutNow]


def test_an_entry_that_would_stop_the_node_applying_it_is_refused() -> None:
    # Found by the core fuzz: committed, such an entry made Registry.apply raise (UnicodeDecodeError,
    # with the msgspec of then) in the driver, which stops the node (every replica that applies it).
    # What rakit guarantees, whatever the installed decoder raises: an entry Registry.apply would raise
    # on is refused before it gets into the log; one it applies (as UnknownCommand) is let through.
    for data in (BAD_UTF8, DEEP_FIELD):
        message = AppendEntries(
            term=TERM, src="a", dst=ME, prev_index=7, prev_term=3, entries=[Entry(3, 8, ENTRY_NORMAL, data)], commit=8
        )
        try:
            Registry([LockTable(), KvStore()]).apply(1, data)
        except Exception:
            with pytest.raises(InvalidRequest, match="cannot be applied"):
                check_message(runtime(), message)
        else:
            check_message(runtime(), message)  # no InvalidRequest
    # Unknown commands and garbage that msgspec refuses properly are applied as UnknownCommand.
    check_message(
        runtime(),
        AppendEntries(
            term=TERM,
            src="a",
            dst=ME,
            prev_index=7,
            prev_term=3,
            commit=8,
            entries=[Entry(3, 8, ENTRY_NORMAL, b"\xc1garbage"), Entry(3, 9, ENTRY_NORMAL, b"\x81\xa4type\xa3new")],
        ),
    )


def test_invalid_utf8_and_deep_nesting_are_decode_errors() -> None:
    # Found by the decoder fuzz: msgspec raised UnicodeDecodeError on a mutated frame (a 500, and
    # the Raft WebSocket handler died on it).
    with pytest.raises(msgspec.DecodeError):
        decode_batch(b"\x82\xa3src\xa1\xff\xa8messages\x90")
    with pytest.raises(msgspec.DecodeError):
        decode_batch(b"\x82\xa3src\xa1a\xa5extra" + b"\x91" * 5000 + b"\x00")


def test_a_snapshot_of_another_valid_configuration_is_accepted() -> None:
    # After membership changes a snapshot names the voters and learners of its index, not the --peers.
    meta = SnapshotMeta(9, 3, ["a", "b", "d"], ["e"])
    message = InstallSnapshot(term=TERM, src="a", dst=ME, snapshot=Snapshot(meta, registry_snapshot()))
    check_message(runtime(), message)  # no InvalidRequest
