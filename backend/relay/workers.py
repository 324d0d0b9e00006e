"""``--workers N``: N relay processes on one port, each with its own Redis subscription; one that dies is replaced.

Linux spreads the connections to a port among the sockets bound to it with
``SO_REUSEPORT`` (by a hash of each connection's addresses). This process (``api``
or ``run``) opens one such listening socket per worker and keeps them all open: a
worker inherits its socket (``python -m backend.relay.worker``), so when it dies the
connections that arrive meanwhile wait in that socket's queue for its replacement
instead of being refused. Each worker is an ordinary relay, registered with the
guardian (:func:`backend.processes.guard`) so that none outlives this process
however it ends. Elsewhere the relay runs as one process: macOS accepts
``SO_REUSEPORT`` but does not spread connections, Windows has no such option.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from backend import processes
from backend.config import Settings

log = logging.getLogger(__name__)

SETTINGS_ENV = "CANDLES_WORKER_SETTINGS"  # the worker's settings, as JSON (never on a command line: secrets)
FD_ENV = "CANDLES_WORKER_FD"  # the listening socket it inherits
BACKLOG = 4096
STOP_TIMEOUT_S = 15.0  # a worker's graceful shutdown takes up to 5 s (uvicorn's timeout_graceful_shutdown)
STEADY_S = 10.0  # a worker that lived this long had started fine: its replacement starts at once
GIVE_UP_AFTER = 5  # replacements in a row that die before STEADY_S: the relay cannot start, stop trying
POLL_S = 0.2


def spreads_connections(platform: str = sys.platform) -> bool:
    """Whether the kernel spreads one port's connections over ``SO_REUSEPORT`` sockets (Linux since 3.9)."""
    return platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def cores() -> int:
    """The cores this process may run on (its affinity where the platform tells it)."""
    with contextlib.suppress(AttributeError, OSError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def worker_count(requested: int, available: int, spreads: bool) -> int:
    """How many relay processes to run: ``requested`` (0: one per core), or 1 where the port cannot be shared."""
    wanted = requested or available
    return wanted if spreads else 1


def listening_sockets(host: str, port: int, n: int) -> list[socket.socket]:
    """``n`` sockets listening on one port with ``SO_REUSEPORT``, after checking that nothing else holds it.

    Without the check a second relay started on a busy port would silently share it (``SO_REUSEPORT``
    lets any process of the same user join); the probe, bound without it, fails as a plain server would.
    """
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = found[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)
        address = probe.getsockname()  # the port the system chose when ``port`` is 0
    out: list[socket.socket] = []
    try:
        for _ in range(n):
            sock = socket.socket(family, kind, proto)
            out.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
    except OSError:
        for sock in out:
            sock.close()
        raise
    return out


@dataclass
class Slot:
    """One listening socket and the worker serving it (replaced when it dies)."""

    sock: socket.socket
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    quick_deaths: int = 0  # replacements in a row that died before STEADY_S


@dataclass
class Workers:
    """Start a worker per socket, replace those that die, stop them all when told to."""

    settings: Settings
    sockets: list[socket.socket]
    slots: list[Slot] = field(init=False)

    def __post_init__(self) -> None:
        self.slots = [Slot(sock) for sock in self.sockets]

    def start(self, slot: Slot) -> None:
        env = dict(os.environ, **{SETTINGS_ENV: self.settings.model_dump_json(), FD_ENV: str(slot.sock.fileno())})
        cmd = [sys.executable, "-m", "backend.relay.worker"]
        slot.process = subprocess.Popen(cmd, env=env, pass_fds=(slot.sock.fileno(),))
        slot.started = time.monotonic()
        processes.guard(slot.process.pid)

    def run(self, stop: threading.Event) -> int:
        """Serve until ``stop`` is set (0), or until the workers keep dying at start (1)."""
        for slot in self.slots:
            self.start(slot)
        try:
            while not stop.wait(POLL_S):
                for slot in self.slots:
                    if not self.check(slot, stop):
                        return 1
            return 0
        finally:
            self.stop_all()

    def check(self, slot: Slot, stop: threading.Event) -> bool:
        """Replace the slot's worker if it died; False when it keeps dying at start."""
        process = slot.process
        if process is None or process.poll() is None or stop.is_set():
            return True
        processes.unguard(process.pid)
        lived = time.monotonic() - slot.started
        slot.quick_deaths = slot.quick_deaths + 1 if lived < STEADY_S else 0
        if slot.quick_deaths >= GIVE_UP_AFTER:
            log.error("relay worker %d exited with %s, %d times in a row at start: giving up",
                      process.pid, process.returncode, slot.quick_deaths)  # fmt: skip
            return False
        pause = min(5.0, 0.5 * 2 ** (slot.quick_deaths - 1)) if slot.quick_deaths else 0.0
        log.warning("relay worker %d exited with %s after %.0f s; starting another%s", process.pid,
                    process.returncode, lived, f" in {pause:.1f} s" if pause else "")  # fmt: skip
        if stop.wait(pause):
            return True
        self.start(slot)
        return True

    def stop_all(self) -> None:
        """Ask every worker to stop (they finish their requests and close their WebSockets), then wait."""
        running = [s.process for s in self.slots if s.process is not None]
        for process in running:
            processes.request_stop(process)
        for process in running:
            processes.stop(process, STOP_TIMEOUT_S)
            processes.unguard(process.pid)
        for slot in self.slots:
            slot.sock.close()


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT/SIGTERM (a terminal's Ctrl-C reaches the workers too: they stop on their own)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping the relay workers", signum)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in processes.STOP_SIGNALS}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def supervise(settings: Settings, n: int) -> int:
    """Serve the relay as ``n`` worker processes on ``api_host:api_port`` until SIGINT/SIGTERM."""
    try:
        sockets = listening_sockets(settings.api_host, settings.api_port, n)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", settings.api_host, settings.api_port, exc)
        return 1
    host, port = sockets[0].getsockname()[:2]
    log.info("relay listening on http://%s:%d with %d workers (one Redis subscription each)", host, port, n)
    with _stop_on_signals() as stop:
        return Workers(settings, sockets).run(stop)
