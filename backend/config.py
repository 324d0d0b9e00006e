"""Every setting of the backend, declared once: type, default, validation and description.

Each field is the environment variable ``CANDLES_<NAME>`` (also read from ``./.env``);
a field tagged ``Flag(...)`` is also a flag of those ``python -m backend`` commands, and
flags override the environment: ``Settings.from_env(**overrides)``. See
:mod:`backend.envsettings` for how they are read.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from backend.embedded import EmbeddedKind
from backend.envsettings import EnvSettings, Flag
from backend.intervals import DEFAULT_INTERVALS, INTERVALS_MS, parse_intervals

if TYPE_CHECKING:
    from backend.dbtimeouts import DbTimeouts

DEFAULT_SYMBOLS: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT")

ALL = ("ingest", "api", "run")  # the commands that take each kind of flag
INGEST = ("ingest", "run")
API = ("api", "run")
DB = (*ALL, "db")  # python -m backend db upgrade|current


def parse_symbols(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Normalise a comma-separated symbol list (``btc/usdt`` → ``BTCUSDT``)."""
    from backend.models import normalize_symbol

    names = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    for name in names:
        if name.strip():
            sym = normalize_symbol(name)
            if sym is None:
                raise ValueError(f"bad symbol {name!r}: use 2 to 20 letters or digits, like BTCUSDT")
            out.append(sym)
    return tuple(dict.fromkeys(out))


