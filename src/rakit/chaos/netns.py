"""Test hosts in Linux network namespaces on one bridge, and the network cuts between them.

Role
----
The chaos suite runs every rakit node and the Redis server as a *host*: a
network namespace of its own with one address, plugged into one bridge in the
root namespace.  The test driver (clients, nemesis) stays in the root namespace
and owns the bridge address ``.1``, so it always reaches every host; faults are
only ever made *between hosts*, never between the driver and a host.

Layout (``tag`` = 4 hex digits per run, ``N`` = a free third octet)::

    root ns:  bridge  rk<tag>-br   10.77.N.1/24      (driver_address)
              veth    rk<tag>-v0 ─┐ rk<tag>-v1 ─┐ ...  (bridge ports)
    ns rk<tag>-node1:  eth0 10.77.N.11/24 ◄──────┘       lo up
    ns rk<tag>-node2:  eth0 10.77.N.12/24 ◄──────────────┘

Interface names stay well under the 15-character limit; the per-run tag keeps
parallel runs and the leftovers of crashed runs apart.  The subnet is chosen in
``create()`` (under a lock file, so parallel runs cannot pick the same one) and
never overlaps any IPv4 route or address already on the machine.  Each run
writes an owner file (pid + process start time) before making anything, so
``cleanup_stale()`` removes only what belongs to runs whose process is gone.

The cut mechanism, and why
--------------------------
A cut ``src -> dst`` silently drops, at the bridge port that leads into
``dst`` (the root-side end of dst's veth, i.e. exactly the packets dst's
``eth0`` would receive), every IPv4 packet whose source address is ``src``'s.
Each port carries, from ``create()`` on::

    tc qdisc  add dev rk<tag>-vI root handle 1: htb                 (unclassified: direct, unshaped)
    tc class  add dev rk<tag>-vI parent 1: classid 1:1 htb rate 8kbit quantum 1514
    tc qdisc  add dev rk<tag>-vI parent 1:1 handle 10: pfifo limit 0   (drops all it is given)

and a cut adds ``tc filter add ... parent 1: protocol ip prio <src index+1>
u32 match ip src <src>/32 flowid 1:1`` (``heal`` deletes those filters).
Nothing but IPv4 from ``src`` is classified, so ARP and the driver's traffic
(source ``.1``) are untouched.

This was chosen by probing the target kernel (6.18, no netem, no nft/iptables
binaries) for what drops *silently*:

* ``tc ... u32 ... action drop``, ``police``, ``flower``, ``matchall``: not
  built into the kernel ("Failed to load TC action module" / "TC classifier
  not found") - no act_gact, act_police, cls_flower, cls_matchall.
* ``ip route add blackhole <dst>/32`` in src's namespace: a new ``connect()``
  and every UDP ``sendto()`` fail at once with EINVAL (``unreachable``/
  ``prohibit`` routes: EHOSTUNREACH/EACCES at once); only established TCP
  stalls silently.  Not like a partition.
* ``ip rule add from <src> blackhole`` in dst's namespace: no effect, the
  ``local`` table rule (pref 0) matches first (and established TCP would skip
  the input route lookup through early demux anyway).
* ingress qdisc + ``u32`` + ``mirred redirect`` to a down device: drops
  silently but logs "tc mirred to Houston: device ... is down" in the kernel
  log for dropped packets and needs an extra device per host.
* HTB + ``pfifo limit 0`` + ``u32`` on the bridge port (chosen): drops
  silently, no kernel log, nothing reaches the sender (the drop happens after
  the packet left src's veth), established connections are affected at once,
  removing a filter heals at once, and everything goes away with the veth.

What a cut looks like
---------------------
* ``cut(src, dst)`` is one-way at the IP level: dst -> src packets still
  flow.  UDP from src to dst vanishes (``sendto`` succeeds, nothing arrives);
  UDP from dst to src arrives.
* TCP needs both directions, so a one-way cut stalls TCP *both ways*: a
  ``connect()`` from src to dst times out (its SYN is lost); one from dst to
  src times out too (the SYN arrives and src's socket sits in SYN-RECV, but
  src's SYN-ACK is lost).  Established connections in either direction stop
  delivering (data segments or the ACKs for them are lost) and retransmit until
  healed - then they resume (observed: data sent during a 1.5 s cut arrived
  ~0.2 s after the heal) - or until the application's or kernel's own timers
  give up.  Nobody gets an immediate error: senders see timeouts, as in a real
  partition.
* The driver's traffic to and from both hosts is unaffected.

Cleanup
-------
``close()`` deletes the root-side veth ends (which destroys their in-namespace
peers), then the namespaces (``ip netns delete`` only unmounts the name; a
namespace lives on while processes are inside it), then the bridge; it is
idempotent, ignores things already gone and succeeds while processes still run
inside a namespace.  Deleting a namespace kills nothing: processes started in
a host (via :meth:`Testbed.wrap`) must be stopped by their owner (the driver)
before ``close()``; if they are not, they keep running cut off from the
network (only ``lo``) until they exit.  Every live testbed is closed by an
``atexit`` handler, and using it as a context manager closes it on any
exception including ``KeyboardInterrupt`` (Ctrl-C); a run killed outright
(SIGKILL, or SIGTERM without a handler) leaves names that
:func:`cleanup_stale` removes later.

Every ``ip``/``tc`` call is a ``subprocess.run`` with a 10 s timeout.

Caveat: the bridge forwards in the root namespace, so if the machine has
``br_netfilter`` loaded with ``bridge-nf-call-iptables=1`` *and* an iptables
FORWARD policy that drops (e.g. Docker's), bridged traffic between hosts is
dropped by it; :func:`available` checks tooling only, not that.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["PREFIX", "Testbed", "TestbedError", "available", "cleanup_stale"]

PREFIX = "rk"
"""Default name prefix of everything a testbed makes (namespaces and links)."""

SUBNET_BASE = "10.77"
"""Testbeds use ``10.77.N.0/24`` for a free ``N``."""

FIRST_HOST_OCTET = 11
"""Host ``i`` (in the order given) gets ``.{11 + i}``; the driver gets ``.1``."""

CALL_TIMEOUT = 10.0
"""Seconds allowed for every single ``ip``/``tc`` call."""

_HOST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
_TAG_RE = re.compile(r"^[0-9a-f]{4}$")
_PREFIX_RE = re.compile(r"^[a-z]{1,4}$")
_MAX_HOSTS = 200

# Messages of ip/tc for things that are already gone (close/heal ignore those).
_GONE = (
    "Cannot find device",
    "No such file or directory",
    "does not exist",
    "Filter with specified priority/protocol not found",
)


class TestbedError(RuntimeError):
    """An ``ip``/``tc`` command failed (or the testbed was misused); carries the command and its stderr."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(
        self, message: str, *, cmd: Sequence[str] | None = None, stderr: str = "", returncode: int | None = None
    ):
        self.cmd = list(cmd) if cmd is not None else None
        self.stderr = stderr
        self.returncode = returncode
        self.timed_out = False
        text = message
        if cmd is not None:
            text += f": `{' '.join(cmd)}`"
        if returncode is not None:
            text += f" exited {returncode}"
        if stderr.strip():
            text += f": {stderr.strip()}"
        super().__init__(text)


