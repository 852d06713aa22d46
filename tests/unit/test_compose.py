"""docker-compose.yml: three nodes + Redis, wired the way the node CLI expects."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from rakit.config import build_config, parse_peers

ROOT = Path(__file__).resolve().parents[2]
NODES = ("node1", "node2", "node3")
NODE_ENV = ("NODE_ID", "NODE_HOST", "NODE_PORT", "PEERS", "REDIS_URL", "DATA_DIR")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # ["KEY=value", ...] form
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def published(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port."""
    out: dict[int, int] = {}
    for p in service.get("ports", []):
        if isinstance(p, dict):
            out[int(p["target"])] = int(p["published"])
        else:
            host, _, container = str(p).split("#")[0].strip().rpartition(":")
            assert host.startswith("127.0.0.1:"), f"{p}: published beyond loopback"
            out[int(container.split("/")[0])] = int(host.rsplit(":", 1)[-1])
    return out


def test_services_exist(compose: dict[str, Any]) -> None:
    assert {"redis", *NODES} <= set(compose["services"])


def test_redis_service(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert redis["image"].split(":")[0] == "redis" and redis["image"].split(":")[1].startswith("7")
    command = redis["command"] if isinstance(redis["command"], str) else " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "healthcheck" in redis
    volume = redis["volumes"][0].split(":")
    assert volume[0] in compose["volumes"] and volume[1] == "/data"


@pytest.mark.parametrize("name", NODES)
def test_node_service_wiring(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    env = env_of(service)
    assert env["NODE_ID"] == name
    assert env["NODE_HOST"] == "0.0.0.0"
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert env["DATA_DIR"] == "/data"
    port = int(env["NODE_PORT"])
    assert port == 8000 + int(name[-1])

    peers = parse_peers(env["PEERS"])
    assert sorted(peers) == list(NODES)
    for peer_id, url in peers.items():
        parts = urlsplit(url)
        assert parts.hostname == peer_id  # the compose service name resolves on the network
        assert parts.port == 8000 + int(peer_id[-1])
    assert urlsplit(peers[name]).port == port
    assert published(service) == {port: port}

    assert service["build"]["dockerfile"] == "Dockerfile.node"
    command = service.get("command", ["rakit", "node"])
    assert (command.split() if isinstance(command, str) else command) == ["rakit", "node"]
    assert service["depends_on"]["redis"]["condition"] == "service_healthy"

    health = service["healthcheck"]["test"]
    health_text = " ".join(health) if isinstance(health, list) else health
    assert "urllib" in health_text and f":{port}/health" in health_text

    mounts = [v.split(":") for v in service["volumes"]]
    assert [m[1] for m in mounts] == ["/data"]
    assert mounts[0][0] in compose["volumes"]


def test_one_volume_per_node(compose: dict[str, Any]) -> None:
    volumes = [compose["services"][n]["volumes"][0].split(":")[0] for n in NODES]
    assert len(set(volumes)) == 3


def test_network_on_every_service(compose: dict[str, Any]) -> None:
    assert "distributed_system_net" in compose["networks"]
    for name, service in compose["services"].items():
        assert "distributed_system_net" in service["networks"], name


@pytest.mark.parametrize("name", NODES)
def test_compose_env_builds_a_valid_config(compose: dict[str, Any], name: str) -> None:
    env = env_of(compose["services"][name])
    config = build_config(
        node_id=env["NODE_ID"],
        host=env["NODE_HOST"],
        port=int(env["NODE_PORT"]),
        peers=env["PEERS"],
        redis_url=env["REDIS_URL"],
        data_dir=env["DATA_DIR"],
        cluster_secret="s" * 32,
    )
    assert config.node_id == name
    assert config.port == int(env["NODE_PORT"])
    assert str(config.data_dir) == "/data"
    assert set(config.peers) == set(NODES)


def test_cli_reads_every_env_var_compose_sets(compose: dict[str, Any]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "rakit", "node", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "COLUMNS": "250", "TERM": "dumb", "NO_COLOR": "1"},
    )
    read = set(re.findall(r"env var:\s*([A-Z_][A-Z0-9_]*)", out.stdout))
    assert set(NODE_ENV) <= read, out.stdout
    for name in NODES:
        named = set(env_of(compose["services"][name]))
        assert set(NODE_ENV) <= named
        assert named <= read, f"{name} sets variables the CLI ignores: {sorted(named - read)}"
