"""Every setting of the backend, read from the environment (prefix ``CANDLES_``).

CLI flags override the environment: ``Settings.from_env(**overrides)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

INTERVALS_MS: dict[str, int] = {
    "1s": 1_000,
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}
DEFAULT_INTERVALS: tuple[str, ...] = ("1s", "1m", "5m", "15m", "1h")
DEFAULT_SYMBOLS: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT")
ENV_PREFIX = "CANDLES_"


def parse_intervals(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Validate interval names and order them from finest to coarsest."""
    names = [n.strip() for n in text.split(",")] if isinstance(text, str) else list(text)
    names = [n for n in names if n]
    unknown = [n for n in names if n not in INTERVALS_MS]
    if unknown or not names:
        raise ValueError(
            f"unknown interval {', '.join(unknown) or '(none given)'}; choose from {', '.join(INTERVALS_MS)}"
        )
    return tuple(sorted(set(names), key=INTERVALS_MS.__getitem__))


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


@dataclass(frozen=True)
class Settings:
    """The backend's configuration; see README "Settings"."""

    redis_url: str | None = None  # None: start an embedded Valkey
    database_url: str | None = None  # None: SQLite under ./data/
    symbols: tuple[str, ...] | None = None  # None: the simulator's default set; a replay plays its whole file
    intervals: tuple[str, ...] = DEFAULT_INTERVALS
    source: str = "simulator"
    speed: float = 1.0
    seed: int | None = None
    sim_history_s: float = 7200.0  # the simulator starts with this much recent past
    emit_ms: int = 100
    close_grace_ms: int = 250
    redis_prefix: str = "candles"
    updates_channel: str = "crypto:updates"
    alerts_channel: str = "crypto:alerts"
    recent_cap: int = 1000
    latest_ttl_s: int = 86_400
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_token: str | None = None
    cors_origins: tuple[str, ...] = ()
    ws_max_streams: int = 200  # streams one WebSocket connection may subscribe to
    ws_slow_timeout_s: float = 5.0  # a client behind for longer is closed (4008 "slow consumer")
    ws_ping_interval_s: float = 20.0  # server pings keep idle connections alive through proxies
    ws_ping_timeout_s: float = 20.0  # a peer that does not answer a ping in time is dropped
    relay_url: str = "http://127.0.0.1:8000"
    data_dir: Path = field(default_factory=lambda: Path("data"))
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Read ``CANDLES_*`` variables, then apply non-None overrides (CLI flags)."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _convert(f.name, raw)
        settings = cls(**values)  # type: ignore[arg-type]
        clean = {k: _convert(k, v) if isinstance(v, str) else v for k, v in overrides.items() if v is not None}
        return replace(settings, **clean) if clean else settings

    def sqlite_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'candles.sqlite3'}"

    def effective_database_url(self) -> str:
        return self.database_url or self.sqlite_url()


def _convert(name: str, raw: str) -> object:
    if name == "intervals":
        return parse_intervals(raw)
    if name == "symbols":
        return parse_symbols(raw)
    if name == "cors_origins":
        return tuple(o.strip() for o in raw.split(",") if o.strip())
    if name in {"emit_ms", "close_grace_ms", "recent_cap", "latest_ttl_s", "api_port", "seed", "ws_max_streams"}:
        return int(raw)
    if name in {"speed", "sim_history_s", "ws_slow_timeout_s", "ws_ping_interval_s", "ws_ping_timeout_s"}:
        return float(raw)
    if name == "data_dir":
        return Path(raw)
    return raw