def _run(argv: Sequence[str], *, input: str | None = None, gone_ok: bool = False) -> subprocess.CompletedProcess[str]:
    """Run one bounded ip/tc command; raise TestbedError on failure (unless it only says 'already gone')."""
    argv = list(argv)
    shown = argv if input is None else [*argv, "<<", input.strip().replace("\n", " ; ")]
    try:
        proc = subprocess.run(argv, input=input, check=False, capture_output=True, text=True, timeout=CALL_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        err = TestbedError(f"timed out after {CALL_TIMEOUT:g}s", cmd=shown, stderr=str(exc.stderr or ""))
        err.timed_out = True
        raise err from None
    except OSError as exc:
        raise TestbedError(f"cannot run: {exc}", cmd=shown) from None
    if proc.returncode != 0:
        if gone_ok and any(g in proc.stderr for g in _GONE):
            return proc
        raise TestbedError("command failed", cmd=shown, stderr=proc.stderr, returncode=proc.returncode)
    return proc


# ---------------------------------------------------------------- ownership / state files


def _state_dir() -> Path:
    for base in (Path("/run"), Path(tempfile.gettempdir())):
        d = base / "rakit-netns"
        try:
            d.mkdir(mode=0o755, exist_ok=True)
        except OSError:
            continue
        if os.access(d, os.W_OK):
            return d
    raise TestbedError("no writable directory for the testbed state files")


def _start_time(pid: int) -> str | None:
    """The process start time (clock ticks since boot) of pid, or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2 (comm) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19]  # field 22 overall


def _owner_alive(state_file: Path) -> bool:
    try:
        data = json.loads(state_file.read_text())
        pid, start = int(data["pid"]), str(data["start"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return _start_time(pid) == start


@contextlib.contextmanager
def _global_lock() -> Iterator[None]:
    """Serialise subnet choice between processes (and threads) on this machine."""
    with _THREAD_LOCK, open(_state_dir() / "lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


_THREAD_LOCK = threading.Lock()


def _claim_tag(prefix: str, tag: str | None) -> tuple[str, Path]:
    """Pick (or check) a tag no live or leftover object uses, and write its owner file."""
    namespaces = set(_list_namespaces())
    links = set(_list_links())
    state_dir = _state_dir()
    for _ in range(64):
        candidate = tag if tag is not None else secrets.token_hex(2)
        stem = f"{prefix}{candidate}-"
        state_file = state_dir / f"{prefix}{candidate}.json"
        in_use = (
            any(n.startswith(stem) for n in namespaces) or any(n.startswith(stem) for n in links) or state_file.exists()
        )
        if not in_use:
            try:
                with open(state_file, "x") as fh:
                    json.dump({"pid": os.getpid(), "start": _start_time(os.getpid()), "tag": candidate}, fh)
            except FileExistsError:
                in_use = True
            else:
                return candidate, state_file
        if tag is not None:
            raise TestbedError(f"tag {tag!r} is already in use (namespaces, links or owner file {state_file})")
    raise TestbedError("could not find a free tag")


# ---------------------------------------------------------------- machine inspection


def _list_namespaces() -> list[str]:
    out = _run(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _list_links() -> list[str]:
    out = _run(["ip", "-j", "link", "show"]).stdout
    return [link["ifname"] for link in json.loads(out or "[]")]


def _used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 prefix routed or assigned on this machine (all tables; the default route excluded)."""
    nets: list[ipaddress.IPv4Network] = []
    routes = json.loads(_run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout or "[]")
    for route in routes:
        dst = route.get("dst", "")
        if not dst or dst == "default":
            continue
        with contextlib.suppress(ValueError):
            net = ipaddress.IPv4Network(dst, strict=False)
            if net.prefixlen > 0:
                nets.append(net)
    addrs = json.loads(_run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]")
    for link in addrs:
        for info in link.get("addr_info", []):
            with contextlib.suppress(ValueError, KeyError):
                nets.append(ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False))
    return nets


