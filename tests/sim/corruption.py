"""Crashes that damage what a node persisted, read back through the node's real WAL code.

Theory of operation
-------------------
``WalDisk`` is the harness's ``SimDisk`` plus the node's ``raft.wal`` as
``FileLogStore`` would have written it: every ``save``/``compact`` that
stores something appends exactly the frame the real store appends
(``file_store._frame(_Record(...))``: one call, one record).  The file itself
is only materialized when the node starts again: ``image_of`` lays the
frames after the real file header, followed by zeroes (the preallocated
space), and ``open_wal`` writes that into a temporary directory and opens it
with the real ``FileLogStore`` -- its replay, ``wal_damage.survey``, the
torn-write test and ``repair=True`` are the code a node runs.  Every restart
goes through it; an undamaged file must load exactly what the sim's disk
holds (a cross-check of the two models), and a damaged one is judged below.

The damage, in the kinds a disk produces (``CorruptionCluster.crash_damaged``):

``torn``       Power lost while the last record was being written.  Only a
               record whose Ready's messages never went out can be torn: the
               crash strikes after persisting and before sending (or while a
               compaction record is written).  Its sectors (512 bytes) were
               written or not, at random, at least one not: the bytes not
               written are what the sector held before (earlier records, then
               preallocated zeroes).  The store must load the state before
               that record (cut with a warning) or with it (it landed whole),
               or refuse; anything else lost reported data.
``flip``       Four bytes flipped in the payload of a record that has whole
               records after it (``rakit.chaos.disk.damage_log``, the chaos
               nemesis's own damage).  Must be refused.
``hard_state`` The record holding the node's latest term/vote is hit: with
               records after it, its bytes revert to zeroes (a lost write: the
               old contents of that place come back); as the last record, it
               is altered in place.  Cutting there would lower the term or
               vote: must be refused.
``lost_tail``  A disk that lied about fsync: the last k records never reached
               it (zeroes).  The file is a clean, shorter log and the store
               cannot tell (it opens without a word) -- so the *cluster* must:
               the leader notices the follower whose log is behind its match
               index (``Progress.regress``) and repairs it.  Inflicted on a
               follower only, never across the record that set its current
               term/vote (a lost vote is undetectable by anyone: see
               test_corruption_sim's lying-disk test, which shows the checker
               catching it), and only while every entry it loses is also held
               by a majority of the other voters (the durability Raft needs
               from the others; without it no protocol keeps the write).
               Its shorter log may hold entries a lost record had overwritten
               (``resurrect``, on by default): the core must never commit them
               (core.py rule 8; test_corruption_sim's last two tests).

A refused node stays down (``refused``: the event with the store's one-line
reason).  The operator (``operator_step``, an event in the chaos phase and
``recover`` before the liveness phase) then first tries ``--repair``
(``FileLogStore(repair=True)``) and adopts it only if every entry it drops is
held by a majority of the other voters ("safe only while the other members
still hold those entries") and (unless ``resurrect``) it brings back no entry a
dropped record had overwritten; otherwise it wipes the node: removes it, retires
it and adds an empty node under a new id as a learner, promoted once caught
up.  A repaired (or lost-tail) node is *tracked*: a leader whose ``match``
for it is past its log must count a regression before it stops leading --
a wrong belief that outlives the run is a silent acceptance.

``CorruptionChecker`` adds acknowledged writes (an entry applied on the node
that proposed it: where the real node answers the client) to the harness's
checker, and forgets what a torn, never-reported record said (its vote may
be given again, its term persisted again).
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rakit.chaos.disk import damage_log
from rakit.chaos.disk import records as wal_records
from rakit.raft.messages import ENTRY_CONF, ENTRY_NORMAL, ConfChange, Entry, HardState, Snapshot, decode_conf_entry
from rakit.storage.base import LoadedState
from rakit.storage.file_store import (
    _FILE_HEADER,
    FORMAT_VERSION,
    MAGIC,
    SECTOR,
    FileLogStore,
    RepairReport,
    WalError,
    _decode,
    _frame,
    _Record,
)
from rakit.storage.memory import MemoryLogStore

from .harness import Checker, Cluster, InvariantViolation, SimConfig, SimDisk, SimNode, SimStateMachine

KINDS = ("torn", "flip", "hard_state", "lost_tail")
HEADER = _FILE_HEADER.pack(MAGIC, FORMAT_VERSION)
PAD = 4096  # zeroes after the last record: the preallocated space (the real store has 16 MiB of it)
REWRITE_FRAMES = 120  # a compaction past this many records rewrites the file as one record (file_store rule 5)
_PHASE1 = " (in Ready, after persisting, before sending)"  # harness.Cluster._handle_ready's crash reason
_TMP = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
_store_log = logging.getLogger("rakit.storage.file_store")


# ---------------------------------------------------------------------------
# The WAL file, through the real code
# ---------------------------------------------------------------------------


def image_of(frames: list[bytes]) -> bytes:
    """The file a FileLogStore holding ``frames`` has on disk: header, records, preallocated zeroes."""
    body = HEADER + b"".join(frames)
    return body + bytes((len(body) // PAD + 2) * PAD - len(body))


def record_of(frame: bytes) -> _Record:
    return _decode(frame[8:])


def replay(frames: list[bytes]) -> LoadedState:
    """What ``frames`` hold, replayed as FileLogStore replays them (through the MemoryLogStore twin)."""
    mem = MemoryLogStore()
    for frame in frames:
        rec = record_of(frame)
        if rec.compact and rec.snapshot is not None:
            mem.compact(rec.snapshot)
        else:
            mem.save(rec.hard_state, rec.entries, rec.snapshot)
    return mem.load()


class TermLookup(Protocol):
    def get(self, index: int) -> int | None: ...


@dataclass
class WalOpen:
    """What the real store made of a file."""

    state: LoadedState | None  # None: refused
    refused: str = ""  # the WalError line (the temporary path replaced by "raft.wal")
    touched: bool = False  # refused, and yet the file changed
    warnings: list[str] = field(default_factory=list)
    repaired: RepairReport | None = None
    frames: list[bytes] = field(default_factory=list)  # the records the file holds after the open


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def open_wal(image: bytes, *, repair: bool = False) -> WalOpen:
    """Open ``image`` as ``raft.wal`` with the real ``FileLogStore`` (a temporary file) and load it."""
    with tempfile.TemporaryDirectory(prefix="rakit-sim-wal-", dir=_TMP) as tmp:
        path = Path(tmp) / "raft.wal"
        path.write_bytes(image)
        handler = _Collect()
        _store_log.addHandler(handler)
        try:
            try:
                store = FileLogStore(path, repair=repair)
            except WalError as err:
                return WalOpen(
                    None, refused=str(err).replace(str(path), "raft.wal"), touched=path.read_bytes() != image
                )
            try:
                state, repaired = store.load(), store.repaired
            finally:
                store.close()
        finally:
            _store_log.removeHandler(handler)
        data = path.read_bytes() if (handler.lines or repaired) else image
        frames = [data[s:e] for s, e in wal_records(data)]
        warnings = [w.replace(str(path), "raft.wal") for w in handler.lines]
        return WalOpen(state, warnings=warnings, repaired=repaired, frames=frames)


def flip_with_the_nemesis(image: bytes, rng: random.Random) -> tuple[bytes, int] | None:
    """``rakit.chaos.disk.damage_log`` on ``image``: the damaged bytes and the record's offset."""
    with tempfile.TemporaryDirectory(prefix="rakit-sim-wal-", dir=_TMP) as tmp:
        path = Path(tmp) / "raft.wal"
        path.write_bytes(image)
        at = damage_log(path, rng)
        return None if at is None else (path.read_bytes(), at)


