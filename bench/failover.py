"""Failover time: from SIGKILL of the leader to the first committed write through a survivor.

    .venv/bin/python bench/failover.py [--trials 10]

Each trial: wait for a healthy 3-node cluster, SIGKILL the leader, then send
``POST /kv/put`` to a surviving node until one is answered 200 (the node
forwards to the new leader once it is elected); the time from the kill to
that answer is the failover time.  The killed node is restarted and caught
up before the next trial.  Prints median, p90 and max.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

# bench/queue.py would shadow the standard library's queue module (which the
# launcher's thread pool imports): bench/ goes to the end of the path instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from httpcall import post
from loadgen import print_table
from rakit.launcher import LocalCluster


def caught_up(cluster: LocalCluster) -> bool:
    statuses = cluster.statuses()
    if any(s is None for s in statuses.values()):
        return False
    leaders = {s["leader_id"] for s in statuses.values()}
    applied = {s["last_applied"] for s in statuses.values()}
    return len(leaders) == 1 and None not in leaders and len(applied) == 1


def trial(cluster: LocalCluster, n: int) -> float:
    leader = cluster.wait_for_leader(timeout=15)
    status, _ = post(cluster.nodes[leader].url + "/kv/put", {"key": "warm", "value": n}, timeout=5)
    assert status == 200, status
    survivor = next(i for i in cluster.nodes if i != leader)
    killed_at = time.perf_counter()
    cluster.nodes[leader].kill()
    deadline = killed_at + 30
    while time.perf_counter() < deadline:
        status, _ = post(cluster.nodes[survivor].url + "/kv/put", {"key": "failover", "value": n}, timeout=3)
        if status == 200:
            took = time.perf_counter() - killed_at
            break
        time.sleep(0.005)
    else:
        raise RuntimeError("no write committed within 30 s of the kill")
    cluster.nodes[leader].start()
    cluster.wait_until(lambda: caught_up(cluster), 30, "the restarted node to catch up")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    times = []
    with tempfile.TemporaryDirectory(prefix="rakit-failover-") as tmp:
        with LocalCluster(3, Path(tmp), redis_url="redis://127.0.0.1:6379/15") as cluster:
            for n in range(args.trials):
                times.append(trial(cluster, n))
                print(f"trial {n + 1}: {times[-1] * 1000:.0f} ms", flush=True)
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    print_table(
        "Failover: SIGKILL leader → first committed write via a survivor (3 nodes)",
        [
            [
                str(len(times)),
                f"{statistics.median(times) * 1000:.0f}",
                f"{p90 * 1000:.0f}",
                f"{max(times) * 1000:.0f}",
                f"{min(times) * 1000:.0f}",
            ]
        ],
        ["trials", "median ms", "p90 ms", "max ms", "min ms"],
    )


if __name__ == "__main__":
    main()
