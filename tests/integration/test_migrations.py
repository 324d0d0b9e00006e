"""Schema migrations: a database made by the version before migrations upgrades itself on start."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, event, inspect, select, text

from backend.migrations import current_revision, migrate
from backend.store import alert_rules, make_engine, metadata, normalize_url, query_candles
from tests.conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures"
HEAD = "0002"  # pinned: a new migration must update this test on purpose

pytestmark = pytest.mark.integration


def _old_schema_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    """A database whose tables the version before migrations made (its exact DDL), with a rule and a candle."""
    dialect = "postgresql" if db_url.startswith("postgres") else "sqlite"
    if dialect == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
        schema = None
    else:
        schema = f"mig_{uuid.uuid4().hex[:12]}"
        with create_engine(normalize_url(db_url)).begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        url = f"{normalize_url(db_url)}?options=-csearch_path%3D{schema}"
    engine = create_engine(normalize_url(url))
    ddl = (FIXTURES / f"schema_v0_{dialect}.sql").read_text()
    with engine.begin() as conn:
        for statement in ddl.split(";"):
            body = "\n".join(line for line in statement.splitlines() if not line.startswith("--")).strip()
            if body:
                conn.exec_driver_sql(body)
        conn.execute(
            text(
                "INSERT INTO alert_rules (symbol, interval, kind, threshold, frequency, cooldown_s, webhook_url,"
                " enabled, note, state, created_at) VALUES ('BTCUSDT', '1m', 'price_above', '97000', 'once', 0,"
                " 'https://hooks.example.com/abc', true, 'old', 'armed', 1732665600000)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO candles VALUES ('BTCUSDT', '1m', 1732665600000, 1732665659999, 1, 2, 0.5, 1.5,"
                " 10, 15, 3, 4, 6, 1732665612345)"
            )
        )
    engine.dispose()
    try:
        yield url
    finally:
        if schema:
            with create_engine(normalize_url(db_url)).begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture
def old_db(db_url: str, tmp_path: Path) -> Iterator[str]:
    yield from _old_schema_url(db_url, tmp_path)


def test_a_database_made_before_migrations_upgrades_on_start_and_keeps_its_data(old_db: str) -> None:
    engine = make_engine(old_db)  # what every process does on start
    try:
        assert current_revision(engine) == HEAD
        with engine.connect() as conn:
            rule = conn.execute(select(alert_rules.c.targets, alert_rules.c.watch, alert_rules.c.fire_count)).one()
        assert tuple(rule) == (["https://hooks.example.com/abc"], "close", 0)
        assert "webhook_url" not in {c["name"] for c in inspect(engine).get_columns("alert_rules")}
        (candle,) = query_candles(engine, "BTCUSDT", "1m")
        assert (candle.open, candle.close, candle.trades, candle.closed) == (1.0, 1.5, 3, True)
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        engine.dispose()


def test_a_new_database_is_made_at_head_and_matches_the_tables(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == HEAD
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        assert migrate(engine) == HEAD  # idempotent
    finally:
        engine.dispose()


def test_processes_starting_at_once_migrate_once(tmp_path: Path) -> None:
    """The relay and the ingest start together on a new SQLite file: both come up, one migration ran."""
    url = f"sqlite:///{tmp_path / 'race.sqlite3'}"
    code = f"from backend.store import make_engine; make_engine({url!r}).dispose()"
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=subprocess.PIPE) for _ in range(4)]
    results = [(p.wait(60), p.stderr.read().decode()) for p in procs]  # type: ignore[union-attr]
    assert results == [(0, "")] * 4
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).all() == [(HEAD,)]


def test_no_other_process_sees_a_half_made_sqlite_schema(tmp_path: Path) -> None:
    """The upgrade is one transaction: while it runs, another connection sees no table of it (this race once
    failed CI: a second process found ``candles`` made but no revision, and its own CREATE TABLE failed)."""
    path = tmp_path / "atomic.sqlite3"
    engine = create_engine(f"sqlite:///{path}")
    seen: list[list[str]] = []

    @event.listens_for(engine, "after_cursor_execute")
    def _look_from_outside(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.strip().startswith("CREATE TABLE candles"):
            outside = sqlite3.connect(path, timeout=0)
            try:
                seen.append([row[0] for row in outside.execute("SELECT name FROM sqlite_master WHERE type='table'")])
            except sqlite3.OperationalError as exc:  # a rollback-journal database is locked outright: also unseen
                seen.append([str(exc)])
            finally:
                outside.close()

    assert migrate(engine) == HEAD
    assert seen and "candles" not in seen[0] and "alembic_version" not in seen[0]
    assert current_revision(engine) == HEAD


def test_the_db_command_shows_and_upgrades_the_revision(tmp_path: Path) -> None:
    def db(action: str) -> str:
        cmd = [sys.executable, "-m", "backend", "db", action, "--database-url", f"sqlite:///{tmp_path / 'c.sqlite3'}"]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
        return done.stdout.strip()

    assert db("current") == f"database at revision none; newest is {HEAD}"
    assert db("upgrade") == f"database at revision {HEAD} (newest)"
    assert db("current") == f"database at revision {HEAD}; newest is {HEAD}"