# ---------------------------------------------------------------------------
# The disk
# ---------------------------------------------------------------------------


@dataclass
class DamageEvent:
    kind: str
    node: str
    at: int  # the event number of the crash
    detail: str
    outcome: str = "pending"  # refused | cut | absent | whole | opened-silently | accepted (unsafe variants)
    reason: str = ""  # the store's refusal line, or its warnings
    recovery: str = ""  # "" | "wipe" (under way) | what brought it back
    repair: str = ""  # what --repair said, when the operator did not adopt it
    lost: list[tuple[int, int]] = field(default_factory=list)  # (index, term) of acknowledged entries it lost
    regressions: int = 0  # leader-side detections (Progress.regress) of this node after it came back
    believed: int = 0  # how often a leader was seen counting entries this node no longer held
    moot: int = 0  # ... and stopped leading before it noticed
    caught_up: int = 0  # ... and saw it catch up another way (a snapshot, a late duplicate append)
    windows: dict[tuple[str, int, int], int] = field(default_factory=dict)  # open wrong beliefs
    baselines: dict[tuple[str, int, int], int] = field(default_factory=dict)
    at_restart: int = -1

    def __str__(self) -> str:
        s = f"[{self.at}] {self.kind} on {self.node}: {self.detail} -> {self.outcome}"
        if self.reason:
            s += f" ({self.reason})"
        if self.recovery:
            s += f"; {self.recovery}"
        if self.lost:
            s += (
                f"; lost {len(self.lost)} acknowledged entries, {self.regressions} regression(s) counted, "
                f"{self.believed} wrong belief(s) ({self.moot} moot, {self.caught_up} caught up otherwise)"
            )
        return s


@dataclass
class Pending:
    """Damage waiting for the node's next start."""

    event: DamageEvent
    image: bytes
    expect: dict[str, LoadedState] = field(default_factory=dict)
    torn_hard_state: HardState | None = None


