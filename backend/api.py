"""The relay: a stateless FastAPI app (WebSocket fan-out + REST) served by uvicorn.

Any number can run behind a load balancer; each holds exactly one Redis
subscription whatever the number of viewers (see :mod:`backend.relay`). REST
reads candles from the Redis cache (topped up from SQL) and history from SQL.
Responses are msgspec structs encoded once; candles from Redis go out as the
bytes the ingest wrote, never decoded and re-encoded.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route
# signatures, whose interval type is built per Settings inside create_app.

import asyncio
import contextlib
import gc
import hmac
import logging
import re
import resource
import signal
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

import msgspec
import redis.asyncio as aioredis
import uvicorn
from fastapi import FastAPI, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.cache import CacheKeys
from backend.config import Settings
from backend.models import Candle, encode_message, normalize_symbol
from backend.relay import WRITE_FRAME_EXTENSION, Head, Hub, RelayStats
from backend.store import make_engine, query_candles

log = logging.getLogger(__name__)

API_VERSION = "1"
MAX_LIMIT = 5000
MAX_TS_MS = 9_999_999_999_999  # year 2286: keeps every bound inside a 64-bit column
MAX_BULK_SYMBOLS = 500  # of 20 characters; more of shorter ones
SYMBOL_LIST_PATTERN = r"^[A-Za-z0-9]{2,20}(,[A-Za-z0-9]{2,20})*$"
CURSOR_PATTERN = r"^[0-9]{1,13}$"  # every value the pattern admits is a position: nothing schema-valid fails
PUBLIC_PATHS = frozenset({"/health"})
QUERY_TOKEN_PATHS = frozenset({"/ws", "/ws/test"})  # a browser cannot set a header on these
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
WS_SEND_BUFFER_BYTES = 256 * 1024  # per WebSocket; the kernel doubles it
TEST_PAGE = FilePath(__file__).with_name("ws_test.html")
_encoder = msgspec.json.Encoder()
_head = msgspec.json.Decoder(Head)
_ingest_value = msgspec.json.Decoder()

WS_DESCRIPTION = """
Live candles over **WebSocket `/ws`** (not listed below: OpenAPI has no WebSocket operations).

Send `{"op": "subscribe", "symbols": ["BTCUSDT"], "intervals": ["1m"]}` (and `unsubscribe`, `ping`).
The server answers `{"type": "subscribed", "streams": [...]}`, then one array frame with the latest
candle of each stream, then array frames of updates. Control messages are single objects:
`subscribed`, `unsubscribed`, `resync` (a fresh snapshot follows), `error`, `pong`. A client that
stays behind is closed with code 4008 "slow consumer". With a token configured, pass it as
`?token=` or `Authorization: Bearer`.
"""


# ---------------------------------------------------------------- response bodies


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
    """The latest candle of each symbol that has one."""

    interval: str
    candles: list[Candle]


class HistoryBody(msgspec.Struct):
    """One page of closed candles, oldest first; pass ``next_cursor`` back for the next."""

    symbol: str
    interval: str
    items: list[Candle]
    next_cursor: str | None
    count: int
    has_more: bool


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


BODIES = (ErrorBody, SymbolsBody, CandlesBody, LatestBody, HistoryBody, StatsBody, HealthBody, RelayStats)


class ApiError(Exception):
    """An expected failure, answered as ``ErrorBody`` with ``status``."""

    def __init__(self, status: int, code: str, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail


class DatabaseUnavailable(ApiError):
    def __init__(self, reason: str) -> None:
        super().__init__(503, "database_unavailable", f"the database is unreachable: {reason}")


def encoded_response(body: msgspec.Struct, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_encoder.encode(body), status_code=status, media_type="application/json", headers=headers)


def raw_candles(parts: list[bytes]) -> list[Candle]:
    """Cached candle bytes, typed as candles: msgspec writes ``Raw`` values out verbatim."""
    return [msgspec.Raw(p) for p in parts]  # type: ignore[misc]


def encode_cursor(open_time: int) -> str:
    """The keyset position after which the next page starts (opaque to clients; digits, so schema-exact)."""
    return str(open_time)


def without_credentials(url: str) -> str:
    """A URL fit for a log line: ``redis://user:secret@host`` → ``redis://host``."""
    scheme, sep, rest = url.partition("://")
    return scheme + sep + rest.rsplit("@", 1)[-1] if sep else url


