"""Alert rules evaluated on candle updates: pure logic, no I/O (a sans-I/O core like ``websockets``).

The engine sees every candle update of the streams its rules watch, in order, and the wall clock
(for ``feed_silent`` and expiry). It answers with the alerts that fire and the rules whose state
changed; storing, publishing and delivering them is the caller's job.

Semantics (the README's "Alerts" section says the same for users):
- The watched value is the candle's close, or an indicator of the chart (``INDICATOR_WATCHES``)
  computed by :mod:`backend.indicators` over the stream's recent closed candles plus the forming one.
- ``price_above`` fires while value > threshold, ``price_below`` while value < threshold (equal is
  neither). ``cross_up`` fires when the previous value was <= the level and this one is > it;
  ``cross_down`` when it was >= and is <; ``cross`` either (Pine Script's ``ta.crossover``). The level
  is the threshold, or an indicator when the threshold names one (``"ema50"``: close crosses EMA 50).
- ``channel_enter`` / ``channel_exit``: the value moves into / out of ``[low, high]`` (bounds
  inclusive; ``[high, low]`` is read the same way).
- ``pct_move``: |value / value ``lookback`` candles ago − 1| × 100 >= threshold (either direction).
- ``volume_spike``: candle volume > ``factor`` × mean volume of the ``lookback`` closed candles before.
- ``feed_silent``: no trade of the symbol for ``threshold`` seconds of wall clock (once per silence,
  again every ``cooldown_s`` with ``every``).
- A crossing needs a previous value: never on the first update after a start, a restart or a seq gap.
- Frequencies: ``once`` (then the rule is ``fired`` and disarmed), ``per_candle`` (at most once per
  candle), ``per_close`` (evaluated on closed candles only), ``every`` (at most once per ``cooldown_s``).
  Past ``expires_at`` a rule is ``expired``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import msgspec
import pandas as pd

from backend import indicators
from backend.models import AlertEvent, AlertRule, Candle

WINDOW = 300  # closed candles kept per stream: enough for every indicator's warm-up (EMA 50 converges)
CROSS_KINDS = frozenset({"cross", "cross_up", "cross_down", "channel_enter", "channel_exit"})
LEVEL_KINDS = frozenset({"price_above", "price_below", "cross", "cross_up", "cross_down"})
INDICATOR_WATCHES: dict[str, tuple[str, str]] = {
    # watch name → (indicator key, column of its frame)
    "sma20": ("sma20", "SMA 20"),
    "sma50": ("sma50", "SMA 50"),
    "ema20": ("ema20", "EMA 20"),
    "ema50": ("ema50", "EMA 50"),
    "vwap": ("vwap", "VWAP"),
    "bb20_upper": ("bb20", "upper"),
    "bb20_mid": ("bb20", "mid"),
    "bb20_lower": ("bb20", "lower"),
    "rsi14": ("rsi14", "RSI 14"),
}
WATCHES: tuple[str, ...] = ("close", *INDICATOR_WATCHES)
DEFINITION_FIELDS = ("symbol", "interval", "kind", "threshold", "watch", "frequency", "cooldown_s", "lookback")
DEFINITION_FIELDS += ("factor", "expires_at", "enabled", "state")
_VERBS = {
    "price_above": "is above",
    "price_below": "is below",
    "cross_up": "crossed above",
    "cross_down": "crossed below",
    "channel_enter": "entered",
    "channel_exit": "left",
}


@dataclass
class StreamSeries:
    """One stream's recent closed candles and its forming candle, as the engine has seen them."""

    closed: deque[Candle] = field(default_factory=lambda: deque(maxlen=WINDOW))
    forming: Candle | None = None
    last_seq: int | None = None

    def apply(self, c: Candle) -> bool:
        """Take one update; True when it follows the previous one without a ``seq`` gap."""
        continuous = self.last_seq is not None and c.seq == self.last_seq + 1
        self.last_seq = c.seq
        if c.closed:
            if self.closed and self.closed[-1].open_time >= c.open_time:
                if self.closed[-1].open_time == c.open_time:
                    self.closed[-1] = c
            else:
                self.closed.append(c)
            if self.forming is not None and self.forming.open_time <= c.open_time:
                self.forming = None
        else:
            self.forming = c
        return continuous

    def candles(self) -> list[Candle]:
        """Closed candles oldest first, then the forming one."""
        return [*self.closed, self.forming] if self.forming is not None else list(self.closed)

    def current(self) -> Candle | None:
        return self.forming if self.forming is not None else (self.closed[-1] if self.closed else None)


