"""The Flink job's pure parts, in .venv (no PyFlink needed): window rows → candles, and the SQL's interval literals."""

from __future__ import annotations

import pytest

from backend.flink.candles import CandleStreams
from backend.flink.sql import interval_literal
from backend.models import Candle


def row(open_time: int, o: float, c: float, *, symbol: str = "BTCUSDT", interval: str = "1m", et: int = 0) -> tuple:
    """A window row: (symbol, interval, open_time, open, high, low, close, volume, quote_volume, trades, tbv, tbqv,
    event_time) with a high of max(o, c) + 1 and a low of min(o, c) - 1."""
    high, low = max(o, c) + 1, min(o, c) - 1
    return (symbol, interval, open_time, o, high, low, c, 2.0, 2.0 * c, 3, 1.0, c, et or open_time + 5)


def test_a_gap_between_windows_is_filled_with_flat_candles_at_the_previous_close_and_seq_counts_each() -> None:
    streams = CandleStreams()
    assert streams.add(row(60_000, 10.0, 12.0)) == []  # held: a later window closes it
    closed = streams.add(row(240_000, 20.0, 21.0))
    assert closed == [
        Candle(symbol="BTCUSDT", interval="1m", open_time=60_000, close_time=119_999, open=10.0, high=13.0, low=9.0,
               close=12.0, volume=2.0, quote_volume=24.0, trades=3, taker_buy_volume=1.0, taker_buy_quote_volume=12.0,
               closed=True, seq=1, event_time=60_005),
        Candle(symbol="BTCUSDT", interval="1m", open_time=120_000, close_time=179_999, open=12.0, high=12.0, low=12.0,
               close=12.0, volume=0.0, quote_volume=0.0, trades=0, taker_buy_volume=0.0, taker_buy_quote_volume=0.0,
               closed=True, seq=2, event_time=60_005),
        Candle(symbol="BTCUSDT", interval="1m", open_time=180_000, close_time=239_999, open=12.0, high=12.0, low=12.0,
               close=12.0, volume=0.0, quote_volume=0.0, trades=0, taker_buy_volume=0.0, taker_buy_quote_volume=0.0,
               closed=True, seq=3, event_time=60_005),
    ]  # fmt: skip
    assert streams.open_candles() == [
        Candle(symbol="BTCUSDT", interval="1m", open_time=240_000, close_time=299_999, open=20.0, high=22.0, low=19.0,
               close=21.0, volume=2.0, quote_volume=42.0, trades=3, taker_buy_volume=1.0, taker_buy_quote_volume=21.0,
               closed=False, seq=4, event_time=240_005),
    ]  # fmt: skip


def test_streams_are_numbered_apart_and_the_next_window_closes_only_its_own_stream() -> None:
    streams = CandleStreams()
    streams.add(row(0, 1.0, 1.0))
    streams.add(row(0, 5.0, 5.0, interval="5m"))
    streams.add(row(0, 7.0, 7.0, symbol="ETHUSDT"))
    closed = streams.add(row(60_000, 2.0, 2.0))
    assert [(c.symbol, c.interval, c.open_time, c.seq, c.closed) for c in closed] == [("BTCUSDT", "1m", 0, 1, True)]
    closed = streams.add(row(300_000, 6.0, 6.0, interval="5m"))
    assert [(c.symbol, c.interval, c.open_time, c.seq) for c in closed] == [("BTCUSDT", "5m", 0, 1)]
    assert [(c.symbol, c.interval, c.open_time, c.seq, c.closed) for c in streams.open_candles()] == [
        ("BTCUSDT", "1m", 60_000, 2, False),
        ("BTCUSDT", "5m", 300_000, 2, False),
        ("ETHUSDT", "1m", 0, 1, False),
    ]


def test_a_window_older_than_the_held_one_is_an_error_not_a_wrong_candle() -> None:
    streams = CandleStreams()
    streams.add(row(120_000, 1.0, 1.0))
    with pytest.raises(ValueError, match="out of order"):
        streams.add(row(60_000, 1.0, 1.0))


@pytest.mark.parametrize(
    ("ms", "literal"),
    [
        (1_000, "INTERVAL '1' SECOND"),
        (60_000, "INTERVAL '1' MINUTE"),
        (900_000, "INTERVAL '15' MINUTE"),
        (14_400_000, "INTERVAL '4' HOUR"),
        (86_400_000, "INTERVAL '1' DAY"),
        (5_000, "INTERVAL '5' SECOND"),
        (250, "INTERVAL '0.250' SECOND"),
        (0, "INTERVAL '0' SECOND"),
    ],
)
def test_interval_literals_use_the_largest_unit_that_divides(ms: int, literal: str) -> None:
    assert interval_literal(ms) == literal