def symbol_or_404(raw: str) -> str:
    sym = normalize_symbol(raw)
    if sym is None:
        raise ApiError(404, "unknown_symbol", f"unknown symbol {raw[:40]!r}")
    return sym


# ---------------------------------------------------------------- SQL


class Database:
    """The SQL engine for history, opened lazily: an unreachable database degrades history only."""

    RETRY_S = 2.0

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine | None = None
        self.last_error: str | None = None
        self._retry_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> Engine:
        if self.engine is not None:
            return self.engine
        async with self._lock:
            if self.engine is None:
                if time.monotonic() < self._retry_at:
                    raise DatabaseUnavailable(self.last_error or "not connected")
                try:
                    self.engine = await asyncio.to_thread(make_engine, self.url)
                except Exception as exc:  # any driver or URL problem: history degrades, the relay runs on
                    self._retry_at = time.monotonic() + self.RETRY_S
                    self.last_error = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                    log.warning("database unavailable: %s", self.last_error)
                    raise DatabaseUnavailable(self.last_error) from None
                self.last_error = None
        return self.engine

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(engine, *args, **kwargs)`` on a worker thread; a database error becomes a 503."""
        engine = await self.get()
        try:
            return await asyncio.to_thread(fn, engine, *args, **kwargs)
        except (SQLAlchemyError, OSError) as exc:
            self.last_error = str(exc).splitlines()[0][:200]
            raise DatabaseUnavailable(self.last_error) from None

    async def ping(self, timeout: float = 2.0) -> bool:
        try:
            await asyncio.wait_for(self.run(_select_one), timeout)
        except (ApiError, TimeoutError):
            return False
        return True

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()


def _select_one(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


# ---------------------------------------------------------------- the relay's state


class Relay:
    """What one relay process holds: settings, the Redis clients, the hub, the database, metrics."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = CacheKeys(settings.redis_prefix)
        self.redis = aioredis.Redis.from_url(
            settings.redis_url or "redis://127.0.0.1:6379/0",
            socket_connect_timeout=2,
            socket_timeout=5,
            retry=Retry(NoBackoff(), 1),  # one retry: a pooled connection from before a Redis restart
            client_name="candles-relay",
        )
        self.hub = Hub(settings, self.redis)
        self.db = Database(settings.effective_database_url())
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_HubCollector(self.hub))
        ProcessCollector(registry=self.registry)  # the relay's CPU, memory, file descriptors
        GCCollector(registry=self.registry)
        self.http_requests = Counter(
            "candles_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=self.registry
        )
        self.http_seconds = Histogram(
            "candles_http_request_duration_seconds", "HTTP response time", ["route"], registry=self.registry
        )
        self._tasks: list[asyncio.Task[None]] = []

    @asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        """Start the one Redis subscription, the slow-client watchdog and the SQL engine."""
        self._tasks = [
            asyncio.create_task(self.hub.run_subscriber(), name="redis-subscriber"),
            asyncio.create_task(self.hub.run_watchdog(), name="slow-client-watchdog"),
        ]
        with contextlib.suppress(ApiError, TimeoutError):  # history answers 503 until the database is there
            await asyncio.wait_for(self.db.get(), 5)
        gc.freeze()  # what exists now lives as long as the process: keep the collector's full passes off it
        log.info(
            "relay ready: Redis %s (channels %s), SQL %s",
            without_credentials(self.settings.redis_url or ""),
            ", ".join(self.hub.channels),
            without_credentials(self.db.url),
        )
        try:
            yield
        finally:
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.redis.aclose()
            self.db.close()

    async def symbols(self) -> list[str]:
        return sorted(s.decode() for s in await self.redis.smembers(self.keys.symbols))

    async def ingest_stats(self) -> dict[str, Any] | None:
        try:
            raw = await self.redis.hgetall(self.keys.stats("ingest"))
        except RedisError:
            return None
        if not raw:
            return None
        out: dict[str, Any] = {}
        for k, v in raw.items():
            try:
                out[k.decode()] = _ingest_value.decode(v)
            except msgspec.DecodeError:
                out[k.decode()] = v.decode("utf-8", "replace")
        return out

    async def symbol_seen(self, symbol: str) -> bool:
        """Whether Redis knows the symbol (True when Redis cannot tell, so nothing 404s wrongly)."""
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.sismember(self.keys.symbols, symbol)
            for interval in self.settings.intervals:
                pipe.exists(self.keys.latest(symbol, interval))
            return any(await pipe.execute())
        except RedisError:
            return True

    async def redis_ok(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self.redis.ping(), 2.0))
        except (RedisError, OSError, TimeoutError):
            return False


