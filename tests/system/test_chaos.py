"""The chaos suite end to end, as CI runs it: one short seeded ``rakit chaos`` run must find nothing.

Real nodes and Redis in their own network namespaces, every nemesis kind,
the three workloads; the command exits 0 only when every checker found zero
violations.  About 100 s in all.  Longer runs (10+ minutes, several seeds)
are for releases: see the README, "Chaos testing".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rakit.chaos import netns

SEED = 7
DURATION = 75


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    reason = netns.available()
    if reason is not None:
        # CI runs as root on Linux with iproute2: there a missing testbed is a failure, elsewhere a skip.
        if os.environ.get("CI"):
            pytest.fail(f"network namespaces unavailable on CI: {reason}", pytrace=False)
        pytest.skip(f"no network namespaces here: {reason}")
    out = tmp_path_factory.mktemp("chaos")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rakit",
            "chaos",
            "--duration",
            str(DURATION),
            "--nemesis",
            "all",
            "--seed",
            str(SEED),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=DURATION + 150,
    )
    return proc, out


@pytest.mark.timeout(DURATION + 200)
def test_seeded_run_with_every_nemesis_finds_no_violation(run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, out = run
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else None
    assert proc.returncode == 0, f"rakit chaos exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert summary is not None and summary["valid"] is True
    assert summary["seed"] == SEED
    assert sum(summary["faults"].values()) >= 6  # faults were really injected
    for name in ("locks", "queue", "cache"):
        w = summary["workloads"][name]
        assert w["violations"] == 0, w["first_violations"]
        assert w["ok"] > 100, f"{name}: too few successful operations to judge anything"
    locks = summary["workloads"]["locks"]["stats"]
    assert locks["minority_grants"] == 0
    if locks["partition_seconds"] > 0:
        assert locks["majority_grants_during_partitions"] > 0  # the majority side kept granting
    queue = summary["workloads"]["queue"]["stats"]
    assert queue["lost"] == 0 and queue["undelivered"] == 0
    assert summary["final"]["queue_drained"] is True
    for name in ("kv", "kv-counters"):  # linearizable registers, CAS counters with no lost increment
        w = summary["workloads"][name]
        assert w["violations"] == 0, w["first_violations"]
        assert w["ok"] > 100, f"{name}: too few successful operations to judge anything"
    assert summary["final"]["kv_counters_read"] is True


def test_run_leaves_history_plot_and_no_test_hosts(run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, out = run
    history = (out / "history.jsonl").read_text().splitlines()
    kinds = {json.loads(line)["kind"] for line in history}
    assert kinds == {"meta", "op", "fault"}
    assert (out / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "violations" in proc.stdout and f"seed {SEED}" in proc.stdout
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    assert not any(line.startswith("rk") and "-node" in line for line in namespaces.splitlines()), namespaces
