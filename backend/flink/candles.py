"""The job's window rows → the candles of DESIGN.md: flat empty candles, ``closed`` and ``seq`` (pure).

A tumbling window gives a row only for a period with trades; the exchange publishes a candle for
every period after a symbol's first trade, flat at the previous close. Flink hands the rows of one
(symbol, interval) over in time order (every operator of the plan is keyed by symbol, and a subtask
fires its windows in time order), so one pass per stream suffices: a stream's newest row is held until a
later row of that stream arrives, which closes it (exchange semantics: a later trade of the symbol
closes a candle), fills the gap with flat candles and is held in turn. At the end of a bounded input
the held rows are the candles still open, as ``python -m backend aggregate`` writes them.

``seq`` counts per stream the candles emitted, as the in-process aggregator numbers closed candles;
an open candle at the end carries the next number without taking it (the aggregator's ``open_candles``).
"""

from __future__ import annotations

from backend.config import INTERVALS_MS
from backend.models import Candle

# a window row from the candle query, without its kind: (symbol, interval, open_time, open, high, low, close,
# volume, quote_volume, trades, taker_buy_volume, taker_buy_quote_volume, event_time)
WindowRow = tuple[str, str, int, float, float, float, float, float, float, int, float, float, int]


class _Held:
    __slots__ = ("row", "seq")

    def __init__(self, row: WindowRow) -> None:
        self.row = row
        self.seq = 0


def _candle(row: WindowRow, *, closed: bool, seq: int) -> Candle:
    symbol, interval, open_time, o, h, lo, c, v, qv, n, tbv, tbqv, et = row
    return Candle(
        symbol=symbol,
        interval=interval,
        open_time=open_time,
        close_time=open_time + INTERVALS_MS[interval] - 1,
        open=o,
        high=h,
        low=lo,
        close=c,
        volume=v,
        quote_volume=qv,
        trades=n,
        taker_buy_volume=tbv,
        taker_buy_quote_volume=tbqv,
        closed=closed,
        seq=seq,
        event_time=et,
    )


def _flat(row: WindowRow, open_time: int) -> WindowRow:
    """An empty period after ``row``: flat at its close, no volume; event_time stays its last trade's."""
    symbol, interval, _, _, _, _, close, *_, event_time = row
    return (symbol, interval, open_time, close, close, close, close, 0.0, 0.0, 0, 0.0, 0.0, event_time)


class CandleStreams:
    """Turns window rows into candles, stream by stream (see the module doc)."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], _Held] = {}

    def add(self, row: WindowRow) -> list[Candle]:
        """The candles ``row`` closes: the held one of its stream, then flat ones up to ``row``'s period."""
        stream = (row[0], row[1])
        held = self._held.get(stream)
        if held is None:
            self._held[stream] = _Held(row)
            return []
        prev = held.row
        if row[2] <= prev[2]:
            raise ValueError(f"{stream}: window {row[2]} after {prev[2]}: rows out of order")
        ms = INTERVALS_MS[stream[1]]
        out = []
        t = prev[2]
        while t < row[2]:
            held.seq += 1
            out.append(_candle(prev if t == prev[2] else _flat(prev, t), closed=True, seq=held.seq))
            t += ms
        held.row = row
        return out

    def open_candles(self) -> list[Candle]:
        """Each stream's held candle, still open (at the end of a bounded input), with its next ``seq``."""
        return [_candle(h.row, closed=False, seq=h.seq + 1) for h in self._held.values()]
