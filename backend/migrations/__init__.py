"""Schema changes through Alembic: every database upgrades itself on start.

``migrate(engine)`` brings any database to the newest revision. A database made before migrations
existed (its tables made by ``create_all``, no ``alembic_version``) is stamped as revision 0001, the
schema of that version, and upgraded from there. By hand: ``python -m backend db upgrade`` (``db current``
shows the revision), or ``alembic -c backend/migrations/alembic.ini upgrade head`` with ``CANDLES_DATABASE_URL`` set.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
BASELINE = "0001"  # the schema of the version before migrations (made by create_all)
PG_LOCK_KEY = 7_305_119  # pg_advisory_lock key: one migrating process at a time
ATTEMPTS = 5
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
    advisory lock; on SQLite a loser of the race sees the winner's revision when it retries.
    """
    head = head_revision()
    with _in_process:
        return _migrate(engine, head)


def _migrate(engine: Engine, head: str) -> str:
    for attempt in range(ATTEMPTS):
        try:
            current = current_revision(engine)
            if current == head:
                return head
            log.info("upgrading the database schema from revision %s to %s", current or "none", head)
            _upgrade(engine)
            return head
        except DBAPIError as exc:
            if attempt == ATTEMPTS - 1:
                raise
            log.info("schema upgrade raced another process (%s); checking again", type(exc.orig).__name__)
    return head


def _upgrade(engine: Engine) -> None:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": PG_LOCK_KEY})
            conn.commit()
        try:
            config = alembic_config()
            config.attributes["connection"] = conn
            names = set(inspect(conn).get_table_names())
            if "alembic_version" not in names and "candles" in names:
                log.info("database made before migrations: stamping revision %s", BASELINE)
                command.stamp(config, BASELINE)
            command.upgrade(config, "head")
            conn.commit()
        finally:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PG_LOCK_KEY})
                conn.commit()