def candle_frame(candles: Sequence[Candle]) -> pd.DataFrame:
    """The columns the indicators read, for a run of candles."""
    cols = ("open_time", "high", "low", "close", "volume", "quote_volume")
    return pd.DataFrame({name: [getattr(c, name) for c in candles] for name in cols})


def watched_values(watch: str, candles: Sequence[Candle]) -> list[float]:
    """The watched value at every candle (NaN where an indicator is not ready yet)."""
    if watch == "close":
        return [c.close for c in candles]
    key, column = INDICATOR_WATCHES[watch]
    if not candles:
        return []
    return [float(v) for v in indicators.compute(key, candle_frame(candles))[column]]


@dataclass
class RuleState:
    """What the engine remembers of one rule between updates."""

    prev: float | None = None
    prev_level: float | None = None
    fired_open_time: int | None = None  # the candle of the last fire (per_candle)
    last_fired_at: int | None = None  # wall clock of the last fire (every + cooldown)
    silent_since: int | None = None  # feed_silent: the last trade time of the silence already alerted


@dataclass(frozen=True)
class Evaluation:
    """What one step of the engine produced."""

    events: list[AlertEvent]
    states: dict[int, str]  # rule id → its new state (fired, expired)


def definition(rule: AlertRule) -> tuple[object, ...]:
    """What decides when a rule fires (not its bookkeeping: fire count, last fire, note)."""
    return tuple(getattr(rule, name) for name in DEFINITION_FIELDS)


def fmt_level(x: float) -> str:
    return f"{x:.10g}"


def describe(rule: AlertRule, value: float, level: float | None, pct: float | None = None) -> str:
    """The human message of an alert, e.g. ``BTCUSDT crossed above 97000``."""
    what = rule.symbol if rule.watch == "close" else f"{rule.symbol} {rule.watch.upper().replace('_', ' ')}"
    target = rule.threshold if isinstance(rule.threshold, str) else None
    if rule.kind in {"channel_enter", "channel_exit"}:
        lo, hi = channel(rule)
        return f"{what} {_VERBS[rule.kind]} {fmt_level(lo)}–{fmt_level(hi)} at {fmt_level(value)}"
    if rule.kind == "pct_move":
        direction = "up" if (pct or 0.0) >= 0 else "down"
        return f"{what} {direction} {abs(pct or 0.0):.2f}% over {rule.lookback} candles ({rule.interval})"
    if rule.kind == "volume_spike":
        return f"{rule.symbol} volume {fmt_level(value)} is over {rule.factor:g}× its {rule.lookback}-candle mean"
    if rule.kind == "feed_silent":
        return f"{rule.symbol}: no trade for {fmt_level(value)} s"
    verb = _VERBS.get(rule.kind, "crossed")
    against = target.upper() if target else fmt_level(level if level is not None else float("nan"))
    return f"{what} {verb} {against}"


def channel(rule: AlertRule) -> tuple[float, float]:
    lo, hi = rule.threshold  # type: ignore[misc]
    return (min(lo, hi), max(lo, hi))