def _subnet(index: int) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(f"{SUBNET_BASE}.{index}.0/24")


# ---------------------------------------------------------------- the testbed

_LIVE: set[Testbed] = set()
_LIVE_LOCK = threading.Lock()


@atexit.register
def _close_all_at_exit() -> None:
    with _LIVE_LOCK:
        beds = list(_LIVE)
    for bed in beds:
        try:
            bed.close()
        except Exception as exc:
            print(f"rakit.chaos.netns: closing {bed!r} at exit failed: {exc}", file=sys.stderr)


class Testbed:
    """Test hosts in network namespaces on one bridge; cuts between them; removes everything it made."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(
        self,
        hosts: Sequence[str],
        *,
        tag: str | None = None,
        subnet_index: int | None = None,
        prefix: str = PREFIX,
    ):
        hosts = list(hosts)
        if not hosts:
            raise ValueError("a testbed needs at least one host")
        if len(hosts) > _MAX_HOSTS:
            raise ValueError(f"at most {_MAX_HOSTS} hosts")
        if len(set(hosts)) != len(hosts):
            raise ValueError(f"duplicate host names in {hosts}")
        for h in hosts:
            if not _HOST_RE.fullmatch(h):
                raise ValueError(f"bad host name {h!r} (letters, digits, _ . -; at most 32)")
        if tag is not None and not _TAG_RE.fullmatch(tag):
            raise ValueError(f"tag must be 4 lowercase hex digits, not {tag!r}")
        if subnet_index is not None and not 0 <= subnet_index <= 255:
            raise ValueError(f"subnet_index must be in 0..255, not {subnet_index}")
        if not _PREFIX_RE.fullmatch(prefix):
            raise ValueError(f"prefix must be 1-4 lowercase letters, not {prefix!r}")
        self.hosts: tuple[str, ...] = tuple(hosts)
        self.prefix = prefix
        self._want_tag = tag
        self._subnet_index = subnet_index
        self._index = {h: i for i, h in enumerate(hosts)}
        self._lock = threading.RLock()
        self.tag: str | None = None
        self.subnet: ipaddress.IPv4Network | None = None
        self._state_file: Path | None = None
        self._made: list[tuple[str, str]] = []  # ("link" | "netns", name), in creation order
        self._cuts: set[tuple[str, str]] = set()
        self._created = False

    # ------------------------------------------------------------ names

    def _require(self) -> tuple[str, ipaddress.IPv4Network]:
        if not self._created or self.tag is None or self.subnet is None:
            raise TestbedError("the testbed is not created (call create() or use it as a context manager)")
        return self.tag, self.subnet

    def _host(self, host: str) -> int:
        try:
            return self._index[host]
        except KeyError:
            raise ValueError(f"unknown host {host!r}; hosts are {list(self.hosts)}") from None

    @property
    def bridge(self) -> str:
        tag, _ = self._require()
        return f"{self.prefix}{tag}-br"

    def port(self, host: str) -> str:
        """The root-namespace end of host's veth (its bridge port, where cuts into host are made)."""
        tag, _ = self._require()
        return f"{self.prefix}{tag}-v{self._host(host)}"

    def namespace(self, host: str) -> str:
        tag, _ = self._require()
        return f"{self.prefix}{tag}-{self.hosts[self._host(host)]}"

    def address(self, host: str) -> str:
        _, subnet = self._require()
        return str(subnet.network_address + FIRST_HOST_OCTET + self._host(host))

    @property
    def driver_address(self) -> str:
        """The root namespace's address on the bridge (what the hosts see the driver as)."""
        _, subnet = self._require()
        return str(subnet.network_address + 1)

    def wrap(self, host: str, argv: Sequence[str]) -> list[str]:
        """argv to run argv inside host's namespace (``ip netns exec`` execs it: the pid is the program's)."""
        return ["ip", "netns", "exec", self.namespace(host), *argv]

    def __repr__(self) -> str:
        state = f"tag={self.tag} subnet={self.subnet}" if self._created else "not created"
        return f"<Testbed hosts={list(self.hosts)} {state}>"

    # ------------------------------------------------------------ life cycle

    def _make(self, kind: str, name: str, argv: Sequence[str]) -> None:
        """Run a creating command and remember what it made (also on a timeout: it may have happened)."""
        try:
            _run(argv)
        except TestbedError as exc:
            if exc.timed_out:
                self._made.append((kind, name))
            raise
        self._made.append((kind, name))

    def create(self) -> Self:
        """Make the bridge, one namespace and veth per host, the addresses; on any failure remove all of it."""
        with self._lock:
            if self._created:
                return self
            with _LIVE_LOCK:
                _LIVE.add(self)
            try:
                self._create()
            except BaseException:
                try:
                    self.close()
                except Exception as exc:
                    print(f"rakit.chaos.netns: cleanup after failed create failed: {exc}", file=sys.stderr)
                raise
            return self

    def _create(self) -> None:
        with _global_lock():
            self.tag, self._state_file = _claim_tag(self.prefix, self._want_tag)
            self.subnet = self._choose_subnet(self.tag)
            self._created = True  # names are defined from here on; close() undoes whatever follows
            br = self.bridge
            self._make("link", br, ["ip", "link", "add", "name", br, "type", "bridge"])
            _run(["ip", "addr", "add", f"{self.driver_address}/24", "dev", br])
            _run(["ip", "link", "set", "dev", br, "up"])
        for host in self.hosts:
            ns, port, addr = self.namespace(host), self.port(host), self.address(host)
            self._make("netns", ns, ["ip", "netns", "add", ns])
            self._make(
                "link", port, ["ip", "link", "add", "name", port, "type", "veth", "peer", "name", "eth0", "netns", ns]
            )
            _run(["ip", "link", "set", "dev", port, "master", br, "up"])
            _run(
                ["ip", "-n", ns, "-batch", "-"],
                input=f"link set dev lo up\naddr add {addr}/24 dev eth0\nlink set dev eth0 up\n",
            )
            _run(
                ["tc", "-batch", "-"],
                input=(
                    f"qdisc add dev {port} root handle 1: htb\n"
                    f"class add dev {port} parent 1: classid 1:1 htb rate 8kbit quantum 1514\n"
                    f"qdisc add dev {port} parent 1:1 handle 10: pfifo limit 0\n"
                ),
            )

    def _choose_subnet(self, tag: str) -> ipaddress.IPv4Network:
        used = _used_networks()

        def free(index: int) -> bool:
            net = _subnet(index)
            return not any(net.overlaps(u) for u in used)

        if self._subnet_index is not None:
            if not free(self._subnet_index):
                raise TestbedError(f"subnet {_subnet(self._subnet_index)} overlaps a route or address on this machine")
            return _subnet(self._subnet_index)
        start = int(tag, 16) % 254
        for k in range(254):
            index = 1 + (start + k) % 254
            if free(index):
                return _subnet(index)
        raise TestbedError(f"no free /24 in {SUBNET_BASE}.0.0/16")

    def close(self) -> None:
        """Remove every veth, namespace and the bridge this testbed made; idempotent.

        Things already gone are ignored, and processes still running inside a
        namespace do not prevent it (they are not killed: stop them first).
        Raises TestbedError only if something it made could not be removed.
        """
        with self._lock:
            errors: list[TestbedError] = []
            # Reverse creation order: each host's veth before its namespace, the bridge last.
            for kind, name in reversed(list(self._made)):
                argv = ["ip", "link", "delete", "dev", name] if kind == "link" else ["ip", "netns", "delete", name]
                try:
                    _run(argv, gone_ok=True)
                except TestbedError as exc:
                    errors.append(exc)
                    continue
                self._made.remove((kind, name))
            self._cuts.clear()
            if errors:
                raise TestbedError(f"close() left {len(errors)} things behind; first: {errors[0]}")
            if self._state_file is not None:
                with contextlib.suppress(FileNotFoundError):
                    self._state_file.unlink()
                self._state_file = None
            self._created = False
            with _LIVE_LOCK:
                _LIVE.discard(self)

    def __enter__(self) -> Self:
        return self.create()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------ faults

    def cut(self, src: str, dst: str) -> None:
        """From now on IPv4 packets from src to dst are silently dropped (one direction only)."""
        with self._lock:
            self._require()
            if self._host(src) == self._host(dst):
                raise ValueError(f"cannot cut {src!r} from itself")
            if (src, dst) in self._cuts:
                return
            _run(
                [
                    "tc", "filter", "add", "dev", self.port(dst), "parent", "1:", "protocol", "ip",
                    "prio", str(self._host(src) + 1), "u32", "match", "ip", "src", f"{self.address(src)}/32",
                    "flowid", "1:1",
                ]
            )  # fmt: skip
            self._cuts.add((src, dst))

    def cut_both(self, a: str, b: str) -> None:
        """Cut a -> b and b -> a."""
        self.cut(a, b)
        self.cut(b, a)

    def partition(self, groups: Sequence[Iterable[str]]) -> None:
        """Cut both ways between every pair of hosts in different groups; hosts in no group are untouched.

        Adds to the cuts already in place (call heal() first for a fresh split).
        """
        sets = [set(g) for g in groups]
        seen: set[str] = set()
        for g in sets:
            for h in g:
                self._host(h)
            if seen & g:
                raise ValueError(f"hosts {sorted(seen & g)} are in more than one group")
            seen |= g
        with self._lock:
            for i, g in enumerate(sets):
                for other in sets[i + 1 :]:
                    for a in sorted(g):
                        for b in sorted(other):
                            self.cut_both(a, b)

    def heal(self) -> None:
        """Remove every cut."""
        with self._lock:
            self._require()
            for dst in sorted({d for _, d in self._cuts}, key=self._host):
                # Deleting without a prio drops every filter of the port at once.
                _run(["tc", "filter", "del", "dev", self.port(dst), "parent", "1:"], gone_ok=True)
                self._cuts = {c for c in self._cuts if c[1] != dst}

    def cuts(self) -> set[tuple[str, str]]:
        """The directed cuts (src, dst) now in place."""
        with self._lock:
            return set(self._cuts)