class WalDisk(SimDisk):
    """``SimDisk`` that also keeps the records FileLogStore would have appended (see the module docstring)."""

    def __init__(self, use_memory_store: bool, initial_conf: Any = None) -> None:
        super().__init__(use_memory_store, initial_conf)
        self.frames: list[bytes] = []
        self.ready_mark = 0  # len(frames) when the Ready being handled began
        self.last_write = ""  # "save" | "compact" | "rewrite"
        self.rewrites = 0
        self.pending: Pending | None = None
        self.damaged_image: bytes | None = None  # a refused node's file, for the operator

    def state(self) -> LoadedState:
        return LoadedState(self.hard_state, self.snapshot, list(self.entries))

    def save(self, hard_state: HardState | None, entries: list[Entry], snapshot: Snapshot | None) -> None:
        super().save(hard_state, entries, snapshot)
        # FileLogStore writes a record only if the call stored something (MemoryLogStore.saves moved).
        if hard_state is not None or snapshot is not None or any(e.index > self.snapshot_index for e in entries):
            self.frames.append(_frame(_Record(hard_state, list(entries), snapshot)))
            self.last_write = "save"

    def compact(self, snapshot: Snapshot) -> None:
        super().compact(snapshot)
        if len(self.frames) >= REWRITE_FRAMES:  # the compact record, then the rewrite to one record
            self.frames = [_frame(_Record(self.hard_state, list(self.entries), self.snapshot))]
            self.rewrites += 1
            self.last_write = "rewrite"
        else:
            self.frames.append(_frame(_Record(snapshot=snapshot, compact=True)))
            self.last_write = "compact"

    def adopt(self, state: LoadedState, frames: list[bytes]) -> None:
        """From now on the disk holds what the real store loaded (after a cut or a repair)."""
        self._conf = None
        self.hard_state = state.hard_state
        self.snapshot = state.snapshot
        self.entries = list(state.entries)
        self.confs = []
        for e in self.entries:
            if e.kind == ENTRY_CONF:
                decoded = decode_conf_entry(e.data)
                self.confs.append((e.index, decoded.conf if decoded is not None else None))
        if self.store is not None:
            self.store = MemoryLogStore()
            self.store.save(state.hard_state, list(state.entries), state.snapshot)
        self.frames = list(frames)

    def holds(self, index: int, term: int, committed: TermLookup) -> bool:
        if self.term_at(index) == term:
            return True
        return index <= self.snapshot_index and committed.get(index) == term


def lost_entries(disk: SimDisk, state: LoadedState, committed: TermLookup) -> list[tuple[int, int]]:
    """(index, term) of every entry ``disk`` holds (or compacted, if committed) that ``state`` lacks."""
    snap = state.snapshot.meta.index if state.snapshot else 0
    have = {e.index: e.term for e in state.entries}
    out = []
    for i in range(snap + 1, disk.last_index + 1):
        old = disk.term_at(i)
        if old is None:
            old = committed.get(i)
            if old is None:
                continue
        if have.get(i) != old:
            out.append((i, old))
    return out


def resurrected(disk: SimDisk, state: LoadedState, committed: TermLookup) -> list[tuple[int, int]]:
    """(index, term) of entries in ``state`` that ``disk`` had replaced: a record that overwrote them is gone."""
    out = []
    for e in state.entries:
        old = disk.term_at(e.index)
        if old is None and e.index <= disk.snapshot_index:
            old = committed.get(e.index)
        if old is not None and old != e.term:
            out.append((e.index, e.term))
    return out


def _span(lost: list[tuple[int, int]]) -> str:
    return f"{lost[0][0]}..{lost[-1][0]}" if lost else "none"


# ---------------------------------------------------------------------------
# Configuration, checker, cluster
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CorruptionConfig(SimConfig):
    damage: str = ""  # one of KINDS, or "" (damage only when a test asks)
    damage_rate: float = 1.0  # share of the chaos phase's crashes that damage the disk (flip, hard_state, lost_tail)
    torn_rate: float = 0.0  # per Ready: crash after persisting, before sending, tearing its record
    torn_compact_rate: float = 0.0  # per compaction record: crash while writing it, tearing it
    w_operator: float = 0.0  # the operator's weight in the chaos phase
    payload: int = 400  # proposals carry up to this many bytes more (so records span sectors)
    lost_tail_records: int = 6  # a lying disk loses at most this many records
    # Allow a lost tail or an adopted --repair that brings back entries a lost record had
    # overwritten (a stale suffix).  The core must not commit them (core.py rule 8).
    resurrect: bool = True