class Settings(EnvSettings):
    """The backend's configuration; see README "Settings"."""

    redis_url: Annotated[str | None, Flag(ALL)] = Field(None, description="Redis URL (unset: an embedded Valkey)")
    embedded: EmbeddedKind = Field(
        "auto",
        description="the embedded server when no Redis URL is set: valkey, python (the pure-Python "
        "single-machine fallback) or auto (Valkey where installed, else python)",
    )
    database_url: Annotated[str | None, Flag(DB)] = Field(
        None, description="SQLAlchemy URL (unset: SQLite under ./data/)"
    )
    symbols: Annotated[tuple[str, ...] | None, NoDecode, Flag(ALL)] = Field(
        None,
        description="comma-separated symbols, e.g. BTCUSDT,ETHUSDT "
        "(unset: the simulator's default set; a replay plays its whole file)",
    )
    intervals: Annotated[tuple[str, ...], NoDecode, Flag(ALL)] = Field(
        DEFAULT_INTERVALS, description=f"comma-separated intervals, from {', '.join(INTERVALS_MS)}"
    )
    log_level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], Flag(DB)] = Field(
        "INFO", description="log level"
    )
    source: Annotated[str, Flag(INGEST)] = Field(
        "simulator", description="simulator | replay:PATH | exchange:ID (a ccxt id: `python -m backend feeds`)"
    )
    backfill_s: Annotated[float, Flag(INGEST)] = Field(
        86_400.0, ge=0, description="a live exchange's history fetched on first start, s of 1m candles"
    )
    feed_silence_s: Annotated[float, Flag(INGEST)] = Field(
        30.0, gt=0, description="a live exchange feed with no message this long counts as disconnected, s"
    )
    exchange_urls: Annotated[tuple[tuple[str, str], ...], NoDecode] = Field(
        (),
        description="JSON object overriding ccxt URLs by dotted path, e.g. "
        '{"api.ws.spot": "wss://testnet…", "api.public": "https://testnet…/api/v3"}',
    )
    speed: Annotated[float, Flag(INGEST)] = Field(
        1.0, ge=0, description="replay speed: 1 = recorded timing, 0 = as fast as possible"
    )
    seed: Annotated[int | None, Flag(INGEST)] = Field(None, description="simulator seed (unset: random)")
    sim_history_s: Annotated[float, Flag(INGEST, "--history")] = Field(
        7200.0, ge=0, description="seconds of recent past the simulator starts with"
    )
    sim_rate: Annotated[float, Flag(INGEST, "--rate")] = Field(
        200.0, ge=0, description="the simulator's trades per second, over all its symbols"
    )
    emit_ms: Annotated[int, Flag(INGEST)] = Field(100, ge=0, description="forming-candle coalescing period, ms")
    drain_timeout_s: Annotated[float, Flag(INGEST, "--drain-timeout")] = Field(
        10.0,
        ge=0,
        description="on stop, how long the ingest waits for pending closed candles to reach the database, s "
        "(what is left stays in the spool for the next start, and the exit status is 1)",
    )
    resume: bool = Field(
        True,
        description="on start, continue each stream's open candle and seq from Redis "
        "(a replay skips the trades they already counted)",
    )
    close_grace_ms: int = Field(250, ge=0, description="a live candle closes this long after its end, ms")
    redis_prefix: str = Field("candles", description="Redis key prefix")
    updates_channel: str = Field("crypto:updates", description="Redis channel of candle updates")
    alerts_channel: str = Field("crypto:alerts", description="Redis channel of alerts")
    alert_rules_channel: str = Field(
        "crypto:alert-rules", description="Redis channel on which the relay announces changed alert rules"
    )
    recent_cap: int = Field(1000, ge=1, description="closed candles cached per stream")
    latest_ttl_s: int = Field(86_400, ge=1, description="TTL of each stream's latest candle in Redis, s")
    api_host: Annotated[str, Flag(API, "--host")] = Field("127.0.0.1", description="the relay's bind address")
    api_port: Annotated[int, Flag(API, "--port")] = Field(8000, ge=0, le=65535, description="the relay's port")
    workers: Annotated[int, Flag(API)] = Field(
        0,
        ge=0,
        description="relay processes sharing the port (0: one per core; Linux only, elsewhere 1)",
    )
    api_token: str | None = Field(None, description="when set, every route but /health needs it")
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field((), description="comma-separated CORS origins")
    ws_max_streams: int = Field(200, ge=1, description="streams one WebSocket connection may subscribe to")
    ws_max_message_chars: int = Field(
        16_384, ge=256, description="longest client message; a longer one is an error (too_large)"
    )
    ws_max_json_depth: int = Field(
        8, ge=2, description="deepest nesting of a client message; a deeper one is an error (too_large)"
    )
    ws_max_connections: int = Field(10_000, ge=1, description="WebSocket connections the relay holds in total")
    ws_max_connections_per_address: int = Field(
        256, ge=1, description="WebSocket connections one client address may hold"
    )
    ws_slow_timeout_s: float = Field(
        5.0, gt=0, description='a client behind for longer is closed (4008 "slow consumer"), s'
    )
    ws_ping_interval_s: float = Field(
        20.0, ge=0, description="server pings keep idle connections alive through proxies, s (0: none)"
    )
    ws_ping_timeout_s: float = Field(
        20.0, ge=0, description="a peer that does not answer a ping in time is dropped, s (0: never)"
    )
    read_max_ratio: float = Field(
        100.0, gt=1, description="a compressed trade file may expand to this many times its size (bombs stop)"
    )
    read_max_bytes: int = Field(
        1 << 40, ge=1 << 20, description="a compressed trade file may expand to this many bytes"
    )
    relay_url: str = Field("http://127.0.0.1:8000", description="where the dashboard finds the relay")
    data_dir: Path = Field(Path("data"), description="where the default SQLite database lives")
    db_connect_timeout_s: float = Field(5.0, gt=0, description="connecting to the database gives up after this, s")
    db_statement_timeout_s: float = Field(
        10.0,
        gt=0,
        description="one statement may take this long (PostgreSQL statement_timeout, SQLite busy wait); "
        "a database that does not answer for 2 s more is reported down, s",
    )
    db_pool_timeout_s: float = Field(5.0, gt=0, description="waiting for a free pooled connection gives up after, s")

    @field_validator("intervals", mode="before")
    @classmethod
    def _intervals(cls, value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
        return parse_intervals(value)

    @field_validator("symbols", mode="before")
    @classmethod
    def _symbols(cls, value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if value is None else parse_symbols(value)

    @field_validator("exchange_urls", mode="before")
    @classmethod
    def _urls(cls, value: str | dict[str, str] | tuple) -> tuple[tuple[str, str], ...]:
        """A JSON object → sorted ``(path, url)`` pairs (a tuple, so that settings stay hashable)."""
        if isinstance(value, dict):
            return tuple(sorted((str(k), str(v)) for k, v in value.items()))
        if not isinstance(value, str):
            return tuple(value)
        import json

        try:
            urls = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a JSON object: {exc}") from None
        if not isinstance(urls, dict):
            raise ValueError('a JSON object like {"api.ws.spot": "wss://…"}')
        return tuple(sorted((str(k), str(v)) for k, v in urls.items()))

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
        return tuple(o.strip() for o in value.split(",") if o.strip()) if isinstance(value, str) else tuple(value)

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: str) -> str:
        return value.upper() if isinstance(value, str) else value

    def sqlite_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'candles.sqlite3'}"

    def effective_database_url(self) -> str:
        return self.database_url or self.sqlite_url()

    def db_timeouts(self) -> DbTimeouts:
        from backend.dbtimeouts import DbTimeouts  # imports psycopg: only the processes that open a database

        return DbTimeouts(self.db_connect_timeout_s, self.db_statement_timeout_s, self.db_pool_timeout_s)
