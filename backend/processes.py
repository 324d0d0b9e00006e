"""Child processes on every platform: start one in a group of its own, ask it to stop, end its group.

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
from typing import Any

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
