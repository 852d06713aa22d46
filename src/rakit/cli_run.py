"""``rakit lock run | semaphore run | elect``: run a program while a lock, permits or a leadership is held.

As ``etcdctl lock``/``etcdctl elect`` and ``consul lock -n`` do.  Rules:

1. The child starts only once the hold is granted; it gets the fencing token
   (an election's term) in ``RAKIT_FENCING_TOKEN``, the name in
   ``RAKIT_RESOURCE`` and the holder in ``RAKIT_CLIENT_ID``.
2. The child runs in its own process group; every signal rakit sends goes to
   that group (so the children of ``sh -c`` get it too).  It does not own the
   terminal: programs that read the terminal are not what this is for.
3. The hold is kept alive in the background (the client's keeper).  If it is
   lost (``hold.lost`` set), the child gets SIGTERM, then SIGKILL after
   ``grace`` seconds, and rakit exits ``LOST_EXIT`` (1) after one
   ``rakit: error: lost ...`` line on stderr.
4. Otherwise rakit exits with the child's status: its exit code, or
   128 + N if signal N ended it.
5. SIGINT, SIGTERM or SIGHUP to rakit is forwarded to the child once; rakit
   waits for it (at most ``grace`` seconds, then SIGKILL) and exits with its
   status.  The same signal while still waiting for the grant abandons the
   wait (exit 128 + N; nothing is held).
6. The hold is released in a ``finally``, whatever ended the run.
7. On Linux the child is started with ``PR_SET_PDEATHSIG`` = SIGKILL: if rakit
   itself is SIGKILLed (and so can neither signal the child nor release the
   hold), the child dies with it; the hold then ends at its ttl.  Elsewhere a
   child outlives a SIGKILLed rakit: it should check its fencing token where it
   writes.
8. Every wait is bounded: the child is polled with ``Popen.wait(timeout=poll)``
   in a loop that also watches ``hold.lost`` and the signals received.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

__all__ = ["LOST_EXIT", "Hold", "Interrupted", "Supervisor", "exit_status"]

#: rakit's exit code when the hold was lost while the child ran.
LOST_EXIT = 1
#: The shell's codes for a program that cannot be run / is not found.
CANNOT_RUN_EXIT = 126
NOT_FOUND_EXIT = 127

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1


@dataclass
class Hold:
    """A granted hold as the supervisor sees it: its token, its loss event and how to release it."""

    what: str  # e.g. "the lock on 'orders'", for messages
    token: int
    lost: threading.Event
    release: Callable[[], None]
    env: dict[str, str] = field(default_factory=dict)


class Interrupted(BaseException):
    """A forwarded signal arrived while the hold was still being acquired."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_status(returncode: int) -> int:
    """A ``Popen.returncode`` as a shell status: the code itself, or 128 + N for signal N."""
    return 128 - returncode if returncode < 0 else returncode


def _death_signal_setter() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGKILL the child when rakit dies; resolved before any fork
    (the child then only calls an already loaded function)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()

    def set_death_signal() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # rakit died before the request took effect
            os._exit(NOT_FOUND_EXIT)

    return set_death_signal


class Supervisor:
    """Acquires a hold, runs ``argv`` while it is held, and returns the status rakit exits with."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        grace: float = 10.0,
        poll: float = 0.1,
        die_with_parent: bool = True,
        report: Callable[[str], None] | None = None,
    ) -> None:
        if not argv:
            raise ValueError("no command to run (put it after --)")
        if grace < 0 or poll <= 0:
            raise ValueError("grace must be >= 0 and poll > 0")
        self.argv = list(argv)
        self.grace = grace
        self.poll = poll
        self.die_with_parent = die_with_parent
        self.report = report or (lambda line: print(line, file=sys.stderr, flush=True))
        self.child: subprocess.Popen[bytes] | None = None
        self.received: int | None = None  # the first forwarded signal rakit received
        self._acquiring = False

    # -- signals -----------------------------------------------------------------

    def request_stop(self, signum: int) -> None:
        """What a SIGINT/SIGTERM/SIGHUP does (also callable directly): stop the child, or the wait."""
        if self.received is None:
            self.received = signum
        if self._acquiring and self.child is None:
            raise Interrupted(signum)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.request_stop(signum)

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # only the main thread can take signals: the caller forwards them (request_stop)
            return
        previous: dict[int, Any] = {}
        try:
            for forwarded in FORWARDED:
                previous[forwarded] = signal.signal(forwarded, self._on_signal)
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    # -- the run -------------------------------------------------------------------

    def run(self, acquire: Callable[[], Hold]) -> int:
        """Acquire (``acquire()`` blocks until granted or raises), run the child, release; the status."""
        with self._signals():
            self._acquiring = True
            try:
                hold = acquire()
            except Interrupted as exc:
                return 128 + exc.signum
            finally:
                self._acquiring = False
            try:
                if self.received is not None:  # a signal came with the grant: do not start the child
                    return 128 + self.received
                return self._supervise(hold)
            finally:
                self._kill_leftover()
                try:
                    hold.release()
                except Exception as exc:  # the lease ends at its ttl anyway
                    self.report(f"rakit: warning: releasing {hold.what} failed: {exc}")

    def _supervise(self, hold: Hold) -> int:
        env = {**os.environ, **hold.env, "RAKIT_FENCING_TOKEN": str(hold.token)}
        preexec = _death_signal_setter() if self.die_with_parent else None
        try:
            self.child = subprocess.Popen(self.argv, env=env, process_group=0, preexec_fn=preexec)
        except FileNotFoundError:
            self.report(f"rakit: error: {self.argv[0]}: command not found")
            return NOT_FOUND_EXIT
        except (PermissionError, OSError, subprocess.SubprocessError) as exc:
            self.report(f"rakit: error: cannot run {self.argv[0]}: {exc}")
            return CANNOT_RUN_EXIT
        child = self.child
        forwarded = False
        while True:
            with contextlib.suppress(subprocess.TimeoutExpired):
                return exit_status(child.wait(timeout=self.poll))
            if self.received is not None and not forwarded:
                forwarded = True
                self._signal(self.received)
                return exit_status(self._wait_grace())
            if hold.lost.is_set():
                self.report(f"rakit: error: lost {hold.what}; stopping {self.argv[0]} (SIGTERM)")
                self._signal(signal.SIGTERM)
                self._wait_grace()
                return LOST_EXIT

    def _wait_grace(self) -> int:
        """Wait for the signalled child up to ``grace`` s, then SIGKILL it; its return code."""
        assert self.child is not None
        try:
            return self.child.wait(timeout=self.grace)
        except subprocess.TimeoutExpired:
            self.report(f"rakit: {self.argv[0]} still runs after {self.grace:g} s: SIGKILL")
            self._signal(signal.SIGKILL)
            return self.child.wait(timeout=max(5.0, self.grace))

    def _signal(self, signum: int) -> None:
        """Send ``signum`` to the child's process group (the child itself if the group is gone)."""
        child = self.child
        if child is None or child.returncode is not None:
            return
        try:
            os.killpg(child.pid, signum)
        except ProcessLookupError:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)
        except PermissionError:
            child.send_signal(signum)

    def _kill_leftover(self) -> None:
        """An exception left the child running: it must not outlive the hold."""
        child = self.child
        if child is None or child.poll() is not None:
            return
        self._signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=5.0)
