"""One (symbol, interval) stream of the aggregator: its open candle, the bookkeeping of its emission, and the
state the ingest stores so that a restart resumes it (:class:`StreamState`, per symbol :class:`SymbolState`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import msgspec

from backend.intervals import INTERVALS_MS
from backend.models import Candle

TradeKey = tuple[int, int]  # (ts_ms, trade_id): the order of trades
FLAT_RUN_MIN = 64  # a gap of more flat candles than this waits as a FlatRun until taken


class StreamState(msgspec.Struct, array_like=True):
    """One stream's open candle and its ``seq``, as the ingest stores it to resume after a restart."""

    interval: str
    open_time: int  # -1: no candle open yet (only ``seq`` carries over)
    seq: int
    open: float = 0.0
    high: float = 0.0
    low: float = 0.0
    close: float = 0.0
    volume: float = 0.0
    quote_volume: float = 0.0
    trades: int = 0
    taker_buy_volume: float = 0.0
    taker_buy_quote_volume: float = 0.0
    first_key: TradeKey | None = None  # None: a flat candle (no trade yet)
    last_key: TradeKey | None = None
    event_time: int = 0


# an open candle's fields in the order of a partial ``(o, h, l, c, v, qv, n, tbv, tbqv, first, last, et)``:
# what ``state``/``restore`` copy (``start`` unpacks a partial in the same order, on the hot path)
CANDLE_FIELDS: tuple[str, ...] = StreamState.__struct_fields__[3:]


class SymbolState(msgspec.Struct):
    """Every stream of one symbol and the last trade counted into them (what a replay skips on resume)."""

    symbol: str
    last_trade: TradeKey | None
    streams: list[StreamState]


class Stream:
    """The open candle of one (symbol, interval) and its emission bookkeeping."""

    __slots__ = (
        "symbol",
        "interval",
        "ms",
        "open_time",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "quote_volume",
        "trades",
        "taker_buy_volume",
        "taker_buy_quote_volume",
        "first_key",
        "last_key",
        "event_time",
        "seq",
        "last_emit",
        "dirty",
    )

    def __init__(self, symbol: str, interval: str) -> None:
        self.symbol = symbol
        self.interval = interval
        self.ms = INTERVALS_MS[interval]
        self.open_time = -1  # -1: no trade seen yet
        self.seq = 0
        self.last_emit = -(1 << 62)
        self.dirty = False

    def start(self, open_time: int, part: tuple) -> None:
        """Open a candle from a partial ``(o, h, l, c, v, qv, n, tbv, tbqv, first, last, et)``."""
        self.open_time = open_time
        (
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            self.quote_volume,
            self.trades,
            self.taker_buy_volume,
            self.taker_buy_quote_volume,
            self.first_key,
            self.last_key,
            self.event_time,
        ) = part

    def start_flat(self, open_time: int) -> None:
        """Open an empty candle at the previous close (event_time stays that of the last trade)."""
        self.open_time = open_time
        price = self.close
        self.open = self.high = self.low = price
        self.volume = self.quote_volume = 0.0
        self.taker_buy_volume = self.taker_buy_quote_volume = 0.0
        self.trades = 0
        self.first_key = self.last_key = None

    def merge(self, part: tuple) -> None:
        """Go on with this candle: its four sums in ``part`` already include its own (``Aggregator._carried``)."""
        o, h, lo, c, v, qv, n, tbv, tbqv, first, last, et = part
        if self.first_key is None or first < self.first_key:
            self.open = o
            self.first_key = first
        if self.last_key is None or last > self.last_key:
            self.close = c
            self.last_key = last
        if h > self.high:
            self.high = h
        if lo < self.low:
            self.low = lo
        self.volume = v
        self.quote_volume = qv
        self.trades += n
        self.taker_buy_volume = tbv
        self.taker_buy_quote_volume = tbqv
        if et > self.event_time:
            self.event_time = et

    def state(self) -> StreamState:
        if self.open_time < 0:
            return StreamState(self.interval, -1, self.seq)
        return StreamState(self.interval, self.open_time, self.seq, *(getattr(self, f) for f in CANDLE_FIELDS))

    def restore(self, s: StreamState) -> None:
        self.seq = s.seq
        if s.open_time < 0:
            return
        self.open_time = s.open_time
        for name in CANDLE_FIELDS:
            setattr(self, name, getattr(s, name))
        self.first_key = None if s.first_key is None else tuple(s.first_key)
        self.last_key = None if s.last_key is None else tuple(s.last_key)

    def snapshot(self, closed: bool, emitted_at: int) -> Candle:
        """The candle as a wire object; takes the stream's next seq."""
        self.seq += 1
        # positional, in the field order (see Candle): 8× cheaper than keywords, and this is per candle
        return Candle(
            self.symbol,
            self.interval,
            self.open_time,
            self.open_time + self.ms - 1,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            self.quote_volume,
            self.trades,
            self.taker_buy_volume,
            self.taker_buy_quote_volume,
            closed,
            self.seq,
            self.event_time,
            emitted_at,
        )


def final_copy(candle: Candle, st: Stream) -> Candle:
    """An exchange candle for a period the stream already closed, emitted with the stream's next seq."""
    st.seq += 1
    return Candle(
        **{f: getattr(candle, f) for f in Candle.__struct_fields__ if f not in ("seq", "closed")},
        closed=True,
        seq=st.seq,
    )


@dataclass(frozen=True, slots=True)
class FlatRun:
    """A stream's flat candles over a gap, made only when taken: a month without trades is 2.6 million 1s
    candles, gigabytes as objects, a few numbers as a run (the offline command writes them a chunk at a time)."""

    symbol: str
    interval: str
    ms: int
    open_time: int  # the first flat candle's
    count: int
    price: float  # the close before the gap: open, high, low and close of every one
    event_time: int  # the last trade's, as the stream keeps it
    seq: int  # the first one's

    def candles(self, start: int = 0, stop: int | None = None) -> list[Candle]:
        """Flat candles ``start`` to ``stop`` of the run, closed, as :meth:`Stream.snapshot` makes them."""
        stop = self.count if stop is None else min(stop, self.count)
        p, ms, first, seq = self.price, self.ms, self.open_time, self.seq
        flat = Candle(symbol=self.symbol, interval=self.interval, open_time=first, close_time=first + ms - 1,
                      open=p, high=p, low=p, close=p, volume=0.0, quote_volume=0.0, trades=0, taker_buy_volume=0.0,
                      taker_buy_quote_volume=0.0, closed=True, seq=seq, event_time=self.event_time)  # fmt: skip
        return [
            msgspec.structs.replace(flat, open_time=first + k * ms, close_time=first + (k + 1) * ms - 1, seq=seq + k)
            for k in range(start, stop)
        ]


def closed_chunks(items: list[Candle | FlatRun], size: int) -> Iterator[list[Candle]]:
    """``items`` with their runs made, in lists of at most ``size`` (the last may be shorter)."""
    chunk: list[Candle] = []
    for item in items:
        if not isinstance(item, FlatRun):
            chunk.append(item)
        else:
            start = 0
            while start < item.count:
                stop = start + size - len(chunk)
                chunk.extend(item.candles(start, stop))
                start = stop
                if len(chunk) >= size:
                    yield chunk
                    chunk = []
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
