"""What the simulations of real state machines share: the chaos mix, one checked run, the mutant hunt.

``test_lock_table_sim``, ``test_coordination_sim`` and ``test_kv_sim`` drive
a real ``Registry`` on every simulated node (their ``LockCluster``
subclasses); this module runs one such cluster through chaos and liveness
with the final check, and looks for the first run where a broken machine
is caught.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import replace
from typing import Any

import pytest

from .harness import InvariantViolation, SimConfig

# The event mix of every profile (a profile overrides what it stresses more).
CHAOS_COMMON: dict[str, Any] = dict(
    steps=1000,
    w_propose=16,
    w_crash=0.6,
    crash_in_ready=0.02,
    w_partition=1.5,
    w_heal=1.0,
    drop=0.1,
    duplicate=0.05,
    max_delay=10,
)


def run_checked(cls: type[Any], cfg: SimConfig, seed: int, replay: str) -> Any:
    """One run of ``cls(cfg, seed)``: chaos, liveness, every registry the same at the end; fails the test with
    the seed's report (``replay`` reruns it) on a violation or an exception; the checker's counts are folded
    into ``stats``."""
    if os.environ.get("RAKIT_SIM_STEPS"):
        cfg = replace(cfg, steps=int(os.environ["RAKIT_SIM_STEPS"]))
    cluster = cls(cfg, seed)
    try:
        cluster.after_event()
        cluster.run_chaos()
        cluster.check_liveness()
        final = {n.id: n.sm.registry.snapshot() for n in cluster.up() if hasattr(n.sm, "registry")}
        if len(final) != cfg.nodes or len(set(final.values())) != 1:
            raise InvariantViolation(f"final machines differ on {sorted(final)}")
    except AssertionError as err:
        pytest.fail(cluster.failure_report(err, replay), pytrace=False)
    except Exception as err:  # the core or a machine raised where it must not
        report = cluster.failure_report(err, replay) + "\n\n" + "".join(traceback.format_exception(err))
        pytest.fail(report, pytrace=False)
    for k, v in cluster.lock_check.counts.items():
        cluster.stats[k] = cluster.stats.get(k, 0) + v
    return cluster


def assert_caught(cls: type[Any], cfg: SimConfig, seeds: range, expect: str, what: str) -> str:
    """The first of ``seeds`` whose chaos phase ``cls`` fails with a violation saying ``expect``; returns it."""
    for seed in seeds:
        try:
            cluster = cls(cfg, seed)
            cluster.after_event()
            cluster.run_chaos()
        except InvariantViolation as err:
            assert expect in str(err), err
            return str(err)
    pytest.fail(f"{what} went unnoticed in {len(seeds)} runs")
