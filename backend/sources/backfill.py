"""Candles and trades missed while a live feed was away, fetched over the exchange's REST API with ccxt.

Two ways to close a gap, both exact:

- a short gap (a reconnect, a restart) is filled with the exchange's trades
  (``fetch_trades`` from the last trade seen), deduplicated by trade id, so the
  aggregator builds the same candles as if the feed had never dropped;
- history (first start) and gaps too long to page through trade by trade come
  as the exchange's own 1m candles (``fetch_ohlcv``), which are final: the
  aggregator takes them as they are (:meth:`backend.aggregate.Aggregator.put_final`)
  and rolls them up to the coarser intervals.

ccxt's unified OHLCV rows have six fields; Binance's klines carry the trade
count, quote volume and taker-buy volumes too, so for the Binance family the
raw rows of the same request are read (``last_json_response``). Other
exchanges' candles get those fields as 0 (README "Live exchange feeds").
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

from backend.models import Candle, Rejects

BASE_INTERVAL = "1m"
BASE_MS = 60_000
PAGE = 1000  # rows per REST request (Binance's maximum for klines and aggTrades)
MAX_TRADE_PAGES = 50  # a gap needing more trade pages than this is filled with 1m candles instead
# the exchanges whose raw kline rows are Binance's 12 fields
BINANCE_KLINES = frozenset({"binance", "binanceus", "binanceusdm", "binancecoinm"})


def kline_candle(symbol: str, row: Sequence[Any], raw: Sequence[Any] | None = None) -> Candle:
    """One exchange 1m candle: a ccxt OHLCV row, with Binance's raw kline row for the fields ccxt drops.

    A field that is no number raises ValueError or TypeError; :func:`usable_candle` judges the numbers."""
    t, o, h, lo, c, v = (row[0], *map(float, row[1:6]))
    quote, count, tbv, tbqv = 0.0, 0, 0.0, 0.0
    if raw is not None and len(raw) >= 11 and int(raw[0]) == int(t):
        quote, count, tbv, tbqv = float(raw[7]), int(raw[8]), float(raw[9]), float(raw[10])
    return Candle(
        symbol=symbol,
        interval=BASE_INTERVAL,
        open_time=int(t),
        close_time=int(t) + BASE_MS - 1,
        open=o,
        high=h,
        low=lo,
        close=c,
        volume=v,
        quote_volume=quote,
        trades=count,
        taker_buy_volume=tbv,
        taker_buy_quote_volume=tbqv,
        closed=True,
        seq=0,
        event_time=int(t) + BASE_MS - 1,
        emitted_at=0,
    )


def usable_candle(c: Candle) -> bool:
    """An exchange candle the pipeline may take as final: positive finite prices with high and low around
    open and close, finite volumes and counts not below 0. Pure.

    ccxt passes a kline's unreadable number through as NaN (it drops only a row without a readable time),
    and a final candle is stored as it is: one NaN would stay in the history for good.
    """
    prices = (c.open, c.high, c.low, c.close)
    amounts = (c.volume, c.quote_volume, c.taker_buy_volume, c.taker_buy_quote_volume)
    return (
        all(math.isfinite(x) and x > 0 for x in prices)
        and c.low <= min(c.open, c.close)
        and c.high >= max(c.open, c.close)
        and all(math.isfinite(x) and x >= 0 for x in amounts)
        and c.trades >= 0
    )


def rollup(candles: Sequence[Candle], interval: str, interval_ms: int) -> list[tuple[Candle, bool]]:
    """Consecutive 1m candles → ``(candle, complete)`` per ``interval`` period, oldest first.

    Binance's semantics: a coarser candle's open is its first trade, so an empty
    first minute does not give it the previous close. ``complete`` is False for
    a period whose minutes are not all there (the forming one at the end): a
    partial to open the stream with. A first period the candles do not cover
    from its start is left out. Pure.
    """
    out: list[tuple[Candle, bool]] = []
    group: list[Candle] = []

    def flush() -> None:
        first, last = group[0], group[-1]
        period = first.open_time - first.open_time % interval_ms
        if not out and first.open_time != period:
            return
        # a period's open, high and low are its trades': an empty minute (flat at the previous close) adds none
        traded = [c for c in group if c.volume > 0] or group[:1]
        out.append(
            (
                Candle(
                    symbol=first.symbol,
                    interval=interval,
                    open_time=period,
                    close_time=period + interval_ms - 1,
                    open=traded[0].open,
                    high=max(c.high for c in traded),
                    low=min(c.low for c in traded),
                    close=last.close,
                    volume=sum(c.volume for c in group),
                    quote_volume=sum(c.quote_volume for c in group),
                    trades=sum(c.trades for c in group),
                    taker_buy_volume=sum(c.taker_buy_volume for c in group),
                    taker_buy_quote_volume=sum(c.taker_buy_quote_volume for c in group),
                    closed=True,
                    seq=0,
                    event_time=last.event_time,
                    emitted_at=0,
                ),
                first.open_time == period and len(group) * BASE_MS == interval_ms,
            )
        )

    for c in candles:
        if group and c.open_time - c.open_time % interval_ms != group[0].open_time - group[0].open_time % interval_ms:
            flush()
            group = []
        group.append(c)
    if group:
        flush()
    return out


def page_candles(
    symbol: str, rows: Sequence[Sequence[Any]], raw: Any, since: int, until: int, rejects: Rejects
) -> tuple[list[Candle], int | None]:
    """One page of ``fetch_ohlcv`` → its usable candles with open time in ``[since, until)`` and where the
    next page starts (None: no row in the window, the end). Pure.

    ``raw`` is the exchange's own answer (Binance's kline rows, for the fields ccxt drops), or None; an
    unusable candle, or a row with a field that is no number, is counted (``bad_candle``) and left out.
    """
    raw_rows = raw if isinstance(raw, list) else []
    raw_by_time = {r[0]: r for r in raw_rows if isinstance(r, list) and r and isinstance(r[0], int)}
    rows = [r for r in rows if since <= r[0] < until]
    if not rows:
        return [], None
    out: list[Candle] = []
    for r in rows:
        try:
            candle: Candle | None = kline_candle(symbol, r, raw_by_time.get(int(r[0])))
        except (TypeError, ValueError):  # a field that is no number
            candle = None
        if candle is not None and usable_candle(candle):
            out.append(candle)
        else:
            rejects.add("bad_candle")
    return out, int(rows[-1][0]) + BASE_MS


def next_trades_since(page: Sequence[Mapping[str, Any]], since: int, until: int, hourly: bool) -> int | None:
    """Where the next ``fetch_trades`` page starts after ``page`` (asked from ``since``), or None: done. Pure.

    A full page goes on from its newest trade (the same millisecond may hold more: ids dedupe the
    overlap); an ``hourly`` exchange (Binance answers at most an hour per request) steps an hour on
    while that window ends before ``until``.
    """
    stamps = [t["timestamp"] for t in page if isinstance(t.get("timestamp"), int)]
    if len(page) >= PAGE and stamps:
        return max(stamps)
    window_end = since + 3_600_000
    if hourly and window_end < until:
        return window_end
    return None


class RestBackfill:
    """The REST side of one ccxt exchange, one request at a time (so ``last_json_response`` is ours)."""

    def __init__(self, exchange: Any, rejects: Rejects) -> None:
        self.exchange = exchange
        self.rejects = rejects  # exchange candles that are not usable count here as ``bad_candle``
        self.raw_klines = exchange.id in BINANCE_KLINES
        if self.raw_klines:
            exchange.enableLastJsonResponse = True
        self.lock = asyncio.Lock()
        self.requests = 0

    async def clock(self) -> int:
        """The exchange's time (``fetch_time``), or the machine's where it has none or does not answer."""
        if self.exchange.has.get("fetchTime"):
            with contextlib.suppress(Exception):  # (network or exchange error: the machine's clock will do)
                async with self.lock:
                    stamp = await self.exchange.fetch_time()
                    self.requests += 1
                if isinstance(stamp, int):
                    return stamp
        return int(self.exchange.milliseconds())

    async def candles(self, unified: str, symbol: str, since: int, until: int) -> list[Candle]:
        """The exchange's closed 1m candles with open time in ``[since, until)``, paged; unusable ones are
        counted (``bad_candle``) and left out, so their minutes are built from trades or stay empty."""
        out: list[Candle] = []
        cursor: int | None = since - since % BASE_MS
        while cursor is not None and cursor < until:
            async with self.lock:
                rows = await self.exchange.fetch_ohlcv(unified, BASE_INTERVAL, since=cursor, limit=PAGE)
                raw = self.exchange.last_json_response if self.raw_klines else None
                self.requests += 1
            page, cursor = page_candles(symbol, rows, raw, cursor, until, self.rejects)
            out.extend(page)
        return out

    async def trades(self, unified: str, since: int, until: int) -> list[dict[str, Any]] | None:
        """Every trade from ``since`` up to ``until`` (the feed's now) as ccxt trades, paged.

        None when that takes more than ``MAX_TRADE_PAGES`` requests (then 1m candles fill the gap).
        """
        out: list[dict[str, Any]] = []
        cursor = since
        hourly = self.exchange.id in BINANCE_KLINES
        for _ in range(MAX_TRADE_PAGES):
            async with self.lock:
                page = await self.exchange.fetch_trades(unified, since=cursor, limit=PAGE)
                self.requests += 1
            out.extend(page)
            step = next_trades_since(page, cursor, until, hourly)
            if step is None:
                return out
            cursor = step
        return None
