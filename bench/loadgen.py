"""A small closed-loop HTTP load generator shared by the benchmarks.

``run_load`` keeps ``concurrency`` requests in flight for ``duration``
seconds (after a short warm-up), each worker sending its next request as soon
as the previous one is answered, and reports ops/s, p50 and p99 latency and
the error count.  It runs in the calling process on the lean keep-alive
client of ``fasthttp`` (one connection per worker), so that the generator
takes as little as possible of the CPU the measured servers share with it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fasthttp import Connection, HttpError

RequestFn = Callable[[int, int], tuple[str, str, Any]]  # (worker, seq) -> (method, url, json body)


@dataclass
class LoadResult:
    name: str
    concurrency: int
    ops: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    def row(self) -> list[str]:
        return [
            self.name,
            str(self.concurrency),
            f"{self.ops_per_s:,.0f}",
            f"{self.pct(50):.2f}",
            f"{self.pct(99):.2f}",
            str(self.errors),
        ]


HEADERS = ["workload", "conc", "ops/s", "p50 ms", "p99 ms", "errors"]


async def run_load(
    name: str,
    request: RequestFn,
    concurrency: int,
    duration: float,
    warmup: float = 0.5,
    ok: Callable[[int], bool] = lambda s: 200 <= s < 300,
    timeout: float = 10.0,
) -> LoadResult:
    result = LoadResult(name, concurrency)
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration

    async def worker(w: int) -> None:
        conn = Connection(timeout)
        seq = 0
        while True:
            method, url, body = request(w, seq)
            seq += 1
            t0 = time.perf_counter()
            if t0 >= stop_at:
                conn.close()
                return
            status: int | str
            try:
                status, _ = await conn.request(method, url, body)
                good = ok(status)
            except HttpError as exc:
                good, status = False, str(exc)
            t1 = time.perf_counter()
            if t0 >= measure_from and t1 <= stop_at:
                if good:
                    result.ops += 1
                    result.latencies.append(t1 - t0)
                else:
                    result.errors += 1
                    if len(result.error_samples) < 5:
                        result.error_samples.append(str(status))

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    result.seconds = duration
    progress(result)
    return result


def merge(results: list[LoadResult]) -> LoadResult:
    """One row from the slices of a row measured in turns (ops, seconds and latencies pooled)."""
    first = results[0]
    merged = LoadResult(first.name, first.concurrency)
    for r in results:
        merged.ops += r.ops
        merged.errors += r.errors
        merged.seconds += r.seconds
        merged.latencies.extend(r.latencies)
        merged.error_samples.extend(r.error_samples[: 5 - len(merged.error_samples)])
    return merged


def progress(result: LoadResult) -> None:
    """One line on stderr per finished row, so a long bench shows where it is (stdout keeps the tables)."""
    print(
        f"  done: {result.name:<34} c={result.concurrency:<3} {result.ops_per_s:>9,.0f} ops/s  "
        f"p50 {result.pct(50):7.2f} ms  p99 {result.pct(99):7.2f} ms  errors {result.errors}",
        file=sys.stderr,
        flush=True,
    )


class OpError(Exception):
    """An op that did not complete: counted as an error, the message kept as a sample."""


# op(connection, worker, seq) -> None, raising when it failed.
Op = Callable[[Connection, int, int], Awaitable[None]]


async def run_ops(
    name: str, op: Op, concurrency: int, duration: float, warmup: float = 0.5, timeout: float = 10.0
) -> LoadResult:
    """``run_load`` for ops made of several dependent requests: each worker runs ``op``
    back to back on its own connection; an op counts if it started after the warm-up and
    ended in time.  Any exception is a failed op (OpError carries the server's answer)."""
    result = LoadResult(name, concurrency)
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration

    async def worker(w: int) -> None:
        conn = Connection(timeout)
        seq = 0
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                conn.close()
                return
            try:
                await op(conn, w, seq)
                good, error = True, ""
            except OpError as exc:
                good, error = False, str(exc)
            except Exception as exc:
                good, error = False, f"{type(exc).__name__} {exc}".strip()
            seq += 1
            t1 = time.perf_counter()
            if t0 >= measure_from and t1 <= stop_at:
                if good:
                    result.ops += 1
                    result.latencies.append(t1 - t0)
                else:
                    result.errors += 1
                    if len(result.error_samples) < 3 and error not in result.error_samples:
                        result.error_samples.append(error)
            elif not good and t1 <= stop_at:
                await asyncio.sleep(0.01)  # failing during warm-up: do not spin

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    result.seconds = duration
    progress(result)
    return result


def bench_args(doc: str | None, extra: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """The common command line of the rakit-vs-etcd benchmarks (plus ``extra``'s options, a parser made
    with ``add_help=False``); also installs uvloop."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter, parents=[extra] if extra else []
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured per row")
    parser.add_argument("--no-etcd", action="store_true", help="skip the etcd baseline")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="slices each row's duration is cut into, taken in turn with the other "
        "rows of its concurrency (the machine's drift then hits every row alike)",
    )
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    return args


def print_table(title: str, rows: list[list[str]], headers: list[str] = HEADERS) -> None:
    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for h in headers:
            table.add_column(h, justify="left" if h in ("workload", "target") else "right")
        for r in rows:
            table.add_row(*r)
        Console(width=140).print(table)
    except ImportError:  # pragma: no cover
        print(title)
        for r in [headers, *rows]:
            print("  ".join(f"{c:>14}" for c in r))