class _HubCollector(Collector):
    """Relay figures for ``/metrics``, read from the hub at scrape time (nothing on the hot path)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> list[Metric]:
        h = self.hub
        gauges = (
            ("candles_relay_connections", "open WebSocket connections", len(h.clients)),
            ("candles_relay_streams", "streams with at least one subscriber", len(h.subscribers)),
            ("candles_relay_redis_connected", "1 while the Redis subscription is up", int(h.redis_connected)),
            ("candles_relay_delay_ms", "publish to relay delay of the last message", h.last_delay_ms or 0),
        )
        counters = (
            ("candles_relay_redis_messages", "Redis messages received", h.messages_in),
            ("candles_relay_updates_in", "wire objects received from Redis", h.updates_in),
            ("candles_relay_frames_out", "WebSocket data frames sent", h.messages_out),
            ("candles_relay_updates_out", "wire objects sent to clients", h.updates_out),
            ("candles_relay_coalesced", "updates replaced by a newer one before a slow client got them", h.coalesced),
            ("candles_relay_dropped", "updates never delivered (slow clients closed)", h.dropped),
            ("candles_relay_slow_disconnects", "clients closed as slow consumers", h.slow_disconnects),
            ("candles_relay_invalid_messages", "unreadable Redis messages", h.invalid_messages),
            ("candles_relay_redis_reconnects", "Redis subscription reconnects", h.reconnects),
        )
        out: list[Metric] = [GaugeMetricFamily(n, d, value=v) for n, d, v in gauges]
        out += [CounterMetricFamily(n, d, value=v) for n, d, v in counters]
        return out


# ---------------------------------------------------------------- middleware


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def presented_token(scope: Scope) -> str | None:
    """The token from ``Authorization: Bearer``, or the ``token`` query parameter where allowed."""
    auth = _header(scope, b"authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    if scope["path"] in QUERY_TOKEN_PATHS:
        values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
        if values:
            return values[0]
    return None


class RequestContext:
    """Request id and response time on every response, one log line per request, token check.

    A plain ASGI middleware: it wraps ``send`` for HTTP only, so WebSocket data
    frames pass straight through.
    """

    def __init__(self, app: ASGIApp, relay: Relay) -> None:
        self.app = app
        self.relay = relay
        self.token = relay.settings.api_token

    def authorized(self, scope: Scope) -> bool:
        if not self.token or scope["path"] in PUBLIC_PATHS:
            return True
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            return True  # CORS preflights carry no credentials
        given = presented_token(scope)
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        rid = incoming if incoming and REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        if scope["type"] == "websocket":
            if self.authorized(scope):
                await self.app(scope, receive, send)
            else:
                await deny_websocket(scope, receive, send, rid)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                elapsed = (time.perf_counter() - start) * 1000
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                headers.append((b"x-response-time", f"{elapsed:.2f}ms".encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            if self.authorized(scope):
                await self.app(scope, receive, send_with_headers)
            else:
                await unauthorized(rid)(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            label = getattr(route, "path", "unmatched")
            self.relay.http_requests.labels(scope["method"], label, str(status)).inc()
            self.relay.http_seconds.labels(label).observe(elapsed)
            client = scope.get("client")
            log.info(
                '%s "%s %s" %d %.1fms rid=%s',
                f"{client[0]}:{client[1]}" if client else "-",
                scope["method"],
                scope["path"],
                status,
                elapsed * 1000,
                rid,
            )


def unauthorized(rid: str) -> Response:
    body = ErrorBody("unauthorized", "a valid API token is required (Authorization: Bearer …)", request_id=rid)
    return encoded_response(body, 401, {"WWW-Authenticate": "Bearer"})


async def deny_websocket(scope: Scope, receive: Receive, send: Send, rid: str) -> None:
    """Refuse a WebSocket handshake with HTTP 401 (or close 1008 where the server cannot)."""
    if (await receive())["type"] != "websocket.connect":
        return
    log.info("WebSocket %s refused: no valid token rid=%s", scope["path"], rid)
    if "websocket.http.response" in scope.get("extensions", {}):
        response = unauthorized(rid)
        headers = [*response.raw_headers, (b"x-request-id", rid.encode())]
        await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": response.body})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": "unauthorized"})


class WebSocketEndpoint:
    """``WS /ws`` as a plain ASGI app: accept, then hand the connection to the hub."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        rid = scope.get("state", {}).get("request_id", "")
        await send({"type": "websocket.accept", "headers": [(b"x-request-id", rid.encode())]})
        client = scope.get("client")
        peer = f"{client[0]}:{client[1]}" if client else "-"
        log.info("WebSocket %s open rid=%s", peer, rid)
        try:
            write = scope.get("extensions", {}).get(WRITE_FRAME_EXTENSION)
            await self.relay.hub.serve(receive, send, peer=peer, write=write)
        finally:
            log.info("WebSocket %s closed rid=%s", peer, rid)


