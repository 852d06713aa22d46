"""Per-Ready persistence cost with fsync on: FileLogStore against SQLite and a bare fdatasync.

Each save() is one Raft Ready: a hard state plus a batch of entries, made
durable before it returns.  Rows, all in one run on the same disk:

- ``bare fdatasync``: pwrite of the same bytes into a preallocated file and
  ``fdatasync`` -- the floor any log store pays;
- ``FileLogStore``: the node's store (one record, one fdatasync per save);
- ``SQLiteLogStore``: the store before it (WAL, synchronous=FULL), kept to
  migrate old data dirs.

Each at 1 and 3 writers (processes writing their own store at once, as the
three nodes of a local cluster do), batch sizes 1 and 64.  Run from the
checkout:

    .venv/bin/python bench/storage_append.py [--seconds 2] [--size 128] [--dir DIR]

The stores live in a temporary directory under --dir (default: the current
directory, so the disk is the one a node's data dir would use -- /tmp may
be a tmpfs where fsync costs nothing).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# bench/queue.py would shadow the standard library's queue module (which
# multiprocessing imports): bench/ goes to the end of the path instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]

from rakit.raft.messages import Entry, HardState
from rakit.storage.file_store import FileLogStore
from rakit.storage.sqlite_store import SQLiteLogStore

KINDS = ("bare fdatasync", "FileLogStore", "SQLiteLogStore")
BATCH_SIZES = (1, 64)
WRITERS = (1, 3)


def _saver(kind: str, path: str, size: int) -> Callable[[list[Entry], int], None]:
    if kind == "FileLogStore":
        store = FileLogStore(path)
        return lambda entries, last: store.save(HardState(term=1, vote="n1", commit=last), entries)
    if kind == "SQLiteLogStore":
        sqlite = SQLiteLogStore(path)
        return lambda entries, last: sqlite.save(HardState(term=1, vote="n1", commit=last), entries)
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    os.posix_fallocate(fd, 0, 256 << 20)
    os.fsync(fd)
    offset = 0

    def bare(entries: list[Entry], last: int) -> None:
        nonlocal offset
        data = b"".join(e.data for e in entries) + bytes(24 * len(entries) + 40)
        os.pwrite(fd, data, offset)
        os.fdatasync(fd)
        offset += len(data)

    return bare


def _writer(kind: str, path: str, batch: int, seconds: float, size: int, start_at: float) -> list[float]:
    save = _saver(kind, path, size)
    data = os.urandom(size)
    last, times = 0, []
    while time.time() < start_at:
        time.sleep(0.001)
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop:
        entries = [Entry(term=1, index=i, data=data) for i in range(last + 1, last + 1 + batch)]
        last += batch
        t0 = time.perf_counter()
        save(entries, last)
        times.append(time.perf_counter() - t0)
    return times


def run(tmp: str, kind: str, writers: int, batch: int, seconds: float, size: int) -> tuple[float, float, float]:
    """Saves per second per writer, p50 and p99 in ms."""
    start_at = time.time() + 0.5  # every writer has opened its store by then
    args = [
        (kind, os.path.join(tmp, f"{kind[:4]}-{writers}-{batch}-{w}"), batch, seconds, size, start_at)
        for w in range(writers)
    ]
    with multiprocessing.get_context("spawn").Pool(writers) as pool:
        results = pool.starmap(_writer, args)
    times = sorted(t for r in results for t in r)
    per_writer = len(times) / writers / seconds
    return per_writer, times[len(times) // 2] * 1e3, times[min(len(times) - 1, int(len(times) * 0.99))] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per row")
    parser.add_argument("--size", type=int, default=128, help="bytes of data per entry")
    parser.add_argument("--dir", default=".", help="where to put the temporary stores")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rakit-bench-", dir=args.dir) as tmp:
        print(f"{args.size}-byte entries, a hard state per save, in {tmp}")
        print(
            f"{'store':<16} {'writers':>7} {'batch':>5} {'saves/s/writer':>14} {'p50 ms':>7} "
            f"{'p99 ms':>7} {'p50 / bare':>10}"
        )
        for writers in WRITERS:
            for batch in BATCH_SIZES:
                floor = None
                for kind in KINDS:
                    rate, p50, p99 = run(tmp, kind, writers, batch, args.seconds, args.size)
                    floor = floor or p50
                    print(
                        f"{kind:<16} {writers:>7} {batch:>5} {rate:>14,.0f} {p50:>7.3f} {p99:>7.3f} "
                        f"{p50 / floor:>9.2f}×"
                    )


if __name__ == "__main__":
    main()
