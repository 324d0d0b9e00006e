"""Shared fixtures: real servers, found through the environment or started here.

``CANDLES_TEST_REDIS_URL`` names a Redis to use (CI: the machine's server);
without it an embedded server is started once per session: Valkey, or the
pure-Python fallback where Valkey is not installed or ``CANDLES_EMBEDDED=python``
forces it (then the stacks the tests start use it too, and the tests that need
a Valkey feature the fallback lacks are skipped, each saying which). SQL tests
run on SQLite always and on PostgreSQL when ``CANDLES_TEST_DATABASE_URL`` is set.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, text

from backend.config import Settings
from backend.store import make_engine, metadata
from tests.stack import isolated_settings

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data" / "samples"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("CANDLES_TEST_REDIS_URL")
    if url:
        yield url
        return
    from backend.embedded import start_embedded

    server = start_embedded(Settings.from_env().embedded)
    yield server.url
    server.stop()


def fallback_forced() -> bool:
    """True when this run's embedded servers are the pure-Python fallback (no external Redis named)."""
    from backend.embedded import resolve

    return resolve(Settings.from_env().embedded) == "python" and not os.environ.get("CANDLES_TEST_REDIS_URL")


# test (file::name) → why it cannot run on the pure-Python fallback (the Valkey feature it needs)
NEEDS_VALKEY: dict[str, str] = {
    "test_publish.py::test_redis_commands_per_flush_depend_only_on_the_changed_streams": (
        "counts commands with INFO stats, which fakeredis does not implement"
    ),
    "test_publish.py::test_a_run_of_closed_candles_is_one_range_and_two_runs_are_two": (
        "counts commands with INFO stats, which fakeredis does not implement"
    ),
    "test_api_stack.py::test_backend_run_serves_live_candles_and_stops_cleanly": (
        "checks the embedded Valkey's own log line at shutdown (the fallback logs its own)"
    ),
}


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    """Settings isolated per test: own key prefix and channels on the shared Redis."""
    return isolated_settings(redis_url, tmp_path)


def _postgres_url() -> str | None:
    return os.environ.get("CANDLES_TEST_DATABASE_URL")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A clean database: SQLite in a temp dir, and PostgreSQL when configured."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite3'}"
        return
    url = _postgres_url()
    if not url:
        pytest.skip("PostgreSQL not configured: set CANDLES_TEST_DATABASE_URL to run this against it")
    engine = make_engine(url)
    _truncate(engine)
    engine.dispose()
    yield url


@pytest.fixture
def db_engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def _truncate(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(text(f'DELETE FROM "{table.name}"'))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The folder says what a test needs: tests/integration real servers, tests/browser Chromium too."""
    fallback = fallback_forced()
    for item in items:
        need = NEEDS_VALKEY.get(f"{Path(str(item.path)).name}::{getattr(item, 'originalname', item.name)}")
        if fallback and need:
            item.add_marker(pytest.mark.skip(reason=f"on the pure-Python fallback server: {need}"))
        parts = Path(str(item.path)).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        elif "browser" in parts:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.integration)
    if _mutant():  # make mutate: fastest tests first, so the first failure (-x) ends it
        durations = _mutmut_durations()
        items.sort(key=lambda item: durations.get(item.nodeid, 0.0))


if os.environ.get("CANDLES_MUTATION") == "1":  # make mutate: a failing example kills the mutant, no need to shrink it
    from hypothesis import Phase
    from hypothesis import settings as hypothesis_settings  # not `settings`: that is a fixture here

    hypothesis_settings.register_profile("mutation", phases=(Phase.explicit, Phase.reuse, Phase.generate))
    hypothesis_settings.load_profile("mutation")


def _mutant() -> str | None:
    """The mutant mutmut is testing in this process (``make mutate``), if any."""
    name = os.environ.get("MUTANT_UNDER_TEST", "")
    return name if "__mutmut_" in name else None


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under mutmut, 4 GB more data at most: a mutant that loops forever appending fails, not the machine.

    The data limit, not the address space: numpy's and glibc's per-thread reservations are address space only.
    """
    if _mutant() and sys.platform == "linux":
        import resource

        fields = Path("/proc/self/status").read_text().split("VmData:")[1].split()
        _, hard = resource.getrlimit(resource.RLIMIT_DATA)
        resource.setrlimit(resource.RLIMIT_DATA, (int(fields[0]) * 1024 + (4 << 30), hard))


def _mutmut_durations() -> dict[str, float]:
    """How long each test took in mutmut's first run (it runs the tests inside its ``mutants/`` folder)."""
    try:
        return json.loads(Path("mutmut-stats.json").read_text())["duration_by_test"]
    except (OSError, ValueError, KeyError):
        return {}
