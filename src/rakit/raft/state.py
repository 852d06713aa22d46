"""The fields of one node's Raft state, shared by the halves of ``RaftCore``.

Pure: no I/O, no clock.  ``RaftCore`` (``rakit.raft.core``) is built from two
mixins on this base, as etcd's raft.go splits its step functions from its
state: :class:`~rakit.raft.election.ElectionMixin` (terms, votes, role
changes, leadership transfer) and
:class:`~rakit.raft.replication.ReplicationMixin` (appends, snapshots,
heartbeats, commit).  Both act on the fields declared here; ``RaftCore``
sets them in its ``__init__``.  What one half calls in the other (or in the
core) is an abstract method here, so neither mixin imports the other.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable

from rakit.raft.config import RaftConfig
from rakit.raft.log import RaftLog
from rakit.raft.membership import ConfHistory
from rakit.raft.messages import AnyMessage, AppendEntries, ConfState, Entry, Heartbeat, InstallSnapshot, ReadState
from rakit.raft.progress import Progress
from rakit.raft.readonly import ReadOnly
from rakit.raft.roles import Role


class RaftState(ABC):
    _id: str
    _config: RaftConfig
    _rng: random.Random
    _log: RaftLog
    # Membership (rule 12): the history of configurations and the one in force.
    _confs: ConfHistory
    _conf: ConfState
    _voters: list[str]
    _term: int
    _vote: str | None
    _leader_id: str | None
    _role: Role
    _step: Callable[[AnyMessage], None]
    _tick: Callable[[], None]
    # Elections (rules 3, 4): ticks since we heard a leader (or, as leader, since the
    # last quorum check), the timeout drawn for them, the answers of this election.
    _election_elapsed: int
    _randomized_timeout: int
    _votes: dict[str, bool]
    # Leader only: its first index of the term, its tick count, a transfer (rule 17).
    _term_start: int
    _leader_ticks: int
    _transfer_target: str | None
    _transfer_elapsed: int
    _timeout_now_sent: bool
    # Replication (rules 7-9).
    _heartbeat_elapsed: int
    _progress: dict[str, Progress]
    # Rule 8: the last index this follower's log is known to share with the leader of this term.
    _leader_match: int
    follower_regressions: int  # rule 7: followers found to have lost acknowledged entries
    _msgs: list[AnyMessage]
    _reads: ReadOnly  # ReadIndex: held and pending reads (rule 10)
    _read_states: list[ReadState]

    def _peers(self) -> list[str]:
        """Every member but us: whom a leader replicates to."""
        return [m for m in self._conf.members if m != self._id]

    def _send(self, msg: AnyMessage) -> None:
        self._msgs.append(msg)

    # -- given by ReplicationMixin -------------------------------------------------

    @abstractmethod
    def _step_leader(self, msg: AnyMessage) -> None: ...

    @abstractmethod
    def _tick_replication(self) -> None: ...

    @abstractmethod
    def _handle_from_leader(self, msg: AppendEntries | Heartbeat | InstallSnapshot) -> None: ...

    @abstractmethod
    def _append(self, entries: list[Entry]) -> None: ...

    # -- given by ElectionMixin ----------------------------------------------------

    @abstractmethod
    def _become_follower(self, term: int, leader_id: str | None) -> None: ...

    @abstractmethod
    def _maybe_send_timeout_now(self) -> None: ...

    # -- given by RaftCore ---------------------------------------------------------

    @property
    @abstractmethod
    def pending_conf_index(self) -> int: ...

    @abstractmethod
    def _release_held_reads(self) -> None: ...

    @abstractmethod
    def _set_conf(self, conf: ConfState) -> None: ...


__all__ = ["RaftState"]