# ---------------------------------------------------------------- the app


def _responses(ok: type | str, *errors: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses: ``ok`` (a body struct, or a media type) and ``ErrorBody`` for each error."""
    if isinstance(ok, str):
        success: dict[str, Any] = {"content": {ok: {"schema": {"type": "string"}}}}
    else:
        success = {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ok.__name__}"}}}}
    out: dict[int | str, dict[str, Any]] = {200: {"description": "Success", **success}}
    error_schema = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
    reasons = {
        401: "Missing or wrong API token",
        404: "Unknown symbol",
        422: "Invalid parameter",
        503: "Redis or the database is unreachable",
    }
    for status in (401, *errors):
        out[status] = {"description": reasons[status], **error_schema}
    return out


def create_app(settings: Settings) -> FastAPI:
    """Build the relay app; its lifespan starts the Redis subscriber task and the SQL engine."""
    relay = Relay(settings)
    hub = relay.hub
    keys = relay.keys
    app = FastAPI(
        title="Candlestream relay",
        version=API_VERSION,
        description=WS_DESCRIPTION,
        lifespan=relay.lifespan,
        redoc_url=None,
    )
    app.state.relay = relay
    interval_names = tuple(settings.intervals)
    default_interval = "1m" if "1m" in interval_names else interval_names[0]
    Interval = Annotated[
        Literal[interval_names],  # type: ignore[valid-type]
        Query(description="candle interval"),
    ]
    Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="closed candles to return")]
    SymbolPath = Annotated[str, Path(max_length=40, description="symbol, like BTCUSDT")]

    @app.get("/api/v1/symbols", responses=_responses(SymbolsBody, 503), tags=["candles"])
    async def symbols() -> Response:
        """Symbols the ingest has seen, and the intervals served."""
        return encoded_response(SymbolsBody(await relay.symbols(), list(interval_names)))

    @app.get("/api/v1/candles/{symbol}", responses=_responses(CandlesBody, 404, 422, 503), tags=["candles"])
    async def candles(symbol: SymbolPath, interval: Interval = default_interval, limit: Limit = 500) -> Response:
        """Recent closed candles (Redis, topped up from SQL when the cache holds fewer), then the forming one."""
        sym = symbol_or_404(symbol)
        pipe = relay.redis.pipeline(transaction=False)
        pipe.sismember(keys.symbols, sym)
        pipe.zrange(keys.recent(sym, interval), -limit, -1)
        pipe.get(keys.latest(sym, interval))
        known, closed, latest = await pipe.execute()
        closed = list(closed)
        latest_head = _head.decode(latest) if latest is not None else None
        if len(closed) < limit:
            end = _head.decode(closed[0]).open_time if closed else (latest_head.open_time if latest_head else None)
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
        if latest_head is not None and (not closed or latest_head.open_time > _head.decode(closed[-1]).open_time):
            parts = [*closed, latest]
        return encoded_response(CandlesBody(sym, interval, raw_candles(parts)))

    @app.get("/api/v1/candles", responses=_responses(LatestBody, 422, 503), tags=["candles"])
    async def latest_candles(
        interval: Interval = default_interval,
        symbols: Annotated[
            str | None,
            Query(
                max_length=MAX_BULK_SYMBOLS * 21 - 1,
                pattern=SYMBOL_LIST_PATTERN,
                description="comma-separated symbols, like BTCUSDT,ETHUSDT (default: every known symbol)",
            ),
        ] = None,
    ) -> Response:
        """The latest candle of each symbol (bulk), for overview tables."""
        names = list(dict.fromkeys(symbols.upper().split(","))) if symbols else await relay.symbols()
        values = await relay.redis.mget([keys.latest(s, interval) for s in names]) if names else []
        return encoded_response(LatestBody(interval, raw_candles([v for v in values if v is not None])))

    @app.get("/api/v1/history/{symbol}", responses=_responses(HistoryBody, 404, 422, 503), tags=["candles"])
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
        sym = symbol_or_404(symbol)
        bounds = [v for v in (start, int(cursor) + 1 if cursor is not None else None) if v is not None]
        lower = max(bounds) if bounds else None
        rows = await relay.db.run(query_candles, sym, interval, start=lower, end=end, limit=limit + 1)
        if not rows and cursor is None and not await relay.symbol_seen(sym):
            raise ApiError(404, "unknown_symbol", f"no candles were ever seen for {sym}")
        items = rows[:limit]
        has_more = len(rows) > limit
        next_cursor = encode_cursor(items[-1].open_time) if has_more else None
        return encoded_response(HistoryBody(sym, interval, items, next_cursor, len(items), has_more))

    @app.get("/api/v1/stats", responses=_responses(StatsBody), tags=["status"])
    async def stats() -> Response:
        """The ingest's pipeline figures (from Redis) and this relay's."""
        return encoded_response(StatsBody(await relay.ingest_stats(), hub.stats()))

    @app.get("/ws/stats", responses=_responses(RelayStats), tags=["status"])
    async def ws_stats() -> Response:
        """Connections, subscriptions per stream, messages in/out, slow clients, Redis subscription state."""
        return encoded_response(hub.stats())

    health_responses = _responses(HealthBody)
    health_responses.pop(401)
    health_responses[503] = {**health_responses[200], "description": "Redis or the database is unreachable"}

    @app.get("/health", responses=health_responses, tags=["status"])
    async def health() -> Response:
        """200 when Redis, the subscription and the database work; 503 "degraded" otherwise."""
        redis_ok, db_ok = await asyncio.gather(relay.redis_ok(), relay.db.ping())
        sub_ok = hub.redis_connected
        ok = redis_ok and sub_ok and db_ok
        body = HealthBody("ok" if ok else "degraded", redis_ok and sub_ok, db_ok, sub_ok, len(hub.clients))
        return encoded_response(body, 200 if ok else 503)

    @app.get("/metrics", response_class=PlainTextResponse, responses=_responses("text/plain"), tags=["status"])
    async def metrics() -> Response:
        """Prometheus exposition: relay figures and HTTP timings."""
        return Response(generate_latest(relay.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/ws/test", response_class=HTMLResponse, responses=_responses("text/html"), tags=["status"])
    async def ws_test() -> HTMLResponse:
        """A self-contained page: pick symbols, connect, watch updates arrive with their latency."""
        return HTMLResponse(TEST_PAGE.read_text())

    app.router.routes.append(WebSocketRoute("/ws", WebSocketEndpoint(relay)))
    _install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET"],
            allow_headers=["Authorization", "X-Request-ID"],
            expose_headers=["X-Request-ID", "X-Response-Time"],
        )
    app.add_middleware(RequestContext, relay=relay)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _error(request: Request, status: int, code: str, message: str, detail: Any = None) -> Response:
    rid = request.scope.get("state", {}).get("request_id")
    return encoded_response(ErrorBody(code, message, detail, rid), status)


def _install_error_handlers(app: FastAPI) -> None:
    """Every failure answers JSON: 404/405 from routing, 422 from validation, 503 for Redis/SQL."""

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return _error(request, exc.status, exc.code, exc.message, exc.detail)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(request, exc.status_code, code, str(exc.detail))

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = jsonable_encoder(exc.errors())
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path"))
        message = f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid request"))
        return _error(request, 422, "invalid_request", message, errors)

    async def redis_error(request: Request, exc: Exception) -> Response:
        log.warning("Redis error on %s: %s", request.url.path, exc)
        return _error(request, 503, "redis_unavailable", f"Redis is unreachable: {exc}")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(RedisError, redis_error)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus the msgspec body schemas and the headers every response carries."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    _, components = msgspec.json.schema_components(BODIES, ref_template="#/components/schemas/{name}")
    schema.setdefault("components", {}).setdefault("schemas", {}).update(components)
    schema["components"]["headers"] = {
        "X-Request-ID": {"description": "the request's id (echoed or generated)", "schema": {"type": "string"}},
        "X-Response-Time": {"description": "time to the response, like 1.25ms", "schema": {"type": "string"}},
    }
    headers = {name: {"$ref": f"#/components/headers/{name}"} for name in schema["components"]["headers"]}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for response in operation.get("responses", {}).values():
                response.setdefault("headers", {}).update(headers)
    if app.state.relay.settings.api_token:
        schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        schema["security"] = [{"bearer": []}]
    app.openapi_schema = schema
    return schema


# ---------------------------------------------------------------- serving


def _websocket_protocol() -> Any:
    """uvicorn's sans-I/O WebSocket protocol, fixed so a peer that stopped reading is let go.

    uvicorn waits for the write buffer to drain before it sends a close frame,
    and closes gracefully (waiting for that buffer) on a keepalive timeout: a
    peer that stopped reading never drains it, so the socket would stay open
    forever. Here the close frame is queued behind the unsent data at once and
    the connection is aborted when it has not finished closing after a grace.
    Each WebSocket's kernel send buffer is bounded too, so the updates a client
    has not read cannot hide there for long (nor cost megabytes per client).
    And the relay may write prebuilt frames directly (``write_frame``), which
    is what makes fan-out to thousands of clients cheap.
    """
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    except ImportError:  # an older uvicorn: its default protocol
        return "auto"

    class RelayWebSocketProtocol(WebSocketsSansIOProtocol):
        abort_after_s = 5.0

        def handle_connect(self, event: Any) -> None:
            super().handle_connect(event)
            scope = getattr(self, "scope", None)
            if scope is not None and hasattr(self, "writable"):  # the app task starts on the next turn, sees this
                scope.setdefault("extensions", {})[WRITE_FRAME_EXTENSION] = self.write_frame

        def write_frame(self, frame: bytes) -> bool:
            """Write a prebuilt frame now: the relay's fan-out path (same bytes to every client, no task switch).

            Declines (False) unless the connection is open, has room in its write
            buffer and negotiated no extension that would transform frames.
            """
            if (
                self.close_sent
                or self.disconnected
                or not self.handshake_complete
                or not self.writable.is_set()
                or self.conn.extensions
                or self.transport.is_closing()
            ):
                return False
            self.transport.write(frame)
            return True

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            if sock is not None:  # a bounded kernel buffer: a stalled peer shows as behind within seconds
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, WS_SEND_BUFFER_BYTES)

        async def send(self, message: Any) -> None:
            writable = getattr(self, "writable", None)
            if (
                message["type"] == "websocket.close"
                and writable is not None
                and not writable.is_set()
                and self.handshake_complete
                and not self.close_sent
                and not self.disconnected
            ):
                code = message.get("code", 1000)
                reason = message.get("reason") or ""
                self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
                self.conn.send_close(code, reason)
                self.transport.write(b"".join(self.conn.data_to_send()))
                self.close_sent = True
                self._abort_later()
                return
            await super().send(message)

        def keepalive_timeout(self) -> None:
            super().keepalive_timeout()
            self._abort_later()

        def _abort_later(self) -> None:
            self.loop.call_later(self.abort_after_s, self._abort)

        def _abort(self) -> None:
            if not self.disconnected:
                self.transport.abort()

    return RelayWebSocketProtocol


def _raise_fd_limit() -> None:
    """Every WebSocket is a file descriptor: allow as many as the hard limit does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))


