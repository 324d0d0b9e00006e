"""The relay's response bodies: msgspec structs, encoded once per response.

Candles from Redis go out as the bytes the ingest wrote (:func:`raw_candles`),
never decoded and re-encoded.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from starlette.responses import Response

from backend.models import Candle

_encoder = msgspec.json.Encoder()


class ErrorBody(msgspec.Struct):
    """Every error response: a stable code, a readable message, details when useful."""

    error: str
    message: str
    detail: Any = None
    request_id: str | None = None


class SymbolsBody(msgspec.Struct):
    symbols: list[str]
    intervals: list[str]


class CandlesBody(msgspec.Struct):
    """Recent closed candles, oldest first; the last is the forming one when there is one."""

    symbol: str
    interval: str
    candles: list[Candle]


class LatestBody(msgspec.Struct):
    """The latest candle of each symbol that has one; ``missing``: the asked symbols that have none."""

    interval: str
    candles: list[Candle]
    missing: list[str] = []


class HistoryBody(msgspec.Struct):
    """One page of closed candles, oldest first; pass ``next_cursor`` back for the next."""

    symbol: str
    interval: str
    items: list[Candle]
    next_cursor: str | None
    count: int
    has_more: bool
    limit: int  # what was asked: the page size and the range
    start: int | None
    end: int | None


class RedisState(msgspec.Struct):
    connected: bool
    reconnects: int
    channel: str
    channels: list[str]


class RelayFigures(msgspec.Struct, kw_only=True):
    """What relay processes are doing: one worker's figures, or their sum over every worker."""

    connections: int
    subscriptions: dict[str, int]
    messages_in: int
    messages_out: int
    updates_in: int
    updates_out: int
    coalesced: int
    dropped: int
    slow_disconnects: int
    invalid_messages: int
    redis: RedisState
    last_delay_ms: int | None
    uptime_s: float


class WorkerStats(RelayFigures, kw_only=True):
    """One relay process (worker), as it reports itself to Redis every second (README "Relay workers")."""

    worker: str  # HOST:PID
    host: str
    pid: int


class RelayStats(RelayFigures, kw_only=True):
    """``GET /ws/stats``: every relay worker reporting to this Redis, in total (these figures) and one by one."""

    worker: str  # the one that answered
    workers: list[WorkerStats]


class StatsBody(msgspec.Struct):
    """Pipeline figures (the ingest's stats hash, null when no ingest reported) and this relay's."""

    ingest: dict[str, Any] | None
    relay: RelayStats


class HealthBody(msgspec.Struct):
    status: Literal["ok", "degraded"]
    redis: bool
    database: bool
    subscription: bool
    connections: int


BODIES = (ErrorBody, SymbolsBody, CandlesBody, LatestBody, HistoryBody, StatsBody, HealthBody, RelayStats, WorkerStats)


def encoded_response(body: msgspec.Struct, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_encoder.encode(body), status_code=status, media_type="application/json", headers=headers)


def raw_candles(parts: list[bytes]) -> list[Candle]:
    """Cached candle bytes, typed as candles: msgspec writes ``Raw`` values out verbatim."""
    return [msgspec.Raw(p) for p in parts]  # type: ignore[misc]
