"""The alert rules' pure evaluation: every kind, watched value and frequency, with literal expectations."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend import indicators
from backend.alerts.rules import AlertEngine, preview
from backend.alerts.series import StreamSeries
from backend.models import AlertRule, Candle

MIN = 60_000
T0 = 1_732_665_600_000  # 2024-11-27 00:00 UTC


class Stream:
    """Builds the update sequence an aggregator would emit for one stream (seq +1 per update)."""

    def __init__(self, symbol: str = "BTCUSDT", interval: str = "1m") -> None:
        self.symbol, self.interval, self.seq = symbol, interval, 0

    def update(self, i: int, close: float, *, closed: bool = False, volume: float = 1.0, trades: int = 1) -> Candle:
        self.seq += 1
        return Candle(
            symbol=self.symbol,
            interval=self.interval,
            open_time=T0 + i * MIN,
            close_time=T0 + (i + 1) * MIN - 1,
            open=close,
            high=close,
            low=close,
            close=close,
            volume=volume,
            quote_volume=volume * close,
            trades=trades,
            taker_buy_volume=0.0,
            taker_buy_quote_volume=0.0,
            closed=closed,
            seq=self.seq,
            event_time=T0 + i * MIN + 1_000,
        )

    def closes(self, values: list[float], *, start: int = 0, volume: float = 1.0) -> list[Candle]:
        return [self.update(start + i, v, closed=True, volume=volume) for i, v in enumerate(values)]


def rule(rule_id: int = 1, **kw: object) -> AlertRule:
    base: dict[str, object] = {"symbol": "BTCUSDT", "interval": "1m", "frequency": "every", "id": rule_id}
    return AlertRule(**{**base, **kw})  # type: ignore[arg-type]


def fired(engine: AlertEngine, candles: list[Candle], now: int = T0) -> list[float]:
    return [e.value for e in engine.on_candles(candles, now).events]


# ---------------------------------------------------------------- level kinds, exact equality


def test_price_above_fires_strictly_above_and_not_at_the_threshold() -> None:
    s = Stream()
    engine = AlertEngine([rule(kind="price_above", threshold=100)])
    assert fired(engine, [s.update(0, 99.5), s.update(0, 100.0), s.update(0, 100.5)]) == [100.5]


def test_price_below_fires_strictly_below_and_not_at_the_threshold() -> None:
    s = Stream()
    engine = AlertEngine([rule(kind="price_below", threshold=100)])
    assert fired(engine, [s.update(0, 100.0), s.update(0, 99.99)]) == [99.99]


def test_cross_up_from_exactly_the_level_counts_touching_does_not() -> None:
    s = Stream()
    engine = AlertEngine([rule(kind="cross_up", threshold=100)])
    # 99 → 100 touches (no fire); 100 → 101 crosses (prev <= level, now >)
    assert fired(engine, [s.update(0, 99), s.update(0, 100), s.update(0, 101)]) == [101]


def test_cross_down_and_cross_both_ways() -> None:
    s = Stream()
    down = AlertEngine([rule(kind="cross_down", threshold=100)])
    both = AlertEngine([rule(kind="cross", threshold=100)])
    updates = [s.update(0, 101), s.update(0, 99), s.update(0, 102), s.update(0, 98)]
    assert fired(down, updates) == [99, 98]
    assert fired(both, updates) == [99, 102, 98]


def test_crossing_and_recrossing_within_one_candle() -> None:
    s = Stream()
    updates = [s.update(0, 99), s.update(0, 101), s.update(0, 99), s.update(0, 101)]
    every = AlertEngine([rule(kind="cross_up", threshold=100, frequency="every")])
    per_candle = AlertEngine([rule(kind="cross_up", threshold=100, frequency="per_candle")])
    assert fired(every, updates) == [101, 101]
    assert fired(per_candle, updates) == [101]
    # the next candle may fire again
    assert fired(per_candle, [s.update(0, 101, closed=True), s.update(1, 99), s.update(1, 101)]) == [101]


def test_no_crossing_on_the_first_update_after_a_start() -> None:
    s = Stream()
    engine = AlertEngine([rule(kind="cross_up", threshold=100)])
    s.update(0, 99)  # seen before the engine started: it only sees what follows
    assert fired(engine, [s.update(0, 101)]) == []
    assert fired(engine, [s.update(0, 99), s.update(0, 101)]) == [101]


def test_a_seq_gap_forgets_the_previous_value() -> None:
    s = Stream()
    engine = AlertEngine([rule(kind="cross_up", threshold=100)])
    assert fired(engine, [s.update(0, 99)]) == []
    s.update(0, 99.5)  # lost
    assert fired(engine, [s.update(0, 101)]) == []  # 99 → 101 across a gap is not a crossing
    assert fired(engine, [s.update(0, 99), s.update(0, 100.5)]) == [100.5]


def test_a_restarted_engine_needs_a_new_previous_value() -> None:
    s = Stream()
    first = AlertEngine([rule(kind="cross_down", threshold=100)])
    assert fired(first, [s.update(0, 101)]) == []
    restarted = AlertEngine([rule(kind="cross_down", threshold=100)])
    assert fired(restarted, [s.update(0, 99)]) == []


# ---------------------------------------------------------------- channels


@pytest.mark.parametrize("bounds", [[100, 110], [110, 100]])
def test_channel_enter_and_exit_bounds_inclusive_in_either_order(bounds: list[float]) -> None:
    s = Stream()
    updates = [s.update(0, 95), s.update(0, 100), s.update(0, 110), s.update(0, 110.01), s.update(0, 105)]
    enter = AlertEngine([rule(kind="channel_enter", threshold=bounds)])
    exit_ = AlertEngine([rule(kind="channel_exit", threshold=bounds)])
    assert fired(enter, updates) == [100, 105]
    assert fired(exit_, updates) == [110.01]
    assert enter.on_candles([s.update(0, 90), s.update(0, 101)], T0).events[0].message == (
        "BTCUSDT entered 100–110 at 101"
    )


# ---------------------------------------------------------------- pct_move, volume_spike


def test_pct_move_over_lookback_candles_either_direction_at_exactly_the_threshold() -> None:
    s = Stream()
    engine = AlertEngine([rule(kind="pct_move", threshold=2.0, lookback=2)])
    history = s.closes([100.0, 101.0])
    assert fired(engine, history) == []  # only two candles: no value two candles back
    assert fired(engine, [s.update(2, 101.99)]) == []  # +1.99 % from 100
    events = engine.on_candles([s.update(2, 102.0)], T0).events  # +2 % exactly
    assert [e.message for e in events] == ["BTCUSDT up 2.00% over 2 candles (1m)"]
    # falling 2 % from 101 (two candles back of candle 3) fires as "down"
    engine.on_candles([s.update(2, 100.0, closed=True)], T0)
    events = engine.on_candles([s.update(3, 98.98)], T0).events
    assert [e.message for e in events] == ["BTCUSDT down 2.00% over 2 candles (1m)"]


def test_volume_spike_over_factor_times_the_previous_mean() -> None:
    s = Stream()
    engine = AlertEngine([rule(kind="volume_spike", factor=3.0, lookback=3)])
    fired(engine, s.closes([100, 100, 100], volume=2.0))  # mean 2
    assert fired(engine, [s.update(3, 100, volume=6.0)]) == []  # exactly 3 × mean: not over
    events = engine.on_candles([s.update(3, 100, volume=6.5)], T0).events
    assert [(e.value, e.message) for e in events] == [(6.5, "BTCUSDT volume 6.5 is over 3× its 3-candle mean")]


def test_volume_spike_needs_lookback_candles_and_a_nonzero_mean() -> None:
    s = Stream()
    engine = AlertEngine([rule(kind="volume_spike", factor=2.0, lookback=3)])
    assert fired(engine, [*s.closes([100, 100], volume=1.0), s.update(2, 100, volume=50)]) == []
    engine2 = AlertEngine([rule(kind="volume_spike", factor=2.0, lookback=2)])
    assert fired(engine2, [*s.closes([100, 100], start=3, volume=0.0), s.update(5, 100, volume=5)]) == []


def test_the_longest_lookback_the_api_accepts_fires() -> None:
    """300 candles back (the API's limit, pinned here) is within what the engine keeps: a move over the
    longest lookback and a spike over the longest mean fire (they never did while the engine kept fewer)."""
    s = Stream()
    move = rule(1, kind="pct_move", threshold=10.0, lookback=300)
    spike = rule(2, kind="volume_spike", factor=2.0, lookback=300)
    engine = AlertEngine([move, spike])
    assert fired(engine, s.closes([100.0, 100.0] + [105.0] * 299, volume=1.0)) == []  # candles 0 to 300
    # candle 301 closes: 300 candles back is candle 1 (100 → 110, +10 %), its mean volume is that of 1 to 300
    events = engine.on_candles([s.update(301, 110.0, closed=True, volume=2.5)], T0).events
    assert sorted((e.rule_id, e.value) for e in events) == [(1, 110.0), (2, 2.5)]


# ---------------------------------------------------------------- frequencies, cooldown, expiry


def test_once_fires_then_the_rule_is_fired_and_disarmed() -> None:
    s = Stream()
    engine = AlertEngine([rule(kind="price_above", threshold=100, frequency="once")])
    result = engine.on_candles([s.update(0, 101), s.update(0, 102)], T0)
    assert [e.value for e in result.events] == [101]
    assert result.states == {1: "fired"}
    assert engine.rules[1].state == "fired"
    assert fired(engine, [s.update(1, 103)]) == []


def test_per_close_sees_closed_candles_only_and_crosses_between_closes() -> None:
    s = Stream()
    engine = AlertEngine([rule(kind="cross_up", threshold=100, frequency="per_close")])
    updates = [s.update(0, 99, closed=True), s.update(1, 101), s.update(1, 99), s.update(1, 100.5, closed=True)]
    assert fired(engine, updates) == [100.5]


def test_every_respects_the_cooldown() -> None:
    s = Stream()
    engine = AlertEngine([rule(kind="price_above", threshold=100, frequency="every", cooldown_s=10)])
    assert fired(engine, [s.update(0, 101)], now=T0) == [101]
    assert fired(engine, [s.update(0, 102)], now=T0 + 9_999) == []
    assert fired(engine, [s.update(0, 103)], now=T0 + 10_000) == [103]


def test_expired_rules_never_fire_and_report_expired_once() -> None:
    s = Stream()
    engine = AlertEngine([rule(kind="price_above", threshold=100, expires_at=T0 + 5_000)])
    assert fired(engine, [s.update(0, 101)], now=T0 + 4_999) == [101]
    result = engine.on_candles([s.update(0, 102)], T0 + 5_000)
    assert (result.events, result.states) == ([], {1: "expired"})
    assert engine.on_clock(T0 + 6_000).states == {}


def test_disabled_rules_never_fire() -> None:
    s = Stream()
    engine = AlertEngine([rule(kind="price_above", threshold=100, enabled=False)])
    assert fired(engine, [s.update(0, 101)]) == []


def test_rules_of_other_streams_are_not_evaluated() -> None:
    engine = AlertEngine([rule(kind="price_above", threshold=1)])
    assert fired(engine, [Stream("ETHUSDT").update(0, 5), Stream("BTCUSDT", "5m").update(0, 5)]) == []


# ---------------------------------------------------------------- feed_silent


def test_feed_silent_fires_once_per_silence_and_every_cooldown_with_every() -> None:
    s = Stream()
    once_per = AlertEngine([rule(kind="feed_silent", threshold=30, frequency="per_candle")], started_at=T0)
    every = AlertEngine([rule(kind="feed_silent", threshold=30, frequency="every", cooldown_s=60)], started_at=T0)
    for engine in (once_per, every):
        engine.on_candles([s.update(0, 100)], T0)  # last trade at T0 + 1 s
    assert once_per.on_clock(T0 + 30_999).events == []
    assert [e.value for e in once_per.on_clock(T0 + 31_000).events] == [30]
    assert once_per.on_clock(T0 + 200_000).events == []  # same silence
    assert [e.message for e in every.on_clock(T0 + 31_000).events] == ["BTCUSDT: no trade for 30 s"]
    assert every.on_clock(T0 + 90_999).events == []
    assert [e.value for e in every.on_clock(T0 + 91_000).events] == [90]
    # a trade ends the silence; the next silence alerts again
    once_per.on_candles([s.update(5, 100)], T0)
    assert [e.value for e in once_per.on_clock(T0 + 5 * MIN + 31_000).events] == [30]


def test_feed_silent_counts_from_the_start_when_the_symbol_never_traded() -> None:
    engine = AlertEngine([rule(kind="feed_silent", threshold=10, frequency="once")], started_at=T0)
    assert engine.on_clock(T0 + 9_000).events == []
    result = engine.on_clock(T0 + 10_000)
    assert ([e.value for e in result.events], result.states) == ([10], {1: "fired"})


# ---------------------------------------------------------------- watched indicators


def test_watching_rsi_above_70_matches_the_chart_indicator() -> None:
    s = Stream()
    closes = [100 + i for i in range(14)] + [113.0, 112.0, 113.5]
    candles = s.closes(closes)
    frame = pd.DataFrame({"close": closes})
    rsi = indicators.rsi(frame["close"], 14)
    expected = [float(v) for v in rsi if v > 70]
    engine = AlertEngine([rule(kind="price_above", threshold=70, watch="rsi14", frequency="per_close")])
    assert fired(engine, candles) == pytest.approx(expected)
    assert len(expected) == 3  # candles 14, 15 and 16 have an RSI, all above 70


def test_close_crosses_an_indicator() -> None:
    s = Stream()
    closes = [100.0] * 20 + [99.0, 101.0, 98.0]
    engine = AlertEngine([rule(kind="cross", threshold="sma20", frequency="per_close")])
    events = engine.on_candles(s.closes(closes), T0).events
    sma = indicators.sma(pd.Series(closes), 20).tolist()
    # candle 19: close = SMA = 100 (touch); 20: 99 < 99.95 (down from the touch); 21: up; 22: down
    assert [e.open_time for e in events] == [T0 + 20 * MIN, T0 + 21 * MIN, T0 + 22 * MIN]
    assert sma[19:] == pytest.approx([100.0, 99.95, 100.0, 99.9])
    assert events[0].message == "BTCUSDT crossed SMA20"


def test_a_watched_indicator_is_none_until_ready() -> None:
    s, series = Stream(), StreamSeries()
    values = []
    for c in s.closes([1.0] * 20):
        series.apply(c)
        values.append(series.indicator("ema20"))
    assert values == [None] * 19 + [1.0]


def test_a_watched_indicator_follows_the_forming_candle_and_a_corrected_close() -> None:
    """Every update of the forming candle moves the value (no recomputation limit), and a closed candle sent
    again with other numbers replaces the first: the values are the chart's over the candles as they are now."""
    s, series = Stream(), StreamSeries()
    for c in s.closes([100.0 + i for i in range(20)]):  # SMA 20 of 100..119 = 109.5
        series.apply(c)
    assert series.indicator("sma20") == 109.5
    got = []
    for close in (140.0, 120.0, 80.0):  # a forming candle replaces 100: SMA 20 = (101..119 + close) / 20
        series.apply(s.update(20, close))
        got.append(series.indicator("sma20"))
    assert got == [111.5, 110.5, 108.5]
    series.apply(s.update(20, 90.0, closed=True))
    series.apply(s.update(20, 60.0, closed=True))  # the same candle again, corrected
    assert series.indicator("sma20") == 107.5
    assert series.indicator_back("sma20", 1) == 109.5
    assert indicators.sma(pd.Series([100.0 + i for i in range(20)] + [60.0]), 20).iloc[-1] == 107.5


def test_event_fields_and_message() -> None:
    s = Stream()
    engine = AlertEngine([rule(7, kind="cross_up", threshold=97000)])
    engine.on_candles([s.update(0, 96990.5)], T0)
    (event,) = engine.on_candles([s.update(0, 97005.2)], T0 + 5).events
    assert (event.rule_id, event.symbol, event.interval, event.kind) == (7, "BTCUSDT", "1m", "cross_up")
    assert (event.threshold, event.value, event.fired_at, event.open_time) == (97000, 97005.2, T0 + 5, T0)
    assert event.message == "BTCUSDT crossed above 97000"


# ---------------------------------------------------------------- preview


def test_preview_shows_every_candle_where_a_once_rule_would_fire() -> None:
    s = Stream()
    candles = s.closes([99, 101, 99, 102, 103])
    events = preview(rule(kind="cross_up", threshold=100, frequency="once"), candles)
    assert [e.open_time for e in events] == [T0 + MIN, T0 + 3 * MIN]
    assert [e.fired_at for e in events] == [T0 + 2 * MIN - 1, T0 + 4 * MIN - 1]  # candle time, not wall clock


def test_preview_of_a_wall_clock_rule_is_empty() -> None:
    assert preview(rule(kind="feed_silent", threshold=5), Stream().closes([1, 2, 3])) == []


# ---------------------------------------------------------------- the level index against one-by-one evaluation

LEVELS = st.sampled_from([98.0, 99.0, 100.0, 101.0, 102.0])


@st.composite
def indexable_rules(draw: st.DrawFn) -> list[AlertRule]:
    out = []
    for i in range(draw(st.integers(1, 8))):
        kind = draw(
            st.sampled_from(
                ["price_above", "price_below", "cross", "cross_up", "cross_down", "channel_enter", "channel_exit",
                 "pct_move", "volume_spike"]
            )
        )  # fmt: skip
        fields: dict[str, object] = {"lookback": draw(st.integers(1, 3))}
        if kind.startswith("channel"):
            fields["threshold"] = [draw(LEVELS), draw(LEVELS)]
        elif kind == "pct_move":
            fields["threshold"] = draw(st.sampled_from([0.5, 1.0, 2.0, 3.0]))
        elif kind == "volume_spike":
            fields["factor"] = draw(st.sampled_from([1.0, 1.5, 2.0, 3.0]))
        else:
            fields["threshold"] = draw(LEVELS)
        if kind not in {"pct_move", "volume_spike"}:  # levels and channels are indexed on an indicator too
            fields["watch"] = draw(st.sampled_from(["close", "close", "vwap"]))
        frequency = draw(st.sampled_from(["once", "per_candle", "per_close", "every"]))
        cooldown = draw(st.sampled_from([0, 2]))
        out.append(rule(i + 1, kind=kind, frequency=frequency, cooldown_s=cooldown, **fields))
    return out


@given(
    rules=indexable_rules(),
    steps=st.lists(
        st.tuples(
            st.sampled_from([97.0, 98.0, 99.0, 99.5, 100.0, 101.0, 102.0, 103.0]),
            st.booleans(),
            st.booleans(),
            st.sampled_from([0.0, 1.0, 2.0, 3.0, 6.0]),
        ),
        min_size=1,
        max_size=40,
    ),
)
@settings(max_examples=300, deadline=None)
def test_the_indexes_fire_exactly_what_one_by_one_evaluation_fires(
    rules: list[AlertRule], steps: list[tuple[float, bool, bool, float]]
) -> None:
    """Random closes (touching levels exactly, closing candles, seq gaps, volumes) and random rules of every
    indexed kind: levels, crossings, channels (on the close or the VWAP, which has no value while the day has no
    volume), moves and volume spikes."""
    indexed, reference = AlertEngine(rules), AlertEngine(rules, indexed=False)
    s, i = Stream(), 0
    for step, (close, closes, gap, volume) in enumerate(steps):
        if gap:
            s.seq += 1  # a lost update
        c = s.update(i, close, closed=closes, volume=volume)
        i += closes
        now = T0 + step * 1_000
        a, b = indexed.on_candles([c], now), reference.on_candles([c], now)
        # the same alerts (the index finds them in level order, the reference in rule order)
        assert sorted((e.rule_id, e.value, e.open_time) for e in a.events) == sorted(
            (e.rule_id, e.value, e.open_time) for e in b.events
        )
        assert a.states == b.states
