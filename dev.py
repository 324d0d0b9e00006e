"""The two commands without ``make``: ``python dev.py run`` and ``python dev.py test`` (Windows, macOS, Linux).

Each creates ``.venv`` when missing, installs ``requirements-dev.txt`` into it
when a requirements file changed since the last install, then runs the command
with that environment's Python. Only the standard library is used, so any
Python 3.11+ can run it before anything is installed. The Makefile calls it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import venv
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".installed"
REQUIREMENTS = (ROOT / "requirements.txt", ROOT / "requirements-dev.txt")
LINT = (["-m", "ruff", "check", "."], ["-m", "ruff", "format", "--check", "."])
FORMAT = (["-m", "ruff", "check", "--fix", "."], ["-m", "ruff", "format", "."])


def venv_python() -> Path:
    """The environment's interpreter (``Scripts\\python.exe`` on Windows, ``bin/python`` elsewhere)."""
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_environment() -> Path:
    """Create ``.venv`` and install the requirements unless they are installed and unchanged."""
    python = venv_python()
    if not python.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = STAMP.stat().st_mtime if STAMP.exists() else 0.0
    if any(r.stat().st_mtime > stamp for r in REQUIREMENTS):
        print("installing requirements-dev.txt", flush=True)
        run(python, ["-m", "pip", "install", "--quiet", "--upgrade", "pip"])
        run(python, ["-m", "pip", "install", "--quiet", "-r", str(ROOT / "requirements-dev.txt")])
        STAMP.touch()
    return python


def run(python: Path, args: Sequence[str]) -> None:
    """Run ``python args`` in the project folder; exit with its code when it fails.

    A terminal's Ctrl-C reaches the child too (same process group) and it shuts down by itself: wait for that
    (a second Ctrl-C, or 30 s, ends it), then exit quietly with 130, a shell's status for Ctrl-C, instead of
    a traceback of this wrapper.
    """
    process = subprocess.Popen([str(python), *args], cwd=ROOT)
    try:
        code = process.wait()
    except KeyboardInterrupt:
        try:
            process.wait(timeout=30)
        except (KeyboardInterrupt, subprocess.TimeoutExpired):
            process.terminate()
            process.wait()
        raise SystemExit(130) from None
    if code:
        raise SystemExit(code)


# pytest options that choose tests: with any of them (or a path), the run is as asked, in one process
SELECTING = ("-k", "-m", "--lf", "--last-failed", "--ff", "--failed-first", "--sw", "--stepwise", "--deselect")
BROWSER_TESTS = "tests/browser"


def selects_tests(args: Sequence[str]) -> bool:
    """True when pytest ``args`` name tests (a path or node id, ``-k``, ``-m``, last-failed...), not only options."""
    return any(not a.startswith("-") or a.split("=", 1)[0] in SELECTING or a[:2] in ("-k", "-m") for a in args)


def run_tests(python: Path, args: Sequence[str]) -> None:
    """The whole suite: the browser tests in a second pytest beside the rest, when ``args`` select nothing.

    The browser tests spend most of their time waiting for a page (a minute of live updates, a recording),
    so on two cores the suite takes about two thirds of its serial time. Their report is kept in
    ``test-artifacts/browser-tests.log`` and printed after the rest's. ``CANDLES_TEST_SERIAL=1`` runs one
    pytest, as does any selection (a path, ``-k``, ``-m``...).
    """
    if selects_tests(args) or os.environ.get("CANDLES_TEST_SERIAL") == "1":
        run(python, ["-m", "pytest", *args])
        return
    log_path = ROOT / "test-artifacts" / "browser-tests.log"
    log_path.parent.mkdir(exist_ok=True)
    print(f"the browser tests run beside the rest; their report follows at the end ({log_path.name})", flush=True)
    with log_path.open("w") as log:
        browser = subprocess.Popen(
            [str(python), "-m", "pytest", BROWSER_TESTS, *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            rest = subprocess.run([str(python), "-m", "pytest", "--ignore", BROWSER_TESTS, *args], cwd=ROOT).returncode
            browser_code = browser.wait()
        except KeyboardInterrupt:  # both got the terminal's Ctrl-C and stop by themselves
            browser.wait()
            raise SystemExit(130) from None
    print(f"\n===== {BROWSER_TESTS} =====", flush=True)
    print(log_path.read_text(), end="", flush=True)
    if rest or browser_code:
        raise SystemExit(rest or browser_code)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python dev.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("run", "test", "lint", "format", "setup", "demo"))
    parser.add_argument(
        "args", nargs=argparse.REMAINDER, help="test: passed on to pytest; demo: to python -m services.capture"
    )
    ns = parser.parse_args(argv)
    python = ensure_environment()
    if ns.command == "run":  # the whole stack and the dashboard (the app starts the backend)
        run(python, ["-m", "streamlit", "run", "app.py", *ns.args])
    elif ns.command in ("test", "lint"):
        for step in LINT:
            run(python, step)
        if ns.command == "test":
            run_tests(python, ns.args)
    elif ns.command == "demo":  # screenshots and a recording of the dashboard, into demo/
        run(python, ["-m", "services.capture", *ns.args])
    elif ns.command == "format":
        for step in FORMAT:
            run(python, step)
    return 0


if __name__ == "__main__":
    sys.exit(main())
