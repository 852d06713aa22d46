"""The network-namespace testbed of the chaos suite (rakit.chaos.netns) on the real kernel.

Needs root, iproute2 and netns support; the whole module is skipped otherwise.
Client sockets "inside" a host are made in-process: a short-lived thread
setns()es into the host's namespace, creates the socket (which stays in that
namespace for good) and exits.  Servers run as real processes via
``Testbed.wrap``.  Negative checks (a cut holds) wait a bounded 0.3-1 s; every
positive check waits for its condition with a deadline.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import secrets
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator

import pytest

from rakit.chaos import netns
from rakit.chaos.netns import Testbed, TestbedError, available, cleanup_stale

_reason = available()
if _reason is not None:
    # CI runs as root on Linux with iproute2: there a missing testbed is a failure, elsewhere a skip.
    if os.environ.get("CI"):
        pytest.fail(f"network namespaces unavailable on CI: {_reason}", pytrace=False)
    pytest.skip(_reason, allow_module_level=True)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

HOSTS = ["node1", "node2", "node3", "redis"]
ECHO_PORT = 7000
UDP_PORT = 9999
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)

ECHO_SERVER = r"""
import socket, sys, threading
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2])))
srv.listen(64)
print("ready", flush=True)
def echo(conn):
    with conn:
        while data := conn.recv(4096):
            conn.sendall(data)
while True:
    conn, _ = srv.accept()
    threading.Thread(target=echo, args=(conn,), daemon=True).start()
"""


# ------------------------------------------------------------------ helpers


def socket_in(ns: str, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """An AF_INET socket living in network namespace ns (made by a thread that entered it)."""
    box: dict[str, object] = {}

    def enter() -> None:
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({ns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            box["sock"] = socket.socket(socket.AF_INET, kind)
        except BaseException as exc:
            box["exc"] = exc

    thread = threading.Thread(target=enter)
    thread.start()
    thread.join()
    if "exc" in box:
        raise box["exc"]  # type: ignore[misc]
    return box["sock"]  # type: ignore[return-value]


def connect(bed: Testbed, src: str | None, dst: str, timeout: float) -> socket.socket:
    """A TCP connection from host src (None: the driver) to dst's echo server."""
    sock = socket.socket() if src is None else socket_in(bed.namespace(src))
    sock.settimeout(timeout)
    try:
        sock.connect((bed.address(dst), ECHO_PORT))
    except BaseException:
        sock.close()
        raise
    return sock


def echo_roundtrip(bed: Testbed, src: str | None, dst: str, timeout: float = 5.0) -> None:
    with connect(bed, src, dst, timeout) as sock:
        sock.sendall(b"ping")
        assert sock.recv(16) == b"ping"


def assert_connect_times_out(bed: Testbed, src: str | None, dst: str, timeout: float = 1.0) -> None:
    """A connect from src to dst neither succeeds nor fails fast: it times out (a silent drop)."""
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        connect(bed, src, dst, timeout).close()
    assert time.monotonic() - t0 >= timeout * 0.9


def udp_matrix(
    bed: Testbed, hosts: Iterable[str], expected: set[tuple[str, str]], *, settle: float = 0.3
) -> set[tuple[str, str]]:
    """Send one UDP datagram between every ordered pair of endpoints (hosts and "driver"); return the pairs delivered.

    Waits (deadline 3 s) until every expected pair arrived, then settle seconds more for unexpected ones.
    """
    hosts = list(hosts)
    socks: dict[str, socket.socket] = {}
    addrs: dict[str, tuple[str, int]] = {}
    try:
        for h in hosts:
            socks[h] = socket_in(bed.namespace(h), socket.SOCK_DGRAM)
            socks[h].bind((bed.address(h), UDP_PORT))
        socks["driver"] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        socks["driver"].bind((bed.driver_address, 0))
        for name, sock in socks.items():
            addrs[name] = sock.getsockname()
            sock.setblocking(False)
        for src, sock in socks.items():
            for dst in socks:
                if dst != src:
                    sock.sendto(src.encode(), addrs[dst])
        by_fd = {sock.fileno(): name for name, sock in socks.items()}
        got: set[tuple[str, str]] = set()
        deadline = time.monotonic() + 3.0
        settle_until: float | None = None
        while True:
            now = time.monotonic()
            if settle_until is None and (expected <= got or now >= deadline):
                settle_until = now + settle
            if settle_until is not None and now >= settle_until:
                return got
            end = settle_until if settle_until is not None else deadline
            ready, _, _ = select.select(list(by_fd), [], [], max(0.0, end - now))
            for fd in ready:
                dst = by_fd[fd]
                while True:
                    try:
                        data, _ = socks[dst].recvfrom(64)
                    except BlockingIOError:
                        break
                    got.add((data.decode(), dst))
    finally:
        for sock in socks.values():
            sock.close()


