"""Partial candles of the finest interval → the candles of every interval, vectorised, summed in the same order.

The aggregator reduces a batch of trades to one partial candle per (symbol, finest
period), then folds those partials, one after another, into the open candle of every
interval. Folded in Python that is one step per (partial, interval), and a candle's
volume comes out as ``((v + p1) + p2) + p3``: floating-point addition is not
associative, so that order decides the last bits of every sum, and the output must
keep them. ``np.add.at`` adds unbuffered, one index after another in the order given,
so adding the partials in their order onto the sum a candle already has (or onto
``-0.0`` for a new candle: ``-0.0 + x == x`` for every float, the sign of zero
included) gives those same bits, for all the candles of a batch in one call.
(``np.add.reduceat`` would not: it sums a long segment pairwise.) High and low are a
max and a min, exact in any order; open and close are the first and last partial's,
since the partials come in (symbol, period) order and the trades in (ts, trade_id)
order within a symbol.

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
    """Candle fields in columns, one row per (symbol, period), in (symbol, period) order.

    The finest interval's partials of a batch, or the candles :func:`rollup` makes of them.
    """

    code: np.ndarray  # int64 symbol code
    open_time: np.ndarray  # int64 ms: the period's start
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    quote_volume: np.ndarray
    taker_buy_volume: np.ndarray
    taker_buy_quote_volume: np.ndarray
    trades: np.ndarray  # int64
    first_ts: np.ndarray  # (first_ts, first_id): the first trade by (ts, trade_id)
    first_id: np.ndarray
    last_ts: np.ndarray  # (last_ts, last_id): the last trade; last_ts is also the newest event time
    last_id: np.ndarray

    def __len__(self) -> int:
        return len(self.code)


SUM_FIELDS = ("volume", "quote_volume", "taker_buy_volume", "taker_buy_quote_volume")


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


def rollup(fine: Partials, lay: Layout, init: dict[str, np.ndarray]) -> Partials:
    """The candles of ``lay``: each sum is ``init``'s plus its partials' values, added in partial order.

    ``init[field][i]`` is the sum candle ``i`` already holds (a candle that goes on
    from an earlier batch) or ``-0.0`` (a new one), exactly as a Python loop would.
    """
    times = lay.intervals
    rows = len(fine) * times
    ends = np.append(lay.starts[1:], rows) - 1
    candle = np.repeat(np.arange(len(lay)), np.diff(np.append(lay.starts, rows)))
    sums = {}
    for name in SUM_FIELDS:
        total = init[name].copy()
        np.add.at(total, candle, np.tile(getattr(fine, name), times))
        sums[name] = total
    last = ends % len(fine)
    return Partials(
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
