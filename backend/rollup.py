"""A batch's trades → the candles of every interval, vectorised, each sum added trade by trade.

The aggregator cuts a sorted batch of trades into one partial candle per (symbol,
finest period) and rolls those partials up into the candles of every interval. High
and low are a max and a min, exact in any order; open and close are the first and
last partial's, since the partials come in (symbol, period) order and the trades in
(ts, trade_id) order within a symbol; trades are counted exactly as integers.

The four sums are not taken from the partials: floating-point addition is not
associative, so a candle's volume would then depend on where the batches (a file's
read chunks, a live feed's 100 ms) cut its trades, and on the finest interval
configured. Each candle's sums are its trades' values added one at a time in the
order the trades arrived, onto the sum the candle already holds: the same bits however
the trades are batched, whatever intervals run beside it, after a restart that
restored the candle, and in the Flink job (``backend/flink/sql.py``, whose ``SUM``
adds in arrival order). For trades that arrive in (ts, trade_id) order, as an
exchange sends them, that is also event order. ``np.bincount`` with weights adds in
index order, one value at a time (``out[bin] += weight``, from 0.0), so one call per
sum and interval does every candle: the carried sums first, then the trades.
(``np.add.reduceat`` and ``np.sum`` would not: they add a long run pairwise.)

Every interval is done at once: the partials are repeated once per interval
(interval-major), and a candle is a run of those rows with one (interval, symbol,
period).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Partials:
    """Candle fields in columns, one row per (symbol, period), in (symbol, period) order: the finest
    interval's partials of a batch. The sums are per trade (:class:`TradeValues`)."""

    code: np.ndarray  # int64 symbol code
    open_time: np.ndarray  # int64 ms: the period's start
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    trades: np.ndarray  # int64
    first_ts: np.ndarray  # (first_ts, first_id): the first trade by (ts, trade_id)
    first_id: np.ndarray
    last_ts: np.ndarray  # (last_ts, last_id): the last trade; last_ts is also the newest event time
    last_id: np.ndarray

    def __len__(self) -> int:
        return len(self.code)


@dataclass(frozen=True, slots=True)
class TradeValues:
    """What each trade of the batch adds to the four sums, in the order the trades arrived, and its partial."""

    partial: np.ndarray  # int64: the row of the batch's :class:`Partials` the trade is in
    volume: np.ndarray
    quote_volume: np.ndarray
    taker_buy_volume: np.ndarray  # 0.0 for a taker sell
    taker_buy_quote_volume: np.ndarray


@dataclass(frozen=True, slots=True)
class Candles:
    """The candles :func:`rollup` makes: :class:`Partials`' fields, then the four sums."""

    code: np.ndarray
    open_time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    trades: np.ndarray
    first_ts: np.ndarray
    first_id: np.ndarray
    last_ts: np.ndarray
    last_id: np.ndarray
    volume: np.ndarray
    quote_volume: np.ndarray
    taker_buy_volume: np.ndarray
    taker_buy_quote_volume: np.ndarray


SUM_FIELDS = ("volume", "quote_volume", "taker_buy_volume", "taker_buy_quote_volume")


@dataclass(frozen=True, slots=True)
class Carried:
    """The candles of a batch that go on from an open candle with trades, and that candle's sums so far."""

    candle: np.ndarray  # int64 rows of the :class:`Layout`
    sums: dict[str, np.ndarray]  # by field of :data:`SUM_FIELDS`, one value per row of ``candle``


@dataclass(frozen=True, slots=True)
class Layout:
    """The candles a batch's partials make, every interval at once, interval by interval.

    ``starts`` indexes the partials repeated once per interval (interval-major): candle
    ``i`` is interval ``interval[i]``'s, made of partials ``first[i]`` up to the next
    candle's start.
    """

    intervals: int  # how many intervals: the partials are repeated that many times
    starts: np.ndarray
    interval: np.ndarray  # index into the intervals given to :func:`layout`
    first: np.ndarray  # its first partial (row of the batch's partials)
    code: np.ndarray
    open_time: np.ndarray
    goes_on: np.ndarray  # bool: its (interval, symbol)'s first candle in the batch, which may be the open one

    def __len__(self) -> int:
        return len(self.starts)


