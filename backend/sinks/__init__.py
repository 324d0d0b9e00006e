"""The ingest's sinks: the protocol (:mod:`.base`) and the default list, one line per sink."""

from __future__ import annotations

import redis
from sqlalchemy import Engine

from backend.config import Settings
from backend.sinks.alerts import AlertSink
from backend.sinks.base import Sink
from backend.sinks.redis import RedisSink
from backend.sinks.spool import Spool, spool_path
from backend.sinks.sql import SqlSink

__all__ = ["AlertSink", "RedisSink", "Sink", "SqlSink", "default_sinks"]


def default_sinks(settings: Settings, client: redis.Redis, engine: Engine) -> list[Sink]:
    """The sinks of ``python -m backend ingest``, in the order each flush reaches them."""
    database = engine.url.render_as_string(hide_password=False)
    spool = Spool(spool_path(settings.data_dir, database, settings.redis_prefix))
    return [
        RedisSink.from_settings(settings, client),  # cache + PUBLISH: first, the viewers wait for it
        SqlSink(engine, spool=spool),  # closed candles: spooled to a file, then into history on its own thread
        AlertSink.from_settings(settings, client, engine),  # rules evaluated on every update
    ]