class AlertEngine:
    """Every rule's state and every watched stream's series; fed candles and the clock."""

    def __init__(self, rules: Iterable[AlertRule] = (), *, started_at: int = 0) -> None:
        self.rules: dict[int, AlertRule] = {}
        self.state: dict[int, RuleState] = {}
        self.by_stream: dict[tuple[str, str], list[int]] = {}
        self.series: dict[tuple[str, str], StreamSeries] = {}
        self.last_trade: dict[str, int] = {}
        self.started_at = started_at
        self.set_rules(rules)

    def set_rules(self, rules: Iterable[AlertRule]) -> None:
        """Replace the rule set, keeping what the engine knows of rules whose definition is unchanged."""
        rules = {r.id: r for r in rules if r.id is not None}
        kept = {i for i in rules if i in self.rules and definition(rules[i]) == definition(self.rules[i])}
        self.state = {i: s for i, s in self.state.items() if i in kept}
        for i, r in rules.items():  # a cooldown outlives a restart: it starts from the stored last fire
            if i not in self.state and r.last_fired_at is not None:
                self.state[i] = RuleState(last_fired_at=r.last_fired_at)
        self.rules = rules
        by_stream: dict[tuple[str, str], list[int]] = {}
        for rule_id, r in rules.items():
            if r.kind != "feed_silent":
                by_stream.setdefault((r.symbol, r.interval), []).append(rule_id)
        self.by_stream = by_stream

    def armed(self, rule: AlertRule, now: int) -> bool:
        return rule.enabled and rule.state == "armed" and (rule.expires_at is None or now < rule.expires_at)

    def on_candles(self, candles: Iterable[Candle], now: int) -> Evaluation:
        """Evaluate the rules of every updated stream, update by update."""
        events: list[AlertEvent] = []
        states: dict[int, str] = {}
        for c in candles:
            if c.trades > 0:
                self.last_trade[c.symbol] = max(self.last_trade.get(c.symbol, 0), c.event_time)
            ids = self.by_stream.get(c.stream)
            if not ids:
                continue
            series = self.series.setdefault(c.stream, StreamSeries())
            continuous = series.apply(c)
            memo: dict[str, float | None] = {}
            for rule_id in ids:
                rule = self.rules[rule_id]
                if rule_id in states:
                    continue
                if not self.armed(rule, now):
                    self._expire(rule, now, states)
                    continue
                st = self.state.setdefault(rule_id, RuleState())
                if not continuous:
                    st.prev = st.prev_level = None
                if rule.frequency == "per_close" and not c.closed:
                    continue
                event = self._step(rule, st, series, c, now, memo)
                if event is not None:
                    events.append(event)
                    if rule.frequency == "once":
                        states[rule_id] = "fired"
        self._settle(states)
        return Evaluation(events, states)

    def on_clock(self, now: int) -> Evaluation:
        """Wall-clock rules (``feed_silent``) and expiry."""
        events: list[AlertEvent] = []
        states: dict[int, str] = {}
        for rule_id, rule in self.rules.items():
            if not self.armed(rule, now):
                self._expire(rule, now, states)
                continue
            if rule.kind != "feed_silent":
                continue
            st = self.state.setdefault(rule_id, RuleState())
            last = self.last_trade.get(rule.symbol, self.started_at)
            silent_s = (now - last) / 1000.0
            if silent_s < float(rule.threshold or 0):  # type: ignore[arg-type]
                continue
            if st.silent_since == last and not (rule.frequency == "every" and self._cooled(rule, st, now)):
                continue
            st.silent_since, st.last_fired_at = last, now
            events.append(self._event(rule, math.floor(silent_s), None, now, None))
            if rule.frequency == "once":
                states[rule_id] = "fired"
        self._settle(states)
        return Evaluation(events, states)

    def _expire(self, rule: AlertRule, now: int, states: dict[int, str]) -> None:
        if rule.state == "armed" and rule.enabled and rule.expires_at is not None and now >= rule.expires_at:
            states[rule.id] = "expired"  # type: ignore[index]

    def _settle(self, states: dict[int, str]) -> None:
        for rule_id, new in states.items():
            rule = self.rules[rule_id]
            self.rules[rule_id] = msgspec.structs.replace(rule, state=new)

    @staticmethod
    def _cooled(rule: AlertRule, st: RuleState, now: int) -> bool:
        return st.last_fired_at is None or now - st.last_fired_at >= rule.cooldown_s * 1000

    def _step(
        self, rule: AlertRule, st: RuleState, series: StreamSeries, c: Candle, now: int, memo: dict[str, float | None]
    ) -> AlertEvent | None:
        value = self._value(rule.watch, series, memo)
        level = self._level(rule, series, memo)
        prev, prev_level = st.prev, st.prev_level
        st.prev, st.prev_level = value, level
        if value is None:
            return None
        hit, pct = self._condition(rule, series, value, level, prev, prev_level)
        if not hit:
            return None
        if rule.frequency == "per_candle" and st.fired_open_time == c.open_time:
            return None
        if rule.frequency == "every" and not self._cooled(rule, st, now):
            return None
        st.fired_open_time, st.last_fired_at = c.open_time, now
        shown = c.volume if rule.kind == "volume_spike" else value
        return self._event(rule, shown, level, now, c.open_time, pct)

    def _value(self, watch: str, series: StreamSeries, memo: dict[str, float | None]) -> float | None:
        if watch not in memo:
            if watch == "close":
                cur = series.current()
                memo[watch] = cur.close if cur is not None else None
            else:
                values = watched_values(watch, series.candles())
                last = values[-1] if values else math.nan
                memo[watch] = None if math.isnan(last) else last
        return memo[watch]

    def _level(self, rule: AlertRule, series: StreamSeries, memo: dict[str, float | None]) -> float | None:
        if rule.kind not in LEVEL_KINDS:
            return None
        if isinstance(rule.threshold, str):
            return self._value(rule.threshold, series, memo)
        return float(rule.threshold)  # type: ignore[arg-type]

    @staticmethod
    def _condition(
        rule: AlertRule,
        series: StreamSeries,
        value: float,
        level: float | None,
        prev: float | None,
        prev_level: float | None,
    ) -> tuple[bool, float | None]:
        kind = rule.kind
        if kind in LEVEL_KINDS and level is None:
            return False, None
        if kind == "price_above":
            return value > level, None  # type: ignore[operator]
        if kind == "price_below":
            return value < level, None  # type: ignore[operator]
        if kind in CROSS_KINDS and (prev is None or (kind in LEVEL_KINDS and prev_level is None)):
            return False, None
        if kind in {"cross_up", "cross"} and prev <= prev_level and value > level:  # type: ignore[operator]
            return True, None
        if kind in {"cross_down", "cross"} and prev >= prev_level and value < level:  # type: ignore[operator]
            return True, None
        if kind in {"channel_enter", "channel_exit"}:
            lo, hi = channel(rule)
            was_in, is_in = lo <= prev <= hi, lo <= value <= hi  # type: ignore[operator]
            return (is_in and not was_in) if kind == "channel_enter" else (was_in and not is_in), None
        if kind == "pct_move":
            return _pct_move(rule, series)
        if kind == "volume_spike":
            return _volume_spike(rule, series), None
        return False, None

    def _event(
        self,
        rule: AlertRule,
        value: float,
        level: float | None,
        now: int,
        open_time: int | None,
        pct: float | None = None,
    ) -> AlertEvent:
        return AlertEvent(
            rule_id=rule.id or 0,
            symbol=rule.symbol,
            interval=rule.interval,
            kind=rule.kind,
            threshold=rule.threshold,
            value=value,
            message=describe(rule, value, level, pct),
            fired_at=now,
            open_time=open_time,
        )


