"""Leadership transfer vs. crash failover, measured in the same run on one 3-node cluster.

    .venv/bin/python bench/transfer.py [--trials 10]

Transfer trial: ``POST /cluster/transfer-leader`` to the leader, naming a
follower; measured are the hand-over (request sent → answered: the target
leads) and the write gap (request sent → the first ``POST /kv/put``
committed through the third node, which forwards to whoever leads).
Failover trial (``bench/failover.py``): SIGKILL the leader → the first
committed write through a survivor.  Prints median, p90 and max of each and
the ratio of the medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from failover import caught_up
from failover import trial as failover_trial
from httpcall import call, post
from loadgen import print_table
from rakit.launcher import LocalCluster


def transfer_trial(cluster: LocalCluster, n: int) -> tuple[float, float]:
    cluster.wait_until(lambda: caught_up(cluster), 30, "every node to catch up")
    leader = cluster.wait_for_leader(timeout=15)
    target, third = sorted(i for i in cluster.nodes if i != leader)[:2]
    status, _ = post(cluster.nodes[leader].url + "/kv/put", {"key": "warm", "value": n}, timeout=5)
    assert status == 200, status
    started = time.perf_counter()
    status, body = call(
        "POST",
        cluster.nodes[leader].url + "/cluster/transfer-leader",
        {"to": target},
        timeout=5,
        secret=cluster.cluster_secret,
    )
    handed_over = time.perf_counter() - started
    assert status == 200 and body["leader"] == target, (status, body)
    deadline = started + 30
    while time.perf_counter() < deadline:
        status, _ = post(cluster.nodes[third].url + "/kv/put", {"key": "transfer", "value": n}, timeout=3)
        if status == 200:
            return handed_over, time.perf_counter() - started
        time.sleep(0.002)
    raise RuntimeError("no write committed within 30 s of the transfer")


def row(name: str, times: list[float]) -> list[str]:
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return [
        name,
        str(len(times)),
        f"{statistics.median(times) * 1000:.0f}",
        f"{p90 * 1000:.0f}",
        f"{max(times) * 1000:.0f}",
        f"{min(times) * 1000:.0f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    hand, gap, crash = [], [], []
    with tempfile.TemporaryDirectory(prefix="rakit-transfer-") as tmp:
        with LocalCluster(3, Path(tmp), redis_url="redis://127.0.0.1:6379/15") as cluster:
            for n in range(args.trials):
                h, g = transfer_trial(cluster, n)
                hand.append(h)
                gap.append(g)
                print(f"transfer {n + 1}: hand-over {h * 1000:.0f} ms, write gap {g * 1000:.0f} ms", flush=True)
            for n in range(args.trials):
                crash.append(failover_trial(cluster, n))
                print(f"failover {n + 1}: {crash[-1] * 1000:.0f} ms", flush=True)
    print_table(
        "Leadership transfer vs. crash failover (3 nodes, same cluster, same run)",
        [row("transfer: hand-over", hand), row("transfer: write gap", gap), row("crash: SIGKILL → first write", crash)],
        ["measure", "trials", "median ms", "p90 ms", "max ms", "min ms"],
    )
    print(f"median write gap, transfer / crash failover: {statistics.median(gap) / statistics.median(crash):.2f}×")


if __name__ == "__main__":
    main()