# ---------------------------------------------------------------- leftovers


def _pids_in(namespace: str) -> list[int]:
    """Processes running in ``namespace`` (``ip netns pids``); [] when it cannot tell."""
    try:
        out = subprocess.run(
            ["ip", "netns", "pids", namespace], check=False, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [int(word) for word in out.stdout.split() if word.isdigit()]


def cleanup_stale(prefix: str = PREFIX) -> list[str]:
    """Remove namespaces and links of earlier testbeds whose process is gone; return what was removed.

    Only our naming scheme is touched: namespaces ``<prefix><4 hex>-<host>``
    and links ``<prefix><4 hex>-br`` / ``<prefix><4 hex>-v<n>``, and only for
    tags without a live owner (a running testbed, in any process, is left alone).
    Processes still running inside a stale namespace (a run killed with
    SIGKILL leaves its servers behind) are killed first.  Returned entries
    read ``netns:<name>``, ``link:<name>`` or ``pid:<pid>``.
    """
    if not _PREFIX_RE.fullmatch(prefix):
        raise ValueError(f"prefix must be 1-4 lowercase letters, not {prefix!r}")
    p = re.escape(prefix)
    ns_re = re.compile(rf"^{p}([0-9a-f]{{4}})-[A-Za-z0-9][A-Za-z0-9_.-]{{0,31}}$")
    link_re = re.compile(rf"^{p}([0-9a-f]{{4}})-(?:br|v\d{{1,3}})$")
    state_dir = _state_dir()
    removed: list[str] = []
    with _global_lock():
        alive: dict[str, bool] = {}

        def stale(tag: str) -> bool:
            if tag not in alive:
                alive[tag] = _owner_alive(state_dir / f"{prefix}{tag}.json")
            return not alive[tag]

        links = [(n, m.group(1)) for n in _list_links() if (m := link_re.match(n))]
        # Root-side veth ends first (takes their peers along), then namespaces, bridges last.
        links.sort(key=lambda item: item[0].endswith("-br"))
        for name, tag in links:
            if name.endswith("-br"):
                continue
            if stale(tag):
                _run(["ip", "link", "delete", "dev", name], gone_ok=True)
                removed.append(f"link:{name}")
        for name in _list_namespaces():
            m = ns_re.match(name)
            if m and stale(m.group(1)):
                for pid in _pids_in(name):  # a crashed run's servers, left running in its test host
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                        removed.append(f"pid:{pid}")
                _run(["ip", "netns", "delete", name], gone_ok=True)
                removed.append(f"netns:{name}")
        for name, tag in links:
            if name.endswith("-br") and stale(tag):
                _run(["ip", "link", "delete", "dev", name], gone_ok=True)
                removed.append(f"link:{name}")
        for state_file in state_dir.glob(f"{prefix}*.json"):
            m = re.match(rf"^{p}([0-9a-f]{{4}})\.json$", state_file.name)
            if m and stale(m.group(1)):
                with contextlib.suppress(FileNotFoundError):
                    state_file.unlink()
    return removed


# ---------------------------------------------------------------- can we run here?


@functools.cache
def available() -> str | None:
    """None if testbeds work here (Linux, root, ip and tc, netns, veth, bridge, htb/u32); else why not."""
    if not sys.platform.startswith("linux"):
        return f"network namespaces need Linux, not {sys.platform}"
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"`{tool}` (iproute2) is not installed"
    # Everything below happens inside one throwaway namespace (no root-namespace side effects).
    try:
        tag, state_file = _claim_tag(PREFIX, None)
    except TestbedError as exc:
        return f"cannot use ip netns: {exc}"
    ns = f"{PREFIX}{tag}-probe"
    try:
        _run(["ip", "netns", "add", ns])
        _run(["ip", "-n", ns, "link", "add", "name", "pa", "type", "veth", "peer", "name", "pb"])
        _run(["ip", "-n", ns, "link", "add", "name", "pbr", "type", "bridge"])
        _run(["ip", "-n", ns, "link", "set", "dev", "pa", "master", "pbr", "up"])
        _run(
            ["tc", "-n", ns, "-batch", "-"],
            input=(
                "qdisc add dev pa root handle 1: htb\n"
                "class add dev pa parent 1: classid 1:1 htb rate 8kbit quantum 1514\n"
                "qdisc add dev pa parent 1:1 handle 10: pfifo limit 0\n"
                "filter add dev pa parent 1: protocol ip prio 1 u32 match ip src 10.0.0.1/32 flowid 1:1\n"
            ),
        )
    except TestbedError as exc:
        return f"network namespace testbed not usable here: {exc}"
    finally:
        with contextlib.suppress(TestbedError):
            _run(["ip", "netns", "delete", ns], gone_ok=True)
        with contextlib.suppress(FileNotFoundError):
            state_file.unlink()
    return None
