"""``/api/v1/symbols``, ``/api/v1/candles`` and ``/api/v1/history``: candles from the Redis cache and SQL.

The cache's bytes go out as they are; SQL tops up a snapshot when the cache
holds fewer closed candles than asked, and serves history in keyset pages.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route
# signatures, whose interval type is built per Settings inside ``router``.

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from redis.exceptions import RedisError

from backend import cache
from backend.models import encode_message, normalize_symbol
from backend.protocol import split_stream_key, stream_key
from backend.relay.bodies import CandlesBody, HistoryBody, LatestBody, SymbolsBody, encoded_response, raw_candles
from backend.relay.errors import ApiError, DatabaseUnavailable
from backend.relay.heads import read_head
from backend.relay.openapi import responses
from backend.relay.state import Relay
from backend.store import query_candles

log = logging.getLogger(__name__)

MAX_LIMIT = 5000
MAX_TS_MS = 9_999_999_999_999  # year 2286: keeps every bound inside a 64-bit column
MAX_BULK_SYMBOLS = 500  # of 20 characters; more of shorter ones
SYMBOL_LIST_PATTERN = r"^[A-Za-z0-9/:_-]{2,30}(,[A-Za-z0-9/:_-]{2,30})*$"  # normalized one by one
CURSOR_PATTERN = r"^[0-9]{1,13}$"  # every value the pattern admits is a position: nothing schema-valid fails


def symbol_or_404(raw: str) -> str:
    sym = normalize_symbol(raw)
    if sym is None:
        raise ApiError(404, "unknown_symbol", f"unknown symbol {raw[:40]!r}")
    return sym


def encode_cursor(open_time: int) -> str:
    """The keyset position after which the next page starts (opaque to clients; digits, so schema-exact)."""
    return str(open_time)


def router(relay: Relay) -> APIRouter:
    """The candle routes of ``relay``; the interval parameter admits exactly its intervals."""
    settings = relay.settings
    redis, keys = relay.redis, relay.keys
    interval_names = tuple(settings.intervals)
    default_interval = "1m" if "1m" in interval_names else interval_names[0]
    Interval = Annotated[
        Literal[interval_names],  # type: ignore[valid-type]
        Query(description="candle interval"),
    ]
    Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="the most candles to return")]
    SymbolPath = Annotated[str, Path(max_length=40, description="symbol, like BTCUSDT")]
    api = APIRouter(tags=["candles"])

    async def symbol_seen(symbol: str) -> bool:
        """Whether Redis knows the symbol (True when Redis cannot tell, so nothing 404s wrongly)."""
        try:
            return await cache.symbol_seen(redis, keys, symbol, interval_names)
        except RedisError:
            return True

    @api.get("/api/v1/symbols", responses=responses(SymbolsBody, 503))
    async def symbols() -> Response:
        """Symbols the ingest has seen, and the intervals served."""
        return encoded_response(SymbolsBody(await cache.read_symbols(redis, keys), list(interval_names)))

    @api.get("/api/v1/candles/{symbol}", responses=responses(CandlesBody, 404, 422, 503))
    async def candles(symbol: SymbolPath, interval: Interval = default_interval, limit: Limit = 500) -> Response:
        """Recent closed candles (Redis, topped up from SQL when the cache holds fewer), then the forming one."""
        sym = symbol_or_404(symbol)
        known, closed, latest = await cache.read_stream(redis, keys, sym, interval, limit)
        latest_head = read_head(latest) if latest is not None else None
        if len(closed) < limit:
            end = read_head(closed[0]).open_time if closed else (latest_head.open_time if latest_head else None)
            try:
                older = await relay.db.run(
                    query_candles, sym, interval, end=end, limit=limit - len(closed), descending=True
                )
            except DatabaseUnavailable as exc:
                log.warning("candles %s %s: cache only (%s)", sym, interval, exc.message)
                older = []
            closed = [encode_message(c) for c in older] + closed
        if not (known or closed or latest is not None):
            raise ApiError(404, "unknown_symbol", f"no candles were ever seen for {sym}")
        parts = closed
        if latest_head is not None and (not closed or latest_head.open_time > read_head(closed[-1]).open_time):
            parts = [*closed[len(closed) - limit + 1 :], latest]  # ``limit`` counts the forming candle too
        return encoded_response(CandlesBody(sym, interval, raw_candles(parts)))

    @api.get("/api/v1/candles", responses=responses(LatestBody, 422, 503))
    async def latest_candles(
        interval: Interval = default_interval,
        symbols: Annotated[
            str | None,
            Query(
                max_length=MAX_BULK_SYMBOLS * 31 - 1,
                pattern=SYMBOL_LIST_PATTERN,
                description="comma-separated symbols, like BTCUSDT,ETHUSDT (default: every known symbol)",
            ),
        ] = None,
    ) -> Response:
        """The latest candle of each symbol (bulk), for overview tables."""
        if symbols:
            asked = list(dict.fromkeys(symbols.split(",")))
            names = list(dict.fromkeys(s for s in map(normalize_symbol, asked) if s))
        else:
            asked, names = [], await cache.read_symbols(redis, keys)
        found = await cache.fetch_latest(redis, keys, [stream_key(s, interval) for s in names])
        have = {split_stream_key(k)[0] for k in found}
        missing = [a for a in asked if normalize_symbol(a) not in have]
        return encoded_response(LatestBody(interval, raw_candles(list(found.values())), missing))

    @api.get("/api/v1/history/{symbol}", responses=responses(HistoryBody, 404, 422, 503))
    async def history(
        symbol: SymbolPath,
        interval: Interval = default_interval,
        start: Annotated[int | None, Query(ge=0, le=MAX_TS_MS, description="open_time >= start (ms)")] = None,
        end: Annotated[int | None, Query(ge=0, le=MAX_TS_MS, description="open_time < end (ms)")] = None,
        limit: Limit = 500,
        cursor: Annotated[
            str | None, Query(pattern=CURSOR_PATTERN, description="next_cursor of the previous page")
        ] = None,
    ) -> Response:
        """Closed candles from SQL, oldest first, in keyset-paginated pages."""
        if start is not None and end is not None and start > end:
            raise ApiError(422, "invalid_request", f"start: {start} is after end ({end}); the range is [start, end)")
        sym = symbol_or_404(symbol)
        bounds = [v for v in (start, int(cursor) + 1 if cursor is not None else None) if v is not None]
        lower = max(bounds) if bounds else None
        rows = await relay.db.run(query_candles, sym, interval, start=lower, end=end, limit=limit + 1)
        if not rows and cursor is None and not await symbol_seen(sym):
            raise ApiError(404, "unknown_symbol", f"no candles were ever seen for {sym}")
        items = rows[:limit]
        has_more = len(rows) > limit
        next_cursor = encode_cursor(items[-1].open_time) if has_more else None
        body = HistoryBody(sym, interval, items, next_cursor, len(items), has_more, limit, start, end)
        return encoded_response(body)

    return api
