"""Per-Ready persistence cost: SQLiteLogStore.save() with fsync on.

Each save() is one Raft Ready: a hard state plus a batch of entries, one
transaction, one WAL fsync.  Run from the checkout:

    .venv/bin/python bench/storage_append.py [--seconds 2] [--size 128] [--dir DIR]

The store lives in a temporary directory under --dir (default: the current
directory, so the disk is the one a node's data dir would use -- /tmp may
be a tmpfs where fsync costs nothing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from rakit.raft.messages import Entry, HardState
from rakit.storage.sqlite_store import SQLiteLogStore

BATCH_SIZES = (1, 16, 64, 256)


def run(path: str, batch: int, seconds: float, size: int) -> tuple[float, float, float, float]:
    store = SQLiteLogStore(path)
    data = os.urandom(size)
    last, times = 0, []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        entries = [Entry(term=1, index=i, data=data) for i in range(last + 1, last + 1 + batch)]
        last += batch
        t0 = time.perf_counter()
        store.save(HardState(term=1, vote="n1", commit=last), entries)
        times.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    store.close()
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return len(times) / elapsed, last / elapsed, statistics.median(times) * 1e3, p99 * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per batch size")
    parser.add_argument("--size", type=int, default=128, help="bytes of data per entry")
    parser.add_argument("--dir", default=".", help="where to put the temporary store")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rakit-bench-", dir=args.dir) as tmp:
        print(f"SQLiteLogStore, WAL + synchronous=FULL, {args.size}-byte entries, in {tmp}")
        print(f"{'batch':>6} {'batches/s':>10} {'entries/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
        for batch in BATCH_SIZES:
            path = os.path.join(tmp, f"b{batch}.db")
            bps, eps, p50, p99 = run(path, batch, args.seconds, args.size)
            print(f"{batch:>6} {bps:>10.0f} {eps:>10.0f} {p50:>8.3f} {p99:>8.3f}")


if __name__ == "__main__":
    main()