def layout(fine: Partials, intervals_ms: Sequence[int]) -> Layout:
    """Where each candle of each interval begins among ``fine``'s rows, its open time and symbol."""
    n = len(fine)
    open_time = np.concatenate([fine.open_time - fine.open_time % ms for ms in intervals_ms])
    code = np.tile(fine.code, len(intervals_ms))
    edge = np.empty(len(code), dtype=bool)
    np.not_equal(code[1:], code[:-1], out=edge[1:])
    edge[1:] |= open_time[1:] != open_time[:-1]
    edge[::n] = True  # each interval's rows begin with a candle of their own
    starts = np.flatnonzero(edge)
    first = starts % n
    new_symbol = np.empty(n, dtype=bool)
    new_symbol[0] = True
    np.not_equal(fine.code[1:], fine.code[:-1], out=new_symbol[1:])
    return Layout(
        intervals=len(intervals_ms),
        starts=starts,
        interval=starts // n,
        first=first,
        code=code[starts],
        open_time=open_time[starts],
        goes_on=new_symbol[first],
    )


def rollup(fine: Partials, lay: Layout, trades: TradeValues, carried: Carried) -> Candles:
    """The candles of ``lay``: each sum is the candle's own so far (``carried``, else 0) plus its trades' values,
    added one by one in the order the trades arrived."""
    times, n = lay.intervals, len(fine)
    rows = n * times
    ends = np.append(lay.starts[1:], rows) - 1
    candle = np.repeat(np.arange(len(lay)), np.diff(np.append(lay.starts, rows)))  # partial row → its candle
    bounds = np.searchsorted(lay.interval, np.arange(times + 1))  # interval i's candles: bounds[i] to bounds[i + 1]
    sums = {name: np.empty(len(lay)) for name in SUM_FIELDS}
    # the carried sums first, then each trade's value in arrival order: one weights array per sum for every
    # interval, where interval i's bins send the other intervals' carried sums to a bin past its own (dropped)
    weights = {name: np.concatenate([carried.sums[name], getattr(trades, name)]) for name in SUM_FIELDS}
    bins = np.empty(len(carried.candle) + len(trades.partial), dtype=np.int64)
    head = len(carried.candle)
    for i in range(times):
        lo, hi = int(bounds[i]), int(bounds[i + 1])
        mine = (carried.candle >= lo) & (carried.candle < hi)
        np.subtract(carried.candle, lo, out=bins[:head])
        bins[:head][~mine] = hi - lo
        np.subtract(candle[i * n : (i + 1) * n][trades.partial], lo, out=bins[head:])
        for name in SUM_FIELDS:
            sums[name][lo:hi] = np.bincount(bins, weights=weights[name], minlength=hi - lo + 1)[: hi - lo]
    last = ends % n
    return Candles(
        code=lay.code,
        open_time=lay.open_time,
        open=fine.open[lay.first],
        high=np.maximum.reduceat(np.tile(fine.high, times), lay.starts),
        low=np.minimum.reduceat(np.tile(fine.low, times), lay.starts),
        close=fine.close[last],
        trades=np.add.reduceat(np.tile(fine.trades, times), lay.starts),
        first_ts=fine.first_ts[lay.first],
        first_id=fine.first_id[lay.first],
        last_ts=fine.last_ts[last],
        last_id=fine.last_id[last],
        **sums,
    )


def stream_steps(stream: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a batch's candles in event order, by stream id: which is its stream's first, and the one before each
    (the candle it closes; -1 for a first)."""
    n = len(stream)
    by = np.argsort(stream, kind="stable")
    grouped = stream[by]
    new = np.empty(n, dtype=bool)
    new[:1] = True
    np.not_equal(grouped[1:], grouped[:-1], out=new[1:])
    first = np.empty(n, dtype=bool)
    first[by] = new
    before = np.full(n, -1, dtype=np.int64)
    goes_on = ~new[1:]
    before[by[1:][goes_on]] = by[:-1][goes_on]
    return first, before
