"""Schema changes through Alembic: every database upgrades itself on start.

``migrate(engine)`` brings any database to the newest revision. A database made before migrations
existed (its tables made by ``create_all``, no ``alembic_version``) is stamped as revision 0001, the
schema of that version, and upgraded from there. By hand: ``python -m backend db upgrade`` (``db current``
shows the revision), or ``alembic -c backend/migrations/alembic.ini upgrade head`` with ``CANDLES_DATABASE_URL`` set.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
BASELINE = "0001"  # the schema of the version before migrations (made by create_all)
PG_LOCK_KEY = 7_305_119  # pg_advisory_lock key: one migrating process at a time
ATTEMPTS = 5
RETRY_PAUSE_S = 0.5  # grows with each attempt: the other process may be mid-upgrade
_in_process = threading.Lock()  # Alembic's context is module state: one migration per process at a time


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> str:
    """Upgrade ``engine``'s database to the head revision; returns it.

    Several processes may start at once (the relay and the ingest): PostgreSQL serialises them with an
    advisory lock, SQLite with an exclusive transaction around the whole upgrade (its DDL is transactional);
    either way the revision is read again under the lock, so a loser of the race finds the winner's work.
    """
    head = head_revision()
    with _in_process:
        return _migrate(engine, head)


def _migrate(engine: Engine, head: str) -> str:
    for attempt in range(ATTEMPTS):
        try:
            if current_revision(engine) == head:
                return head
            _upgrade(engine, head)
            return head
        except DBAPIError as exc:
            if attempt == ATTEMPTS - 1:
                raise
            log.info("schema upgrade raced another process (%s); checking again", type(exc.orig).__name__)
            time.sleep(RETRY_PAUSE_S * (attempt + 1))
    return head


def _upgrade(engine: Engine, head: str) -> None:
    with engine.connect() as conn:
        _lock(conn)
        try:
            if MigrationContext.configure(conn).get_current_revision() == head:
                return  # another process upgraded while this one waited for the lock
            log.info("upgrading the database schema to %s", head)
            config = alembic_config()
            config.attributes["connection"] = conn
            names = set(inspect(conn).get_table_names())
            if "alembic_version" not in names and "candles" in names:
                log.info("database made before migrations: stamping revision %s", BASELINE)
                command.stamp(config, BASELINE)
            command.upgrade(config, "head")
            conn.commit()
        finally:
            _unlock(conn)


def _lock(conn: Connection) -> None:
    """Hold the database's migration lock on ``conn`` until :func:`_unlock`."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": PG_LOCK_KEY})
        conn.commit()
    elif conn.dialect.name == "sqlite":
        # pysqlite opens transactions only before DML, so DDL would commit statement by statement and a
        # second process would see half a schema; take the transaction ourselves, exclusively (it waits
        # for the other process up to the busy timeout, and the retry loop above waits again).
        conn.connection.driver_connection.isolation_level = None  # type: ignore[union-attr]
        conn.exec_driver_sql("BEGIN EXCLUSIVE")


def _unlock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.rollback()  # a failed upgrade left its transaction aborted; the unlock needs a fresh one
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PG_LOCK_KEY})
        conn.commit()
    elif conn.dialect.name == "sqlite":
        conn.rollback()  # nothing after a commit; undoes a failed upgrade whole
        conn.connection.driver_connection.isolation_level = ""  # type: ignore[union-attr]
