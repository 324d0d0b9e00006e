"""The ingest's sinks: the protocol (:mod:`.base`) and the default list, one line per sink."""

from __future__ import annotations

import redis
from sqlalchemy import Engine

from backend.config import Settings
from backend.sinks.alerts import AlertSink
from backend.sinks.base import Sink
from backend.sinks.redis import RedisSink
from backend.sinks.sql import SqlSink

__all__ = ["AlertSink", "RedisSink", "Sink", "SqlSink", "default_sinks"]


def default_sinks(settings: Settings, client: redis.Redis, engine: Engine) -> list[Sink]:
    """The sinks of ``python -m backend ingest``, in the order each flush reaches them."""
    return [
        RedisSink.from_settings(settings, client),  # cache + PUBLISH: first, the viewers wait for it
        SqlSink(engine),  # closed candles into history, on its own thread
        AlertSink.from_settings(settings, client, engine),  # rules evaluated on every update
    ]