def all_pairs(names: Iterable[str]) -> set[tuple[str, str]]:
    names = list(names)
    return {(a, b) for a in names for b in names if a != b}


def start_echo_server(bed: Testbed, host: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        bed.wrap(host, [sys.executable, "-c", ECHO_SERVER, bed.address(host), str(ECHO_PORT)]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 10.0)
    line = proc.stdout.readline() if ready else ""
    if line.strip() != "ready":
        stop(proc)
        pytest.fail(f"echo server in {host} did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def links() -> set[str]:
    out = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True, timeout=10, check=True).stdout
    return {link["ifname"] for link in json.loads(out)}


def ours(names: Iterable[str], tag: str) -> set[str]:
    return {n for n in names if n.startswith(f"{netns.PREFIX}{tag}-")}


def any_testbed(name: str) -> bool:
    """Whether name belongs to some testbed's naming scheme (possibly another concurrent run's)."""
    return re.match(rf"^{netns.PREFIX}[0-9a-f]{{4}}-", name) is not None


def free_tag() -> str:
    taken = namespaces() | links()
    while True:
        tag = secrets.token_hex(2)
        if not ours(taken, tag) and not (netns._state_dir() / f"{netns.PREFIX}{tag}.json").exists():
            return tag


def ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], capture_output=True, text=True, timeout=10, check=True)


# ------------------------------------------------------------------ fixtures


@pytest.fixture
def bed() -> Iterator[Testbed]:
    testbed = Testbed(HOSTS)
    try:
        testbed.create()
        yield testbed
    finally:
        testbed.close()


@pytest.fixture
def echo(bed: Testbed) -> Iterator[Callable[[str], subprocess.Popen[str]]]:
    """Start an echo server on ECHO_PORT in a host; all are stopped at teardown."""
    procs: list[subprocess.Popen[str]] = []

    def start(host: str) -> subprocess.Popen[str]:
        proc = start_echo_server(bed, host)
        procs.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in procs:
            stop(proc)


# ------------------------------------------------------------------ tests


