"""Defaults that do not expose a cluster (security findings 5 and 7), as Redis's protected mode does."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rakit.config import ConfigError, build_config, is_loopback

PEERS = "n1=http://127.0.0.1:9"


def config(host: str, **kwargs: object):
    return build_config(
        node_id="n1",
        host=host,
        port=None,
        peers=PEERS,
        redis_url="redis://127.0.0.1:6379/0",
        data_dir="/tmp/x",
        **kwargs,
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "", "10.1.2.3", "::", "192.168.0.4", "node1.example"])
def test_a_node_reachable_from_the_network_needs_a_secret(host: str) -> None:
    with pytest.raises(ConfigError, match="--insecure"):
        config(host)
    assert config(host, cluster_secret="s" * 20).cluster_secret == "s" * 20
    assert config(host, insecure=True).cluster_secret is None  # told so explicitly


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_a_loopback_node_runs_without_a_secret(host: str) -> None:
    assert is_loopback(host)
    assert config(host).cluster_secret is None


def test_the_public_placeholder_secret_is_refused() -> None:
    with pytest.raises(ConfigError, match="placeholder"):
        config("127.0.0.1", cluster_secret="insecure-placeholder-set-RAKIT_CLUSTER_SECRET")


def test_mutual_tls_without_a_secret_is_refused(tmp_path) -> None:
    for name in ("cert", "key", "ca"):
        (tmp_path / name).write_text("x")
    files = {"tls_cert": str(tmp_path / "cert"), "tls_key": str(tmp_path / "key"), "tls_ca": str(tmp_path / "ca")}
    with pytest.raises(ConfigError, match="--tls-ca needs --cluster-secret"):
        config("127.0.0.1", **files)
    assert config("127.0.0.1", cluster_secret="s" * 20, **files).tls_ca is not None


def test_rakit_node_on_a_public_address_without_a_secret_exits_with_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rakit", "node", "--id", "n1", "--host", "0.0.0.0", "--peers", "n1=http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--cluster-secret" in lines[0] and "Traceback" not in done.stderr, done.stderr
