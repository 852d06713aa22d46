"""``rakit recover``: start over from one node's data dir when the cluster is lost for good.

For the day a majority of the members is gone and cannot come back (disks
lost, or a cluster wedged for good): the idea of etcd's
``--force-new-cluster``.  Offline, with the node stopped:

1. Its state machines are rebuilt from its snapshot and *every* entry of its
   log, also those past its saved commit index.  The commit index on disk
   lags (it is saved with the next write, not fsynced on its own), so an
   entry past it may well have been committed and acknowledged; an entry
   that was not is a write whose client saw an error or a timeout, which
   Raft always allows to take effect later.  Keeping them loses the fewest
   acknowledged writes (etcd's ``--force-new-cluster`` drops them instead);
   the command says how many there were.
2. The address book and the configuration become this node alone
   (``voters = [id]``), at its commit index, and the Raft log is rewritten
   as one snapshot of that state.  The term and vote are kept (never lowered).
3. The old ``raft.wal`` is kept beside it (``raft.wal.before-recover-<time>``),
   never deleted.

Then ``rakit node --id <id> --peers <id>=<url> --data-dir <dir>`` serves a
one-member cluster holding everything this node had committed, and the
others join it again with empty data dirs (``rakit node --join``, then
``rakit member promote``).  Acknowledged writes this node had not yet
received are lost: that is what losing a majority means, and why this is an
explicit, offline command.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from rakit.raft.messages import (
    ENTRY_CONF,
    ENTRY_NORMAL,
    HardState,
    Snapshot,
    SnapshotMeta,
    decode_conf_entry,
)
from rakit.statemachines.kv import KvStore
from rakit.statemachines.locks import LockTable
from rakit.statemachines.members import MembersMachine
from rakit.statemachines.registry import Registry
from rakit.storage.base import LoadedState
from rakit.storage.datadir import LOG_FILE, DataDirError, open_data_dir
from rakit.storage.file_store import create_from


class RecoverError(Exception):
    """Recovery cannot go on; the message is one line for a human."""


@dataclass(frozen=True)
class Recovered:
    index: int
    term: int
    past_commit: int
    backup: Path


def recover(data_dir: str | os.PathLike[str], node_id: str, url: str) -> Recovered:
    try:
        with open_data_dir(data_dir) as directory:  # fails if the node is still running (its lock)
            store = directory.log_store()
            loaded = store.load()
            store.close()
            return _rewrite(Path(directory.path), loaded, node_id, url)
    except DataDirError as exc:
        raise RecoverError(str(exc)) from None


def _rewrite(path: Path, loaded: LoadedState, node_id: str, url: str) -> Recovered:
    members = MembersMachine()
    machines = Registry([LockTable(), KvStore(), members])
    hard_state = loaded.hard_state
    index = term = 0
    if loaded.snapshot is not None:
        machines.restore(loaded.snapshot.data)
        index, term = loaded.snapshot.meta.index, loaded.snapshot.meta.term
    for entry in loaded.entries:  # rule 1
        if entry.kind == ENTRY_NORMAL:
            machines.apply(entry.index, entry.data)
        elif entry.kind == ENTRY_CONF:
            conf_entry = decode_conf_entry(entry.data)
            if conf_entry is not None:
                members.apply_conf(entry.index, conf_entry)
        index, term = entry.index, entry.term
    if index == 0:
        raise RecoverError(f"{path} holds no Raft state to recover (an empty or new data dir)")
    members.addresses = {node_id: url}  # rule 2
    members.members, members.generation = (node_id,), index
    snapshot = Snapshot(SnapshotMeta(index=index, term=term, voters=[node_id]), machines.snapshot())
    state = LoadedState(HardState(max(hard_state.term, term), hard_state.vote, index), snapshot, [])
    log_path = path / LOG_FILE
    backup = log_path.with_name(f"{LOG_FILE}.before-recover-{time.strftime('%Y%m%dT%H%M%S')}")
    os.replace(log_path, backup)  # rule 3
    try:
        create_from(log_path, state)
    except OSError as exc:
        os.replace(backup, log_path)
        raise RecoverError(f"cannot write the recovered log in {path}: {exc.strerror}") from None
    return Recovered(index, term, sum(e.index > hard_state.commit for e in loaded.entries), backup)
