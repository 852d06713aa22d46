"""Shared fixtures: a private Redis and local clusters of real node processes; the test tiers.

Tiers: every test under ``integration/``, ``system/``, ``security/`` and
``sim/`` is marked ``slow`` unless it is marked ``quick`` (a few real-process
smoke tests).  ``./dev test -m "not slow"`` is the inner loop's quick tier
(the unit tests and those smoke tests); ``./dev test`` (and CI) runs all.

``redis_server``     a ``RedisProcess`` on a free port with its files in tmp_path.
``cluster_factory``  ``cluster_factory(size=3, **LocalCluster kwargs, start=True)``
                     builds (and by default starts) ``LocalCluster`` objects in
                     tmp_path; every one is stopped at teardown, and when the
                     test failed the tail of each node's log is printed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rakit.launcher import LocalCluster, RedisProcess, free_port

SLOW_DIRS = ("integration", "system", "security", "sim")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = item.path.relative_to(Path(__file__).parent).parts
        if parts and parts[0] in SLOW_DIRS and item.get_closest_marker("quick") is None:
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    # Keep each phase's report on the item so fixtures can see whether the test failed.
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def _failed(request: pytest.FixtureRequest) -> bool:
    node = request.node
    return any(getattr(getattr(node, f"rep_{w}", None), "failed", False) for w in ("setup", "call"))


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    """A fresh redis-server (append-only on) on a free port; stopped after the test."""
    server = RedisProcess(free_port(), tmp_path / "redis", appendonly=True)
    server.start(wait=True, timeout=10)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def cluster_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., LocalCluster]]:
    """Build LocalClusters under tmp_path; all are stopped at teardown."""
    clusters: list[LocalCluster] = []

    def make(size: int = 3, *, start: bool = True, start_timeout: float = 30.0, **kwargs: Any) -> LocalCluster:
        root = tmp_path / f"cluster{len(clusters) + 1}"
        cluster = LocalCluster(size, root, **kwargs)
        clusters.append(cluster)
        if start:
            cluster.start(wait=True, timeout=start_timeout)
        return cluster

    yield make

    failed = _failed(request)
    for cluster in clusters:
        try:
            cluster.close()
        finally:
            if failed:
                for name, tail in cluster.log_tails(40).items():
                    print(f"\n----- {cluster.data_root.name}/{name} (last lines) -----\n{tail}")
