"""Mutation testing, one module group at a time: ``make mutate`` (or ``python tools/mutate.py [GROUP…]``).

mutmut makes small bugs in the modules where a bug hurts users (a ``<`` for a ``<=``, a dropped call, a swapped
argument, a changed constant) and runs the tests that call the mutated function against each mutant; a mutant no
test notices "survived". Each group runs in its own folder, ``.mutate/GROUP``, holding links to the project and a
``pyproject.toml`` whose ``[tool.mutmut]`` names the group's modules and tests, so a mutant only runs the tests
written for its module (the machine is shared: groups run one after the other). Then each group's score and its
surviving mutants are printed. A mutant in ``EQUIVALENT`` behaves exactly like the original, so no test can kill
it: it is left out of the score, with the reason. Results stay in ``.mutate/``: a second run only tests what
changed (``rm -rf .mutate`` starts afresh).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutate"
MUTMUT = [sys.executable, "-m", "mutmut"]
TARGET = 0.85  # the share of non-equivalent mutants each group must kill
SECTION = "[tool.mutmut]"
LINKED = ("backend", "services", "tests", "data", "pages", "app.py", ".streamlit", "README.md", "Makefile", "dev.py")
LINKED += (".ci", "benchmarks", "tools", "requirements.txt", "requirements-dev.txt")


@dataclass(frozen=True)
class Group:
    modules: tuple[str, ...]  # files to mutate (globs as mutmut's ``only_mutate`` takes them)
    tests: tuple[str, ...]  # the tests written for them (pytest arguments)
    postgres: bool = False  # also on PostgreSQL when CANDLES_TEST_DATABASE_URL names one (one mutant at a time)


GROUPS: dict[str, Group] = {
    "aggregate": Group(
        ("backend/aggregate.py", "backend/rollup.py", "backend/streams.py"),
        (  # the engine's restart (state, restore) and the exchange's final candles (put_final) have their own files
            "tests/unit/test_aggregate.py",
            "tests/unit/test_exchange_klines.py",
            "tests/unit/test_resume.py",
            "tests/unit/test_exchange_source.py",
        ),
    ),
    "models": Group(
        ("backend/models.py", "backend/sources/fields.py"),
        ("tests/unit/test_models.py", "tests/unit/test_protocol.py", "tests/unit/test_binance_decode.py"),
    ),
    "cache": Group(  # the relay reads the cache: its REST tests check what it reads
        ("backend/cache.py", "backend/sinks/redis.py"),
        ("tests/integration/test_publish.py", "tests/integration/test_api_rest.py"),
    ),
    "store": Group(("backend/store.py",), ("tests/integration/test_store.py",), postgres=True),
    "relay": Group(
        ("backend/relay/hub.py", "backend/relay/auth.py", "backend/relay/routes/*"),
        (
            "tests/unit/test_relay.py",
            "tests/integration/test_api_rest.py",
            "tests/integration/test_api_auth.py",
            "tests/integration/test_api_alerts.py",
            "tests/integration/test_api_ws.py",
        ),
    ),
    "fanout": Group(  # one WebSocket client of the relay: its buffer, its sender, its ops
        ("backend/relay/client.py", "backend/relay/endpoint.py"),
        ("tests/unit/test_relay.py", "tests/integration/test_api_ws.py"),
    ),
    "feed": Group(
        ("services/feed/*",),
        ("tests/unit/test_feed.py", "tests/unit/test_feed_parts.py", "tests/integration/test_feed_relay.py"),
    ),
    "indicators": Group(("backend/indicators.py",), ("tests/unit/test_indicators.py",)),
    # the live source's pure parts (exchange candles, pages, roll-ups, ccxt trades); RestBackfill's three I/O methods
    # run only in tests/integration/test_exchange_feed.py, which is slow (a replayed exchange) and so not run here
    "exchange": Group(
        ("backend/sources/backfill.py", "backend/sources/ccxt_trades.py"),
        ("tests/unit/test_exchange_source.py", "tests/unit/test_exchange_klines.py"),
    ),
    "formats": Group(
        ("backend/sources/formats/*",),
        (
            "tests/unit/test_sources.py",
            "tests/unit/test_file_errors.py",
            "tests/unit/test_binance_decode.py",
            "tests/unit/test_candle_files.py",
            "tests/unit/test_formats.py",
        ),
    ),
}

# one line per equivalent mutant, "NAME: why it cannot change behaviour" (read one with
# `cd .mutate/GROUP && ../../.venv/bin/python -m mutmut show NAME`)
EQUIVALENT_FILE = ROOT / "tools" / "equivalent-mutants.txt"


def load_equivalent(path: Path = EQUIVALENT_FILE) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        name, sep, why = line.partition(": ")
        if sep and not line.startswith("#"):
            out[name.strip()] = why.strip()
    return out


EQUIVALENT = load_equivalent()

KILLED = {"killed", "timeout", "caught by type check", "segfault"}


def prepare(name: str, group: Group) -> Path:
    """``.mutate/name``: links to the project and a pyproject.toml configuring mutmut for this group."""
    folder = WORK / name
    folder.mkdir(parents=True, exist_ok=True)
    for entry in LINKED:
        link = folder / entry
        if not link.is_symlink() and (ROOT / entry).exists():
            link.symlink_to(ROOT / entry)
    project = (ROOT / "pyproject.toml").read_text()
    shared = project[project.index(SECTION) + len(SECTION) :]
    if on_postgres(group):  # the dialect's own statements: only PostgreSQL tests can tell them apart
        shared = shared.replace('"not slow and not postgres"', '"not slow"')
    selection = [*group.tests]
    text = project[: project.index(SECTION)] + SECTION + shared.rstrip() + "\n"
    text += f"only_mutate = {json.dumps(list(group.modules))}\n"
    text += f"pytest_add_cli_args_test_selection = {json.dumps(selection)}\n"
    target = folder / "pyproject.toml"
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
    return folder


def on_postgres(group: Group) -> bool:
    return group.postgres and bool(os.environ.get("CANDLES_TEST_DATABASE_URL"))


def run_group(folder: Path, max_children: int, names: Sequence[str] = (), redis_url: str | None = None) -> int:
    """Run mutmut in the group's folder (only the mutants ``names`` when given); its progress goes to the terminal.

    Relay tests serve the relay on a thread of their own process (``tests.stack.RelayThread``), where mutmut sees it.
    """
    env = os.environ | {"CANDLES_TEST_RELAY_IN_PROCESS": "1", "CANDLES_MUTATION": "1"}  # see tests/examples.py
    env |= {"CANDLES_TEST_REDIS_URL": redis_url} if redis_url else {}
    return subprocess.call([*MUTMUT, "run", "--max-children", str(max_children), *names], cwd=folder, env=env)


def results(folder: Path) -> dict[str, str]:
    """Every mutant of the group → its status (``killed``, ``survived``, ``no tests``, ``not checked``, …)."""
    if not (folder / "mutants").exists():
        return {}
    out = subprocess.run([*MUTMUT, "results", "--all", "true"], cwd=folder, capture_output=True, text=True)
    statuses: dict[str, str] = {}
    for line in out.stdout.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and name:
            statuses[name] = status
    return statuses


def score_line(group: str, statuses: dict[str, str]) -> tuple[str, list[str], float]:
    """One group's summary line, its surviving mutants (not equivalent) and its score.

    The score is over the mutants tested so far (``not checked`` ones are counted apart, for a run cut short).
    """
    counts = Counter(statuses.values())
    judged = {n: s for n, s in statuses.items() if n not in EQUIVALENT and s != "not checked"}
    killed = sum(1 for s in judged.values() if s in KILLED)
    survivors = sorted(n for n, s in judged.items() if s not in KILLED)
    score = killed / len(judged) if judged else 0.0
    equivalent = sum(1 for n in statuses if n in EQUIVALENT)
    detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    line = f"{group:<11} {score:6.1%}  {killed}/{len(judged)} killed ({detail}; {equivalent} equivalent)"
    return line, survivors, score


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/mutate.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("groups", nargs="*", metavar="GROUP", help="any of: " + ", ".join(GROUPS) + " (default all)")
    parser.add_argument("--report", action="store_true", help="only print the scores of the last runs")
    parser.add_argument(
        "--survivors",
        action="store_true",
        help="test only the last run's surviving mutants again, with the current tests",
    )
    parser.add_argument("--diff", action="store_true", help="show each surviving mutant's diff")
    parser.add_argument("--max-children", type=int, default=int(os.environ.get("MUTATE_JOBS", "2")))
    ns = parser.parse_args(argv)
    unknown = [g for g in ns.groups if g not in GROUPS]
    if unknown:
        parser.error(f"unknown group {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    groups = ns.groups or list(GROUPS)
    folders = {g: prepare(g, GROUPS[g]) for g in groups}
    server = None
    if not ns.report and not os.environ.get("CANDLES_TEST_REDIS_URL"):
        # one server for every mutant's tests (each test has its own key prefix): a test run that mutmut stops
        # for its time cannot leave a server of its own behind
        sys.path.insert(0, str(ROOT))
        from backend.embedded import start_embedded

        server = start_embedded()
    redis_url = server.url if server else None
    try:
        if not ns.report:
            for group in groups:
                print(f"== mutating {group}: {' '.join(GROUPS[group].modules)}", flush=True)
                names: list[str] = []
                if ns.survivors:
                    names = [n for n, s in results(folders[group]).items() if s not in KILLED and n not in EQUIVALENT]
                    # the tests are copied again, and which test calls which function is recorded again
                    shutil.rmtree(folders[group] / "mutants" / "tests", ignore_errors=True)
                    (folders[group] / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
                    if not names:
                        continue
                jobs = 1 if on_postgres(GROUPS[group]) else ns.max_children
                run_group(folders[group], jobs, names, redis_url)
    finally:
        if server is not None:
            server.stop()
    below, shown = [], set()
    print(f"\nmutation score per group (killed / mutants, equivalent ones left out; target {TARGET:.0%}):")
    for group in groups:
        statuses = results(folders[group])
        shown |= set(statuses)
        line, survivors, score = score_line(group, statuses)
        print(line, flush=True)
        for name in survivors:
            print(f"    {statuses[name]}: {name}", flush=True)
            if ns.diff:
                subprocess.call([*MUTMUT, "show", name], cwd=folders[group])
        if score < TARGET:
            below.append(group)
    for name, why in sorted(EQUIVALENT.items()):
        if name in shown:
            print(f"equivalent: {name}: {why}")
    if below:
        print(f"below {TARGET:.0%}: {', '.join(below)}")
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main())
