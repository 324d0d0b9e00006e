"""Alembic's entry: runs the migrations on the connection ``migrate()`` passes, or on a URL (CLI use)."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine

from backend.store import metadata, normalize_url

config = context.config


def run() -> None:
    conn = config.attributes.get("connection")
    if conn is not None:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("CANDLES_DATABASE_URL")
    if not url:
        raise SystemExit("set CANDLES_DATABASE_URL (or sqlalchemy.url) to the database to migrate")
    engine = create_engine(normalize_url(url))
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run()
