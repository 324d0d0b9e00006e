"""Trades, candles and alerts, and the one wire encoder/decoder.

Everything that crosses a process boundary (Redis messages, WebSocket frames,
REST bodies) is built by ``encode_*`` here and read by ``decode_*`` here.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import msgspec
import numpy as np

SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}$")
MIN_TS_MS = 1_230_768_000_000  # 2009-01-01: nothing traded before Bitcoin
FUTURE_SLACK_MS = 24 * 3_600_000  # a day of clock skew is tolerated


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def normalize_symbol(raw: str) -> str | None:
    """Exchange-independent symbol: ``btc/usdt``, ``BTC-USDT`` → ``BTCUSDT``; None when malformed."""
    sym = raw.strip().upper().replace("/", "").replace("-", "").replace("_", "")
    if ":" in sym:  # ccxt futures form BTC/USDT:USDT
        sym = sym.split(":", 1)[0]
    return sym if SYMBOL_RE.match(sym) else None


class Trade(msgspec.Struct, frozen=True):
    """One trade; ``count`` is how many raw trades an aggregate trade stands for."""

    symbol: str
    price: float
    qty: float
    ts_ms: int
    trade_id: int = 0
    taker_side: Literal["buy", "sell"] | None = None
    count: int = 1


class Candle(msgspec.Struct, tag="candle", tag_field="type"):
    """One OHLCV candle with Binance kline semantics; field order is the wire order.

    Not keyword-only: the aggregator makes one per closed or forming candle, and msgspec builds
    a Candle from 17 positional values in 0.2 µs against 1.7 µs from keywords. Elsewhere, keywords.
    """

    symbol: str
    interval: str
    open_time: int
    close_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    trades: int
    taker_buy_volume: float
    taker_buy_quote_volume: float
    closed: bool
    seq: int
    event_time: int
    emitted_at: int = 0

    @property
    def stream(self) -> tuple[str, str]:
        return (self.symbol, self.interval)


class AlertEvent(msgspec.Struct, tag="alert", tag_field="type", kw_only=True):
    """A fired alert, as published on ``crypto:alerts`` and stored in ``alert_events``."""

    rule_id: int
    symbol: str
    interval: str
    kind: str
    threshold: float | list[float] | str | None
    value: float
    message: str
    fired_at: int
    open_time: int | None = None  # the candle it fired on (None for wall-clock rules such as feed_silent)


AlertKind = Literal[
    "price_above",
    "price_below",
    "cross",
    "cross_up",
    "cross_down",
    "pct_move",
    "volume_spike",
    "channel_enter",
    "channel_exit",
    "feed_silent",
]
AlertFrequency = Literal["once", "per_candle", "per_close", "every"]


class AlertRule(msgspec.Struct, kw_only=True):
    """An alert rule: the REST body and the ``alert_rules`` row (server adds id, state, created_at)."""

    symbol: str
    interval: str = "1m"
    kind: AlertKind = "price_above"
    threshold: float | list[float] | str | None = None  # a number, [low, high], or an indicator to cross
    watch: str = "close"  # the value the rule watches: the close or an indicator (backend.alerts.rules.WATCHES)
    frequency: AlertFrequency = "once"
    cooldown_s: int = 0
    lookback: int | None = None
    factor: float | None = None
    expires_at: int | None = None
    targets: list[str] = msgspec.field(default_factory=list)  # webhook (http/https) or Apprise URLs
    enabled: bool = True
    note: str = ""
    id: int | None = None
    state: Literal["armed", "fired", "expired", "disabled"] = "armed"
    created_at: int | None = None
    last_fired_at: int | None = None
    fire_count: int = 0


class Delivery(msgspec.Struct, kw_only=True):
    """One target's delivery of a fired alert (the target shown masked)."""

    target: str
    status: Literal["pending", "delivered", "failed"] = "pending"
    attempts: int = 0
    last_error: str | None = None
    delivered_at: int | None = None


class AlertRecord(AlertEvent, kw_only=True):
    """A stored alert event (``GET …/alerts/events``): the ``alert`` wire object plus its id and deliveries."""

    id: int = 0
    deliveries: list[Delivery] = msgspec.field(default_factory=list)


Message = Candle | AlertEvent

_encoder = msgspec.json.Encoder()
_batch_decoder = msgspec.json.Decoder(list[Message])
_one_decoder = msgspec.json.Decoder(Message)


def encode_message(msg: Message) -> bytes:
    """One wire object (used for the ``latest`` cache value and per-candle bytes)."""
    return _encoder.encode(msg)


def encode_batch(msgs: Sequence[Message]) -> bytes:
    """A Redis message / WebSocket frame: a JSON array of wire objects."""
    return _encoder.encode(msgs)


def join_encoded(parts: Iterable[bytes]) -> bytes:
    """Build a frame from already-encoded objects without decoding them again."""
    return b"[" + b",".join(parts) + b"]"


def decode_message(data: bytes | str) -> Message:
    return _one_decoder.decode(data)


def decode_batch(data: bytes | str) -> list[Message]:
    """Read a frame: a JSON array of objects (a single object is accepted too)."""
    text = data.lstrip() if isinstance(data, bytes) else data.lstrip().encode()
    if text[:1] == b"[":
        return _batch_decoder.decode(text)
    return [_one_decoder.decode(text)]


def candle_to_dict(c: Candle) -> dict[str, object]:
    return msgspec.to_builtins(c)


# ---------------------------------------------------------------- validation