class CorruptionChecker(Checker):
    def __init__(self) -> None:
        super().__init__()
        self.proposer: dict[bytes, str] = {}
        self.acked: dict[int, Entry] = {}  # index -> entry applied on the node that proposed it

    def on_propose(self, node: str, data: bytes, term: int, index: int) -> None:
        super().on_propose(node, data, term, index)
        self.proposer[data] = node

    def on_apply(self, node: str, sm: SimStateMachine, e: Entry) -> None:
        super().on_apply(node, sm, e)
        if e.kind == ENTRY_NORMAL and self.proposer.get(e.data) == node:
            self.acked.setdefault(e.index, e)

    @property
    def committed(self) -> TermLookup:
        """The term of every committed index seen (also those compacted in the drain that committed them)."""
        return _Committed(self)

    def forget_unreported(self, node: str, before: HardState, torn: HardState | None) -> None:
        """A torn record never reached anyone: its vote may be given again, its term persisted again."""
        if torn is None:
            return
        vote_was_new = (torn.term, torn.vote) != (before.term, before.vote)
        if torn.vote is not None and vote_was_new and self.votes.get((node, torn.term)) == torn.vote:
            del self.votes[(node, torn.term)]
        self.persisted_term[node] = before.term


class _Committed:
    def __init__(self, check: Checker) -> None:
        self.check = check

    def get(self, index: int) -> int | None:
        term = self.check.committed_terms.get(index)
        if term is None and index in self.check.applied:
            term = self.check.applied[index].term
        return term