def serve(settings: Settings) -> None:
    """Run the relay with uvicorn on ``api_host:api_port`` until SIGINT/SIGTERM."""
    _raise_fd_limit()
    config = uvicorn.Config(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        ws=_websocket_protocol(),
        ws_max_size=1 << 20,  # larger client messages close the connection (1009)
        ws_per_message_deflate=False,  # compression per client would cost CPU and ~300 KB per connection
        ws_ping_interval=settings.ws_ping_interval_s or None,
        ws_ping_timeout=settings.ws_ping_timeout_s or None,
        access_log=False,  # RequestContext logs each request with its id
        log_config=None,
        backlog=4096,
        timeout_graceful_shutdown=5,
        lifespan="on",
    )
    log.info("relay listening on http://%s:%d", settings.api_host, settings.api_port)
    with _no_signal_echo():
        uvicorn.Server(config).run()


@contextlib.contextmanager
def _no_signal_echo() -> Iterator[None]:
    """Let ``serve`` return after SIGTERM/SIGINT so the caller's cleanup runs.

    uvicorn shuts down gracefully on those signals and then raises the signal
    again under the previous handler: with the default SIGTERM action that
    kills the process before ``python -m backend run`` stops its ingest child
    and its embedded Valkey. Under a no-op handler the echo does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