def test_create_and_close_leave_nothing_behind() -> None:
    ns_before, links_before = namespaces(), links()
    hosts = ["node1", "node2", "node3", "node4", "node5", "redis"]
    bed = Testbed(hosts)
    try:
        assert bed.create() is bed
        assert bed.create() is bed  # already created: no-op
        tag = bed.tag
        assert tag is not None
        ports = {bed.port(h) for h in hosts}
        assert ours(namespaces(), tag) == {bed.namespace(h) for h in hosts}
        assert ours(links(), tag) == ports | {bed.bridge}
        assert all(len(name) <= 15 for name in ports | {bed.bridge})
        assert bed.driver_address.endswith(".1")
        assert len({bed.address(h) for h in hosts}) == len(hosts)
        assert bed.address("redis") == str(bed.subnet.network_address + netns.FIRST_HOST_OCTET + 5)  # type: ignore[union-attr]
        # The subnet was free: the only route into it is our bridge's.
        routes = json.loads(
            subprocess.run(
                ["ip", "-j", "-4", "route", "show"], capture_output=True, text=True, timeout=10, check=True
            ).stdout
        )
        into = [
            r
            for r in routes
            if r["dst"] != "default" and netns.ipaddress.ip_network(r["dst"], strict=False).overlaps(bed.subnet)
        ]  # type: ignore[arg-type]
        assert [r["dev"] for r in into] == [bed.bridge]
        # Each host has lo up and its address on eth0.
        addrs = json.loads(
            subprocess.run(
                ["ip", "-n", bed.namespace("node4"), "-j", "-4", "addr"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout
        )
        assert {(a["ifname"], i["local"]) for a in addrs for i in a["addr_info"]} == {
            ("lo", "127.0.0.1"),
            ("eth0", bed.address("node4")),
        }
        # Full mesh, driver included.
        expected = all_pairs([*hosts, "driver"])
        assert udp_matrix(bed, hosts, expected, settle=0.0) == expected
    finally:
        bed.close()
    bed.close()  # idempotent
    assert not ours(namespaces(), tag)
    assert not ours(links(), tag)
    assert not (netns._state_dir() / f"{netns.PREFIX}{tag}.json").exists()
    # Nothing else changed (other testbeds running concurrently may come and go).
    assert {n for n in namespaces() ^ ns_before if not any_testbed(n)} == set()
    assert {n for n in links() ^ links_before if not any_testbed(n)} == set()
    with pytest.raises(TestbedError):
        bed.address("node1")


def test_two_testbeds_get_distinct_tags_and_subnets(bed: Testbed) -> None:
    index = int(str(bed.subnet).split(".")[2])
    with pytest.raises(TestbedError, match="overlaps"):
        Testbed(["a"], subnet_index=index).create()
    with pytest.raises(TestbedError, match="already in use"):
        Testbed(["a"], tag=bed.tag).create()
    with Testbed(["node1", "node2"]) as other:
        assert other.tag != bed.tag
        assert not other.subnet.overlaps(bed.subnet)  # type: ignore[union-attr]
        assert other.namespace("node1") != bed.namespace("node1")
        assert udp_matrix(other, other.hosts, all_pairs([*other.hosts, "driver"]), settle=0.0) == all_pairs(
            [*other.hosts, "driver"]
        )


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Testbed([])
    with pytest.raises(ValueError):
        Testbed(["a", "a"])
    with pytest.raises(ValueError):
        Testbed(["bad name"])
    with pytest.raises(ValueError):
        Testbed(["a"], tag="XYZ!")
    with pytest.raises(TestbedError, match="not created"):
        Testbed(["a"]).cut("a", "a")


def test_server_reachable_then_cut_times_out_while_driver_still_reaches(
    bed: Testbed, echo: Callable[[str], object]
) -> None:
    echo("node1")
    echo_roundtrip(bed, None, "node1")
    echo_roundtrip(bed, "node2", "node1")

    bed.cut("node2", "node1")
    assert bed.cuts() == {("node2", "node1")}
    assert_connect_times_out(bed, "node2", "node1", timeout=1.0)  # silent drop: no refusal, no EINVAL
    echo_roundtrip(bed, None, "node1")  # the driver is never cut off
    echo_roundtrip(bed, "node3", "node1")  # nor are other hosts

    bed.heal()
    assert bed.cuts() == set()
    echo_roundtrip(bed, "node2", "node1")


def test_established_connection_stalls_during_a_cut_and_resumes_after_heal(
    bed: Testbed, echo: Callable[[str], object]
) -> None:
    echo("node1")
    with connect(bed, "node2", "node1", timeout=5.0) as sock:
        sock.sendall(b"a")
        assert sock.recv(16) == b"a"

        # Cut the way in: node2's data never reaches node1.
        bed.cut("node2", "node1")
        sock.settimeout(0.5)
        sock.sendall(b"b")
        with pytest.raises(TimeoutError):
            sock.recv(16)
        bed.heal()
        sock.settimeout(5.0)  # retransmission delivers it once healed
        assert sock.recv(16) == b"b"

        # Cut only the way back: node1 gets the data but its echo is lost - TCP stalls as well.
        bed.cut("node1", "node2")
        sock.settimeout(0.5)
        sock.sendall(b"c")
        with pytest.raises(TimeoutError):
            sock.recv(16)
        bed.heal()
        sock.settimeout(5.0)
        assert sock.recv(16) == b"c"


def test_one_way_cut_drops_only_that_direction(bed: Testbed) -> None:
    bed.cut("node1", "node2")
    bed.cut("node1", "node2")  # idempotent
    assert bed.cuts() == {("node1", "node2")}
    names = [*HOSTS, "driver"]
    expected = all_pairs(names) - {("node1", "node2")}
    got = udp_matrix(bed, HOSTS, expected)
    assert got == expected  # node2 -> node1 still flows; the driver reaches and hears both
    bed.heal()
    assert udp_matrix(bed, HOSTS, all_pairs(names), settle=0.0) == all_pairs(names)


def test_partition_and_heal(bed: Testbed) -> None:
    bed.partition([["node1", "node2"], ["node3"]])  # redis is in no group: untouched
    cut = {("node1", "node3"), ("node3", "node1"), ("node2", "node3"), ("node3", "node2")}
    assert bed.cuts() == cut
    names = [*HOSTS, "driver"]
    assert udp_matrix(bed, HOSTS, all_pairs(names) - cut) == all_pairs(names) - cut

    bed.cut_both("node1", "redis")  # partitions add to existing cuts
    assert bed.cuts() == cut | {("node1", "redis"), ("redis", "node1")}

    bed.heal()
    assert bed.cuts() == set()
    assert udp_matrix(bed, HOSTS, all_pairs(names), settle=0.0) == all_pairs(names)

    bed.partition([["node1"], ["node2"], ["node3"], ["redis"]])
    assert bed.cuts() == all_pairs(HOSTS)
    assert udp_matrix(bed, HOSTS, all_pairs(names) - all_pairs(HOSTS)) == all_pairs(names) - all_pairs(HOSTS)
    bed.heal()

    with pytest.raises(ValueError, match="more than one group"):
        bed.partition([["node1", "node2"], ["node2"]])
    with pytest.raises(ValueError, match="unknown host"):
        bed.partition([["node1"], ["nodeX"]])
    with pytest.raises(ValueError):
        bed.cut("node1", "node1")
    assert bed.cuts() == set()


def test_close_succeeds_while_a_process_still_runs_inside() -> None:
    bed = Testbed(["node1", "node2"]).create()
    proc: subprocess.Popen[str] | None = None
    try:
        proc = start_echo_server(bed, "node1")
        # ip netns exec execs the program: the pid we hold is the server's own.
        with open(f"/proc/{proc.pid}/cmdline", "rb") as fh:
            cmdline = fh.read().split(b"\0")
        assert cmdline[0] == sys.executable.encode() and b"-c" in cmdline
        ns = bed.namespace("node1")
        bed.close()
        assert ns not in namespaces()
        assert not ours(links(), bed.tag or "")
        assert proc.poll() is None  # deleting a namespace kills nothing
        proc.send_signal(signal.SIGTERM)  # signals reach the program itself
        assert proc.wait(5) == -signal.SIGTERM
    finally:
        if proc is not None:
            stop(proc)
        bed.close()


def test_failed_create_removes_what_it_made_and_reports_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real_run = netns._run

    def failing_run(argv, **kwargs):  # type: ignore[no-untyped-def]
        argv = list(argv)
        if "veth" in argv and argv[-1].endswith("-node2"):  # the second host's veth: a real `ip` failure
            argv[argv.index("veth")] = "nosuchlinktype"
        return real_run(argv, **kwargs)

    monkeypatch.setattr(netns, "_run", failing_run)
    bed = Testbed(["node1", "node2", "node3"])
    with pytest.raises(TestbedError) as info:
        bed.create()
    assert info.value.cmd is not None and "nosuchlinktype" in info.value.cmd
    assert info.value.stderr.strip()
    assert "nosuchlinktype" in str(info.value)
    tag = bed.tag
    assert tag is not None
    assert not ours(namespaces(), tag)  # node1's namespace, veth and the bridge are gone again
    assert not ours(links(), tag)
    assert not (netns._state_dir() / f"{netns.PREFIX}{tag}.json").exists()
    bed.close()  # still fine


def test_ctrl_c_inside_the_with_block_closes_the_testbed() -> None:
    with pytest.raises(KeyboardInterrupt), Testbed(["node1", "node2"]) as bed:
        tag = bed.tag or ""
        assert ours(namespaces(), tag)
        signal.raise_signal(signal.SIGINT)  # what Ctrl-C does: KeyboardInterrupt in the main thread
        pytest.fail("SIGINT did not interrupt")
    assert not ours(namespaces(), tag)
    assert not ours(links(), tag)


def test_atexit_closes_a_testbed_left_open() -> None:
    code = (
        "from rakit.chaos.netns import Testbed\n"
        "bed = Testbed(['node1', 'redis']).create()\n"
        "print(bed.tag, flush=True)\n"
        "raise SystemExit(3)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 3, proc.stderr
    tag = proc.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{4}", tag)
    assert not ours(namespaces(), tag)
    assert not ours(links(), tag)


def test_cleanup_stale_removes_only_dead_runs_of_our_scheme(bed: Testbed) -> None:
    leaked = free_tag()
    dead_owner = free_tag()
    while dead_owner == leaked:
        dead_owner = free_tag()
    p = netns.PREFIX
    foreign_ns = [f"{p}zz{leaked[:2]}-node1", f"other{leaked}-node1", f"{p}{leaked}x-node1"]
    foreign_links = [f"{p}{leaked}-brx", f"zz{leaked}-br"]
    made_ns = [f"{p}{leaked}-node1", f"{p}{leaked}-redis", f"{p}{dead_owner}-node1"]
    made_links = [f"{p}{leaked}-br", f"{p}{dead_owner}-br"]
    state_dir = netns._state_dir()
    dead_proc = subprocess.Popen(["true"])  # its pid is gone by the time cleanup_stale looks
    dead_proc.wait(5)
    dead_file = state_dir / f"{p}{dead_owner}.json"
    try:
        for name in made_ns + foreign_ns:
            ip("netns", "add", name)
        for name in made_links + foreign_links:
            ip("link", "add", "name", name, "type", "bridge")
        ip(
            "link",
            "add",
            "name",
            f"{p}{leaked}-v0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            f"{p}{leaked}-node1",
        )
        dead_file.write_text(json.dumps({"pid": dead_proc.pid, "start": "1", "tag": dead_owner}))

        removed = cleanup_stale()

        expected = {f"netns:{n}" for n in made_ns} | {f"link:{n}" for n in made_links} | {f"link:{p}{leaked}-v0"}
        assert expected <= set(removed)
        assert not [r for r in removed if bed.tag in r]  # a live testbed (this process) is left alone
        after_ns, after_links = namespaces(), links()
        assert not set(made_ns) & after_ns
        assert not (set(made_links) | {f"{p}{leaked}-v0"}) & after_links
        assert set(foreign_ns) <= after_ns
        assert set(foreign_links) <= after_links
        assert {bed.namespace(h) for h in HOSTS} <= after_ns
        assert {bed.bridge} | {bed.port(h) for h in HOSTS} <= after_links
        assert not dead_file.exists()
        assert udp_matrix(bed, HOSTS, all_pairs([*HOSTS, "driver"]), settle=0.0) == all_pairs([*HOSTS, "driver"])
        assert not [r for r in cleanup_stale() if leaked in r or dead_owner in r]  # nothing left to do
    finally:
        for name in made_ns + foreign_ns:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=10, check=False)
        for name in [*made_links, *foreign_links, f"{p}{leaked}-v0"]:
            subprocess.run(["ip", "link", "delete", "dev", name], capture_output=True, timeout=10, check=False)
        dead_file.unlink(missing_ok=True)