class Rejects:
    """Counts rejected input by reason; remembers the first line numbers for reports."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[int]] = {}

    def add(self, reason: str, n: int = 1, line: int | None = None) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + n
        if line is not None:
            ex = self.examples.setdefault(reason, [])
            if len(ex) < 5:
                ex.append(line)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        if not self.counts:
            return "none"
        parts = []
        for reason, n in sorted(self.counts.items()):
            ex = self.examples.get(reason)
            where = f" (lines {', '.join(map(str, ex))}{'…' if n > len(ex) else ''})" if ex else ""
            parts.append(f"{reason}: {n}{where}")
        return "; ".join(parts)


def trade_problem(price: float, qty: float, ts_ms: int, now: int | None = None) -> str | None:
    """Why a trade is unusable (a reason name), or None when it is fine."""
    if not math.isfinite(price) or price <= 0:
        return "bad_price"
    if not math.isfinite(qty) or qty <= 0:
        return "bad_qty"
    if ts_ms < MIN_TS_MS:
        return "ts_too_old"
    if ts_ms > (now if now is not None else now_ms()) + FUTURE_SLACK_MS:
        return "ts_in_future"
    return None


# ---------------------------------------------------------------- trade batches


@dataclass
class TradeBatch:
    """Trades in columns, the unit the aggregator consumes.

    ``sym`` indexes into ``symbols`` (a batch-local symbol table), so building a
    batch costs one dict lookup per trade and the aggregator never hashes strings
    per trade.
    """

    symbols: list[str]
    sym: np.ndarray  # int32 index into symbols
    ts: np.ndarray  # int64 ms
    price: np.ndarray  # float64
    qty: np.ndarray  # float64
    trade_id: np.ndarray  # int64
    taker_buy: np.ndarray  # bool: the taker bought (Binance m == false)
    count: np.ndarray  # int64 raw trades per row
    rejects: Rejects = field(default_factory=Rejects)

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def empty(cls) -> TradeBatch:
        return cls.from_columns([], [], [], [], [], [], [], [])

    @classmethod
    def from_columns(
        cls,
        symbols: list[str],
        sym: Sequence[int] | np.ndarray,
        ts: Sequence[int] | np.ndarray,
        price: Sequence[float] | np.ndarray,
        qty: Sequence[float] | np.ndarray,
        trade_id: Sequence[int] | np.ndarray,
        taker_buy: Sequence[bool] | np.ndarray,
        count: Sequence[int] | np.ndarray,
    ) -> TradeBatch:
        return cls(
            symbols=symbols,
            sym=np.asarray(sym, dtype=np.int32),
            ts=np.asarray(ts, dtype=np.int64),
            price=np.asarray(price, dtype=np.float64),
            qty=np.asarray(qty, dtype=np.float64),
            trade_id=np.asarray(trade_id, dtype=np.int64),
            taker_buy=np.asarray(taker_buy, dtype=bool),
            count=np.asarray(count, dtype=np.int64),
        )

    @classmethod
    def from_trades(cls, trades: Iterable[Trade]) -> TradeBatch:
        table: dict[str, int] = {}
        cols: tuple[list, ...] = ([], [], [], [], [], [], [])
        s, t, p, q, i, b, n = cols
        for tr in trades:
            s.append(table.setdefault(tr.symbol, len(table)))
            t.append(tr.ts_ms)
            p.append(tr.price)
            q.append(tr.qty)
            i.append(tr.trade_id)
            b.append(tr.taker_side == "buy")
            n.append(tr.count)
        return cls.from_columns(list(table), s, t, p, q, i, b, n)

    def take(self, rows: np.ndarray | slice) -> TradeBatch:
        """The rows ``rows`` (mask, indices or slice), sharing the symbol table and rejects."""
        return TradeBatch(
            self.symbols,
            self.sym[rows],
            self.ts[rows],
            self.price[rows],
            self.qty[rows],
            self.trade_id[rows],
            self.taker_buy[rows],
            self.count[rows],
            self.rejects,
        )

    def split(self, size: int) -> list[TradeBatch]:
        """Consecutive batches of at most ``size`` rows."""
        return [self.take(slice(i, i + size)) for i in range(0, len(self), size)]

    def to_trades(self) -> list[Trade]:
        return [
            Trade(
                symbol=self.symbols[s],
                price=float(p),
                qty=float(q),
                ts_ms=int(t),
                trade_id=int(i),
                taker_side="buy" if b else "sell",
                count=int(n),
            )
            for s, t, p, q, i, b, n in zip(
                self.sym.tolist(),
                self.ts.tolist(),
                self.price.tolist(),
                self.qty.tolist(),
                self.trade_id.tolist(),
                self.taker_buy.tolist(),
                self.count.tolist(),
                strict=True,
            )
        ]

    def validated(self, now: int | None = None) -> TradeBatch:
        """Drop unusable trades, counting each by reason into ``self.rejects`` (vectorised)."""
        if len(self) == 0:
            return self
        limit = (now if now is not None else now_ms()) + FUTURE_SLACK_MS
        reasons = (
            ("bad_price", ~(np.isfinite(self.price) & (self.price > 0))),
            ("bad_qty", ~(np.isfinite(self.qty) & (self.qty > 0))),
            ("ts_too_old", self.ts < MIN_TS_MS),
            ("ts_in_future", self.ts > limit),
        )
        bad = np.zeros(len(self), dtype=bool)
        for reason, mask in reasons:
            mask = mask & ~bad
            n = int(mask.sum())
            if n:
                self.rejects.add(reason, n)
                bad |= mask
        return self.take(~bad) if bad.any() else self
