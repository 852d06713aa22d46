"""A 3-member etcd cluster on loopback, the baseline the benchmarks compare with.

Uses Debian's ``etcd-server`` (installed with apt-get when missing and we are
root; benchmarks only — tests never need etcd).  Clients talk to etcd's
HTTP/JSON gateway (``/v3/kv/put``, ``/v3/lease/grant``, ``/v3/lock/lock``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from rakit.launcher import free_ports


def ensure_etcd() -> str | None:
    path = shutil.which("etcd")
    if path:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "etcd-server"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        if not shutil.which("etcd"):
            subprocess.run(
                ["apt-get", "update", "-qq"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
            )
            subprocess.run(
                ["apt-get", "install", "-y", "-qq", "etcd-server"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
    return shutil.which("etcd")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class EtcdCluster:
    def __init__(self, binary: str, size: int = 3) -> None:
        self.binary = binary
        self.size = size
        self.dir = Path(tempfile.mkdtemp(prefix="rakit-bench-etcd-"))
        ports = free_ports(2 * size)
        self.client_ports = ports[:size]
        self.peer_ports = ports[size:]
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.client_ports]

    def start(self, timeout: float = 30.0) -> None:
        initial = ",".join(f"e{i}=http://127.0.0.1:{p}" for i, p in enumerate(self.peer_ports))
        for i in range(self.size):
            log = open(self.dir / f"e{i}.log", "wb")
            self.procs.append(
                subprocess.Popen(
                    [
                        self.binary,
                        "--name",
                        f"e{i}",
                        "--data-dir",
                        str(self.dir / f"e{i}"),
                        "--listen-client-urls",
                        self.urls[i],
                        "--advertise-client-urls",
                        self.urls[i],
                        "--listen-peer-urls",
                        f"http://127.0.0.1:{self.peer_ports[i]}",
                        "--initial-advertise-peer-urls",
                        f"http://127.0.0.1:{self.peer_ports[i]}",
                        "--initial-cluster",
                        initial,
                        "--initial-cluster-state",
                        "new",
                        "--initial-cluster-token",
                        "rakit-bench",
                        "--log-level",
                        "error",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.put("bench-ready", "1")
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"etcd did not become ready; logs in {self.dir}")

    def post(self, url: str, path: str, body: dict[str, object]) -> dict[str, object]:
        req = urllib.request.Request(
            url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read() or b"{}")

    def put(self, key: str, value: str) -> None:
        self.post(self.urls[0], "/v3/kv/put", {"key": b64(key), "value": b64(value)})

    def grant_lease(self, ttl: int, url: str | None = None) -> str:
        """A new lease of ``ttl`` seconds; its id as the gateway writes it (an int64 string)."""
        answer = self.post(url or self.urls[0], "/v3/lease/grant", {"TTL": ttl})
        lease = answer.get("ID")
        if not lease:
            raise RuntimeError(f"etcd lease grant answered {answer!r}")
        return str(lease)

    def leader_url(self) -> str:
        for url in self.urls:
            status = self.post(url, "/v3/maintenance/status", {})
            header = status.get("header", {})
            if isinstance(header, dict) and str(header.get("member_id")) == str(status.get("leader")):
                return url
        return self.urls[0]

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> EtcdCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