def _pct_move(rule: AlertRule, series: StreamSeries) -> tuple[bool, float | None]:
    n = rule.lookback or 1
    candles = series.candles()
    if len(candles) < n + 1:
        return False, None
    window = candles[-(n + 1) :] if rule.watch == "close" else candles  # indicators need their warm-up
    values = watched_values(rule.watch, window)[-(n + 1) :]
    ref, cur = values[0], values[-1]
    if math.isnan(ref) or math.isnan(cur) or ref == 0:
        return False, None
    pct = round((cur - ref) / abs(ref) * 100.0, 9)  # decimal prices: 98.98 from 101 is -2 %, not -1.99999…
    return abs(pct) >= float(rule.threshold), pct  # type: ignore[arg-type]


def _volume_spike(rule: AlertRule, series: StreamSeries) -> bool:
    n = rule.lookback or 20
    cur = series.current()
    if cur is None:
        return False
    before = [c for c in series.closed if c.open_time < cur.open_time][-n:]
    if len(before) < n:
        return False
    mean = sum(c.volume for c in before) / n
    return mean > 0 and cur.volume > (rule.factor or 1.0) * mean


def preview(rule: AlertRule, candles: Sequence[Candle]) -> list[AlertEvent]:
    """Where ``rule`` would have fired over past ``candles``: one update per candle, on candle time.

    ``once`` is shown as ``per_candle`` (every place it would fire, not just the first), and expiry is
    ignored; a wall-clock rule (``feed_silent``) has nothing to show on past candles.
    """
    frequency = "per_candle" if rule.frequency == "once" else rule.frequency
    trial = msgspec.structs.replace(rule, id=rule.id or 1, frequency=frequency, state="armed", enabled=True)
    trial = msgspec.structs.replace(trial, expires_at=None)
    engine = AlertEngine([trial])
    events: list[AlertEvent] = []
    for seq, c in enumerate(candles, start=1):
        update = msgspec.structs.replace(c, seq=seq, closed=True)
        events += engine.on_candles([update], c.close_time).events
    return events