class CorruptionCluster(Cluster):
    checker_cls = CorruptionChecker
    disk_cls = WalDisk
    # False: believe whatever the store loads (the unsafe variants of the checker self-tests).
    strict = True

    def __init__(self, cfg: CorruptionConfig, seed: int) -> None:
        self.refused: dict[str, DamageEvent] = {}
        self.events: list[DamageEvent] = []
        self.tracking: list[DamageEvent] = []  # nodes that lost acknowledged entries and came back
        self.replacements: list[str] = []
        self._tear_next: set[str] = set()
        self.wal_opens = 0
        super().__init__(cfg, seed)
        self.cfg: CorruptionConfig = cfg

    @property
    def ccheck(self) -> CorruptionChecker:
        assert isinstance(self.check, CorruptionChecker)
        return self.check

    def disk(self, nid: str) -> WalDisk:
        d = self.nodes[nid].disk
        assert isinstance(d, WalDisk)
        return d

    # -- the seam the unsafe variants replace ------------------------------------------

    def read_wal(self, image: bytes, *, repair: bool = False) -> WalOpen:
        return open_wal(image, repair=repair)

    # -- workload ------------------------------------------------------------------------

    def proposal_data(self, nid: str) -> bytes:
        data = super().proposal_data(nid)
        return data + b"." * ((self._proposal_seq * 97) % (self.cfg.payload + 1)) if self.cfg.payload else data

    def _build_event_table(self) -> None:
        super()._build_event_table()
        if self.cfg.w_operator > 0:
            self._total_weight += self.cfg.w_operator
            self._cum.append(self._total_weight)
            self._events.append(self._ev_operator)

    def _may_crash(self) -> bool:
        # A minority of every configuration in play, the refused nodes counted as down (the harness
        # only counts the initial size: a cluster shrunk to two voters by a wipe tolerates nothing).
        if not super()._may_crash():
            return False
        configs = {frozenset(self.check.committed_conf.voters)}
        configs.update(frozenset(n.core.conf_state.voters) for n in self.up() if n.core is not None)
        for conf in configs:
            down = sum(1 for m in conf if m not in self.nodes or self.nodes[m].core is None)
            if down + 1 > (len(conf) - 1) // 2:
                return False
        return True

    def _ev_crash(self) -> None:
        if not self._may_crash():
            return
        kind = self.cfg.damage
        if kind in ("flip", "hard_state", "lost_tail") and self.rng.random() < self.cfg.damage_rate:
            pool = [n.id for n in self.up() if kind != "lost_tail" or (n.core is not None and n.core.role != "leader")]
            if pool:
                self.crash_damaged(self.rng.choice(pool), kind)
                return
        up = [n.id for n in self.up()]
        if up:
            self.crash(self.rng.choice(up))

    def _ev_restart(self) -> None:
        down = [
            n.id
            for n in self.nodes.values()
            if n.core is None
            and self.now - n.down_since >= 20
            and n.id not in self.retired
            and n.id not in self.refused
        ]
        if down:
            self.restart(self.rng.choice(down))

    def _ev_operator(self) -> None:
        self.operator_step()

    # -- torn writes -----------------------------------------------------------------------

    def _handle_ready(self, node: SimNode) -> None:
        assert isinstance(node.disk, WalDisk)
        node.disk.ready_mark = len(node.disk.frames)
        rate = self.cfg.torn_rate
        if rate and node.id not in self.crash_plan and self._may_crash() and self.rng.random() < rate:
            self.crash_plan[node.id] = 1  # harness: crash after persisting, before sending
            self._tear_next.add(node.id)
        super()._handle_ready(node)
        self._tear_next.discard(node.id)

    def _maybe_compact(self, node: SimNode, force: bool = False) -> None:
        disk = node.disk
        assert isinstance(disk, WalDisk)
        before = len(disk.frames)
        super()._maybe_compact(node, force)
        rate = self.cfg.torn_compact_rate
        if (
            rate
            and not force
            and disk.last_write == "compact"
            and len(disk.frames) > before
            and self._may_crash()
            and self.rng.random() < rate
        ):
            self.crash(node.id, " (while writing its compaction record)")
            self._tear(node, "torn compaction record")

    def crash(self, nid: str, why: str = "") -> None:
        node = self.nodes[nid]
        disk = node.disk
        assert isinstance(disk, WalDisk)
        tear = (
            node.core is not None
            and nid in self._tear_next
            and why == _PHASE1
            and len(disk.frames) > disk.ready_mark
            and disk.pending is None
        )
        self._tear_next.discard(nid)
        super().crash(nid, why)
        if tear:
            self._tear(node, "torn final write (the messages that needed it never went out)")

    def _tear(self, node: SimNode, what: str) -> None:
        disk = node.disk
        assert isinstance(disk, WalDisk)
        frames = disk.frames
        before_body = HEADER + b"".join(frames[:-1])
        full_body = before_body + frames[-1]
        start, end = len(before_body), len(full_body)
        sectors = list(range(start // SECTOR, (end - 1) // SECTOR + 1))
        written = [s for s in sectors if self.rng.random() < 0.5]
        if len(written) == len(sectors):
            written.remove(self.rng.choice(sectors))
        img = bytearray(image_of(frames))
        img[start:end] = bytes(end - start)  # what those bytes were before: preallocated zeroes
        for s in written:
            chunk = full_body[s * SECTOR : (s + 1) * SECTOR]
            img[s * SECTOR : s * SECTOR + len(chunk)] = chunk
        before = replay(frames[:-1])
        ev = DamageEvent(
            "torn",
            node.id,
            self.now,
            f"{what}: record {len(frames)} (bytes {start}..{end}), sectors {written} of {sectors} written",
        )
        disk.pending = Pending(
            ev,
            bytes(img),
            {"cut": before, "whole": disk.state()},
            torn_hard_state=record_of(frames[-1]).hard_state,
        )
        self.events.append(ev)
        self.log(f"damage {node.id}: {ev.detail}")

    # -- other damage ----------------------------------------------------------------------

    def crash_damaged(
        self, nid: str, kind: str, *, records: int | None = None, unsafe: bool = False, record: int | None = None
    ) -> DamageEvent | None:
        """Crash ``nid`` (if up) with its persisted state damaged as ``kind`` says (see the module docstring).

        ``torn`` only plans it: the crash strikes in ``nid``'s next Ready, after
        persisting.  ``flip``: ``record`` (0-based) picks the record instead of the
        nemesis.  ``lost_tail``: ``records`` fixes k; ``unsafe`` drops the
        rules that keep it fair (its term/vote survive, the others hold what it loses).
        None if there was nothing to damage (the crash still happened).
        """
        if kind not in KINDS:
            raise ValueError(kind)
        if kind == "torn":
            self.crash_plan[nid] = 1
            self._tear_next.add(nid)
            return None
        node = self.nodes[nid]
        disk = node.disk
        assert isinstance(disk, WalDisk)
        self.crash(nid, f" (damaging its disk: {kind})")
        if disk.pending is not None or nid in self.refused:
            return None
        if kind == "flip":
            pending = self._flip(node, record)
        elif kind == "hard_state":
            pending = self._hard_state_back(node)
        else:
            pending = self._lose_tail(node, records, unsafe)
        if pending is None:
            self.log(f"damage {nid}: nothing to damage ({kind})")
            return None
        disk.pending = pending
        self.events.append(pending.event)
        self.log(f"damage {nid}: {pending.event.detail}")
        return pending.event

    def _flip(self, node: SimNode, record: int | None = None) -> Pending | None:
        assert isinstance(node.disk, WalDisk)
        frames = node.disk.frames
        n = len(frames)
        if record is not None:
            at = len(HEADER) + sum(len(f) for f in frames[:record])
            img = bytearray(image_of(frames))
            img[at + 10 : at + 14] = bytes(b ^ 0xFF for b in img[at + 10 : at + 14])
            got: tuple[bytes, int] | None = (bytes(img), at)
        else:
            got = flip_with_the_nemesis(image_of(frames), self.rng)
        if got is None:
            return None
        data, at = got
        return Pending(
            DamageEvent("flip", node.id, self.now, f"4 bytes flipped in the record at byte {at} ({n} records)"), data
        )

    def _hard_state_back(self, node: SimNode) -> Pending | None:
        disk = node.disk
        assert isinstance(disk, WalDisk)
        frames = disk.frames
        hs, j, prev_at_j = HardState(), None, HardState()
        for i, frame in enumerate(frames):
            rec_hs = record_of(frame).hard_state
            if rec_hs is not None:
                if (rec_hs.term, rec_hs.vote) != (hs.term, hs.vote):
                    j, prev_at_j = i, hs
                hs = rec_hs
        if j is None:
            return None
        start = len(HEADER) + sum(len(f) for f in frames[:j])
        end = start + len(frames[j])
        img = bytearray(image_of(frames))
        if j < len(frames) - 1:
            img[start:end] = bytes(end - start)
            how = f"reverted to zeroes ({len(frames) - 1 - j} record(s) after it)"
        else:
            at = self.rng.randrange(start + 8, end - 3)
            img[at : at + 4] = bytes(b ^ 0xFF for b in img[at : at + 4])
            how = "altered in place (it is the last record)"
        t = record_of(frames[j]).hard_state
        assert t is not None
        detail = (
            f"the record setting term {t.term} vote {t.vote} (record {j + 1} of {len(frames)}, byte {start}) {how}; "
            f"cut there, the node would be back at term {prev_at_j.term} vote {prev_at_j.vote}"
        )
        return Pending(DamageEvent("hard_state", node.id, self.now, detail), bytes(img))

    def _lose_tail(self, node: SimNode, records: int | None, unsafe: bool) -> Pending | None:
        disk = node.disk
        assert isinstance(disk, WalDisk)
        frames, cur = disk.frames, disk.hard_state
        n = len(frames)
        ks = [records] if records else list(range(1, min(self.cfg.lost_tail_records, n - 1) + 1))
        options = []
        for k in ks:
            if not 0 < k <= n:
                continue
            state = replay(frames[: n - k])
            if not unsafe and (state.hard_state.term, state.hard_state.vote) != (cur.term, cur.vote):
                break  # never across the record that set its term/vote
            lost = lost_entries(disk, state, self.ccheck.committed)
            if not lost:
                continue
            if not (unsafe or self.cfg.resurrect) and resurrected(disk, state, self.ccheck.committed):
                continue
            if not unsafe and not self._held_elsewhere(node.id, lost):
                break  # losing more only makes it worse
            options.append((k, state, lost))
        if not options:
            return None
        k, state, lost = options[self.rng.randrange(len(options))]
        detail = (
            f"a disk that lied about fsync: the last {k} of {n} records never reached it "
            f"(entries {_span(lost)} lost, term {state.hard_state.term} vote {state.hard_state.vote} "
            f"after, was {cur.term}/{cur.vote})"
        )
        ev = DamageEvent("lost_tail", node.id, self.now, detail, lost=lost)
        return Pending(ev, image_of(frames[: n - k]), {"opened": state})

    def _held_elsewhere(self, nid: str, lost: list[tuple[int, int]]) -> bool:
        """Every entry in ``lost`` is on a majority of every configuration in play, ``nid`` not counted."""
        configs: list[frozenset[str]] = [frozenset(self.check.committed_conf.voters)]
        for n in self.up():
            assert n.core is not None
            configs.append(frozenset(n.core.conf_state.voters))
        committed = self.ccheck.committed
        for conf in set(configs):
            need = len(conf) // 2 + 1
            holders = [self.nodes[m] for m in sorted(conf) if m != nid and self._intact(m)]
            for i, t in lost:
                if sum(1 for h in holders if isinstance(h.disk, WalDisk) and h.disk.holds(i, t, committed)) < need:
                    return False
        return True

    def _intact(self, nid: str) -> bool:
        node = self.nodes.get(nid)
        return (
            node is not None
            and nid not in self.refused
            and nid not in self.retired
            and isinstance(node.disk, WalDisk)
            and node.disk.pending is None
        )

    # -- starting again ---------------------------------------------------------------------

    def restart(self, nid: str) -> None:
        node = self.nodes[nid]
        if node.core is not None or nid in self.refused or nid in self.retired:
            return
        if self._open_disk(node):
            super().restart(nid)
            if self.tracking and self.tracking[-1].node == nid and self.tracking[-1].at_restart < 0:
                self._baseline(nid, self.tracking[-1])

    def _open_disk(self, node: SimNode) -> bool:
        """The node starts: its file goes through the real store.  False: refused (it stays down)."""
        disk = node.disk
        assert isinstance(disk, WalDisk)
        pending, disk.pending = disk.pending, None
        image = pending.image if pending is not None else image_of(disk.frames)
        res = self.read_wal(image)
        self.wal_opens += 1
        if pending is None:
            if res.refused or res.warnings or res.state != disk.state():
                raise InvariantViolation(
                    f"{node.id}: the real WAL reader disagrees with the sim's disk on a clean restart: "
                    f"refused={res.refused!r} warnings={res.warnings} loaded "
                    f"{None if res.state is None else (res.state.hard_state, len(res.state.entries))} "
                    f"vs {(disk.hard_state, len(disk.entries))}"
                )
            return True
        ev = pending.event
        if res.refused:
            if res.touched:
                raise InvariantViolation(f"{node.id}: the store refused its log ({res.refused}) but changed the file")
            ev.outcome, ev.reason = "refused", res.refused
            self.refused[node.id] = ev
            disk.damaged_image = image
            self.log(f"refused {node.id}: {res.refused}")
            return False
        assert res.state is not None
        ev.reason = "; ".join(res.warnings)
        if ev.kind in ("flip", "hard_state"):
            if self.strict:
                raise InvariantViolation(
                    f"never silent: {node.id} started on a damaged log ({ev.detail}); the store loaded it "
                    f"(term {res.state.hard_state.term}, last index "
                    f"{res.state.entries[-1].index if res.state.entries else '-'}) instead of refusing"
                )
            ev.outcome = "accepted"
        elif ev.kind == "torn":
            if res.state == pending.expect["cut"]:
                ev.outcome = "cut" if res.warnings else "absent"
                before = pending.expect["cut"].hard_state
                self.ccheck.forget_unreported(node.id, before, pending.torn_hard_state)
            elif res.state == pending.expect["whole"]:
                ev.outcome = "whole"
            elif self.strict:
                raise InvariantViolation(
                    f"torn write on {node.id} ({ev.detail}): the store loaded neither the state before "
                    f"the torn record nor the one with it -- it lost reported data"
                )
            else:
                ev.outcome = "accepted"
        else:  # lost_tail: the file is a clean, shorter log
            if self.strict and res.state != pending.expect["opened"]:
                raise InvariantViolation(f"{node.id}: the store did not load the shorter log ({ev.detail})")
            ev.outcome = "opened-silently" if not res.warnings else "opened-with-a-warning"
            self.tracking.append(ev)
        disk.adopt(res.state, res.frames)
        self.log(f"{node.id}: its store loaded the damaged log: {ev.outcome} {ev.reason}")
        return True

    # -- the operator ----------------------------------------------------------------------

    def _leader(self) -> SimNode | None:
        leaders = self.leaders()
        return max(leaders, key=lambda n: n.core.term if n.core is not None else -1) if leaders else None

    def operator_step(self) -> bool:
        """One thing an operator does for a refused node (see the module docstring); True if it did one."""
        for nid in sorted(self.refused):
            ev = self.refused[nid]
            if not ev.recovery:
                self._try_repair(nid)
                return True
            if ev.recovery == "wipe" and self._wipe_step(nid):
                return True
        return self._promote_step()

    def _try_repair(self, nid: str) -> None:
        ev, disk = self.refused[nid], self.disk(nid)
        assert disk.damaged_image is not None
        res = self.read_wal(disk.damaged_image, repair=True)
        if res.refused or res.state is None:
            ev.recovery, ev.repair = "wipe", f"--repair refused: {res.refused}"
            self.log(f"operator: --repair on {nid} refused; wiping it")
            return
        lost = lost_entries(disk, res.state, self.ccheck.committed)
        old, new = disk.hard_state, res.state.hard_state
        if self.strict and (new.term, new.vote) != (old.term, old.vote):
            raise InvariantViolation(
                f"--repair took {nid} from term {old.term} vote {old.vote} to {new.term}/{new.vote}"
            )
        stale = resurrected(disk, res.state, self.ccheck.committed)
        if stale and not self.cfg.resurrect:
            ev.recovery = "wipe"
            ev.repair = f"--repair would bring back overwritten entries {_span(stale)} (the heartbeat-commit bug)"
            self.log(f"operator: {ev.repair}; wiping {nid}")
            return
        if not self._held_elsewhere(nid, lost):
            ev.recovery = "wipe"
            ev.repair = f"--repair would drop entries {_span(lost)}, not held by a majority of the others"
            self.log(f"operator: --repair on {nid} is not safe ({ev.repair}); wiping it")
            return
        disk.adopt(res.state, res.frames)
        disk.damaged_image = None
        del self.refused[nid]
        report = res.repaired
        ev.recovery = (
            f"repaired with --repair ({report.records_dropped} record(s) from byte {report.offset} dropped, "
            f"entries {_span(lost)}; kept term {report.term} vote {report.vote})"
            if report is not None
            else "repaired with --repair"
        )
        ev.lost = lost
        self.tracking.append(ev)
        self.log(f"operator: {nid} {ev.recovery}")
        self.restart(nid)

    def _wipe_step(self, nid: str) -> bool:
        lead = self._leader()
        if lead is None:
            return False
        assert lead.core is not None
        ev = self.refused[nid]
        if nid not in self.retired:
            if nid in lead.core.conf_state.members:
                return self.conf_change(lead.id, ConfChange.remove(nid)) is not None
            if nid in self.check.committed_conf.members:
                return False  # its removal is not committed yet
            self.retire(nid)
            return True
        new = f"n{self._next_node}"
        if self.conf_change(lead.id, ConfChange.add_learner(new)) is None:
            return False
        self._next_node += 1
        self.add_node(new)
        del self.refused[nid]
        ev.recovery = f"wiped: removed, and an empty node joined as {new} (a learner, promoted once caught up)"
        self.replacements.append(new)
        return True

    def _promote_step(self) -> bool:
        lead = self._leader()
        if lead is None or not self.replacements:
            return False
        assert lead.core is not None
        for new in list(self.replacements):
            if new in self.check.committed_conf.voters:
                self.replacements.remove(new)
                continue
            conf = lead.core.conf_state
            if new in conf.voters:
                continue  # promoted; not committed yet
            if new not in conf.members:  # its add was truncated: again
                if self.conf_change(lead.id, ConfChange.add_learner(new)) is not None:
                    return True
                continue
            if lead.core.is_caught_up(new) and self.conf_change(lead.id, ConfChange.promote(new)) is not None:
                return True
        return False

    def recover(self, rounds: int = 600) -> None:
        """Heal everything, then the operator brings every refused node back (for the liveness phase)."""
        self.heal_everything()
        for _ in range(rounds):
            if not self.refused and not self.replacements:
                return
            self.operator_step()
            self.after_event()
            self.round()
        raise InvariantViolation(
            f"the operator could not bring back {sorted(self.refused)} (promoting {self.replacements}) "
            f"within {rounds} rounds\n{self.describe()}"
        )

    # -- the cluster noticing a node that lost acknowledged entries -------------------------

    def _baseline(self, nid: str, ev: DamageEvent) -> None:
        ev.at_restart = self.now
        for lead in self.leaders():
            pr = lead.core.progress(nid) if lead.core is not None else None
            if pr is not None and lead.core is not None:
                ev.baselines[(lead.id, lead.incarnation, lead.core.term)] = pr.regressions

    def check_invariants(self) -> None:
        super().check_invariants()
        if self.tracking:
            self._watch_regressions()

    def _watch_regressions(self) -> None:
        for ev in self.tracking:
            nid = ev.node
            x = self.nodes[nid]
            for lead in self.leaders():
                core = lead.core
                assert core is not None
                pr = core.progress(nid) if lead.id != nid else None
                if pr is None:
                    continue
                key = (lead.id, lead.incarnation, core.term)
                base = ev.baselines.setdefault(key, 0)
                if pr.regressions > base:
                    ev.regressions += pr.regressions - base
                    ev.baselines[key] = pr.regressions
                    ev.windows.pop(key, None)
                elif x.core is not None and core.term >= x.core.term and pr.match > x.disk.last_index:
                    if key not in ev.windows:
                        ev.windows[key] = self.now
                        ev.believed += 1
                elif key in ev.windows and pr.match <= x.disk.last_index:
                    del ev.windows[key]
                    ev.caught_up += 1
            for key in list(ev.windows):
                lid, inc, term = key
                lead = self.nodes[lid]
                if lead.core is None or lead.incarnation != inc or lead.core.role != "leader" or lead.core.term != term:
                    del ev.windows[key]
                    ev.moot += 1

    # -- the end of a run --------------------------------------------------------------------

    def final_check(self) -> None:
        """After the liveness phase: nothing was accepted silently, every acknowledged write is everywhere."""
        for ev in self.events:
            if ev.outcome == "pending":
                raise InvariantViolation(f"damage never judged (the node never started again): {ev}")
            if ev.kind in ("flip", "hard_state") and ev.outcome != "refused":
                raise InvariantViolation(f"never silent: {ev}")
            if ev.windows:
                raise InvariantViolation(
                    f"silent: a leader still counts {ev.node} as holding entries it lost ({ev.windows}): {ev}"
                )
        lead = self.stable_leader()
        members = [n for n in self.members(lead) if n.sm is not None]
        for i, e in sorted(self.ccheck.acked.items()):
            for n in members:
                assert n.sm is not None
                if n.sm.applied < i:
                    raise InvariantViolation(f"acknowledged write at {i} ({e.data[:20]!r}) not applied on {n.id}")

    def describe(self) -> str:
        out = super().describe()
        if self.refused:
            out += "\n  refused: " + "; ".join(f"{k}: {v.reason}" for k, v in sorted(self.refused.items()))
        return out

    def outcomes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for ev in self.events:
            counts[f"{ev.kind}:{ev.outcome}"] = counts.get(f"{ev.kind}:{ev.outcome}", 0) + 1
        return counts
