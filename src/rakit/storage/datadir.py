"""A node's data directory: created, checked writable and locked at start.

Rules:

1. ``open_data_dir(path)`` creates the directory (parents too), proves it
   writable by writing, fsyncing and removing a probe file, then takes an
   exclusive, non-blocking ``flock`` on ``<dir>/LOCK`` and writes its pid
   there.  Two nodes (two processes, or two opens in one process) can
   therefore never share a data dir.
2. Every failure is one ``DataDirError`` whose message is a single human
   line naming the path and the cause -- the CLI prints it and exits.  That
   includes a Raft log that cannot be read (not a rakit log, from a newer
   rakit): the node opens it before it binds its port.
3. The lock lives as long as the open file: ``DataDir.close()`` (or process
   death, SIGKILL included) releases it.  The LOCK file itself is left in
   place; a stale file without a lock holder means nothing.
4. ``DataDir.log_store()`` opens ``<dir>/raft.wal`` once and hands out the
   same ``FileLogStore``; ``close()`` closes it before dropping the lock.
5. A data dir written by an older rakit holds ``raft.db`` (the SQLite
   store) instead: its state is copied into a new ``raft.wal`` (written
   whole, then renamed into place), and only then is ``raft.db`` deleted.
   A ``raft.db`` beside a ``raft.wal`` is therefore a finished migration's
   leftover and is deleted too.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import tempfile
from pathlib import Path

from rakit.storage.file_store import FileLogStore, WalError, create_from
from rakit.storage.sqlite_store import SQLiteLogStore

log = logging.getLogger(__name__)

LOCK_FILE = "LOCK"
LOG_FILE = "raft.wal"
OLD_LOG_DB = "raft.db"


class DataDirError(Exception):
    """The data dir cannot be used; the message is one line for a human."""


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc).splitlines()[0]


class DataDir:
    def __init__(self, path: Path, lock_fd: int, repair_log: bool = False) -> None:
        self.path = path
        self.repair_log = repair_log
        self._lock_fd: int | None = lock_fd
        self._store: FileLogStore | None = None

    def log_store(self) -> FileLogStore:
        if self._lock_fd is None:
            raise DataDirError(f"data dir {self.path} is closed")
        if self._store is None:
            try:
                self._migrate_sqlite()
                self._store = FileLogStore(self.path / LOG_FILE, repair=self.repair_log)
            except (WalError, OSError, sqlite3.Error) as exc:
                raise DataDirError(f"cannot open the Raft log in {self.path}: {exc}") from exc
        return self._store

    def _migrate_sqlite(self) -> None:
        """Rule 5: an older rakit's ``raft.db`` becomes a ``raft.wal``."""
        old, new = self.path / OLD_LOG_DB, self.path / LOG_FILE
        if not old.exists():
            return
        if not new.exists():
            store = SQLiteLogStore(old)
            try:
                state = store.load()
            finally:
                store.close()
            create_from(new, state)
            log.info("%s: moved the Raft log from %s to %s", self.path, old.name, new.name)
        for leftover in (old, old.with_name(old.name + "-wal"), old.with_name(old.name + "-shm")):
            leftover.unlink(missing_ok=True)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    def __enter__(self) -> DataDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_data_dir(path: str | os.PathLike[str], repair_log: bool = False) -> DataDir:
    path = Path(path).absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataDirError(f"cannot create data dir {path}: {_why(exc)}") from exc
    if not path.is_dir():
        raise DataDirError(f"data dir {path} exists but is not a directory")

    try:
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=path)
        try:
            os.write(fd, b"rakit")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise DataDirError(f"data dir {path} is not writable: {_why(exc)}") from exc

    lock_path = path / LOCK_FILE
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise DataDirError(f"cannot open lock file {lock_path}: {_why(exc)}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _read_pid(fd)
        os.close(fd)
        if isinstance(exc, BlockingIOError):
            by = f" (pid {holder})" if holder else ""
            raise DataDirError(f"data dir {path} is in use by another node{by}") from exc
        raise DataDirError(f"cannot lock {lock_path}: {_why(exc)}") from exc
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        dir_fd = os.open(path, os.O_RDONLY)  # make the new entries durable
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        os.close(fd)
        raise DataDirError(f"cannot write lock file {lock_path}: {_why(exc)}") from exc
    return DataDir(path, fd, repair_log)


def _read_pid(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
