"""Alert rules evaluated on candle updates: pure logic, no I/O (a sans-I/O core like ``websockets``).

The engine sees every candle update of the streams its rules watch, in order, and the wall clock
(for ``feed_silent`` and expiry). It answers with the alerts that fire and the rules whose state
changed; storing, publishing and delivering them is the caller's job.

Semantics (the README's "Alerts" section says the same for users):
- The watched value is the candle's close, or an indicator of the chart (``INDICATOR_WATCHES``) on
  every update: :mod:`backend.indicators`' running form, carried over the stream's closed candles and
  applied to the forming one (the chart's numbers over the same candles).
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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import msgspec

from backend.alerts.conditions import LEVEL_KINDS, condition, describe, lookback_of
from backend.alerts.index import CHANNEL_KINDS, LevelIndex, MeasureIndex, indexable, measurable
from backend.alerts.series import StreamSeries
from backend.models import AlertEvent, AlertRule, Candle

Stream = tuple[str, str]
IndexKey = tuple[Stream, bool]  # (stream, closes only)
LevelKey = tuple[Stream, str, bool]  # (stream, watched value, closes only)
EMPTY = StreamSeries()  # indexed kinds never read the series


class Watched:
    """A stream with rules: its level indexes (per watched value, for every update or closes only), its move and
    volume indexes, its other rules, and the last ``seq`` it showed."""

    __slots__ = ("general", "last_seq", "levels", "measure_closes", "measure_every", "series")

    def __init__(self, levels: list[tuple[str, bool, LevelIndex]], general: list[int] | None) -> None:
        self.levels, self.general = levels, general
        self.measure_every: MeasureIndex | None = None  # moves and volume spikes, on every update
        self.measure_closes: MeasureIndex | None = None  # the same, on closed candles only
        self.last_seq: int | None = None
        self.series: StreamSeries | None = None  # its candles, when a rule needs more than the update's close


DEFINITION_FIELDS = ("symbol", "interval", "kind", "threshold", "watch", "frequency", "cooldown_s", "lookback")
DEFINITION_FIELDS += ("factor", "expires_at", "enabled", "state")


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


class AlertEngine:
    """Every rule's state and every watched stream's series; fed candles and the clock."""

    def __init__(self, rules: Iterable[AlertRule] = (), *, started_at: int = 0, indexed: bool = True) -> None:
        """``indexed=False`` evaluates every rule one by one: the reference the level index is tested against."""
        self.indexed = indexed
        self.rules: dict[int, AlertRule] = {}
        self.state: dict[int, RuleState] = {}
        self.general: dict[Stream, list[int]] = {}  # rules evaluated one by one (an indicator as the level, …)
        self.indexes: dict[LevelKey, LevelIndex] = {}  # rules with constant levels
        self.measures: dict[IndexKey, MeasureIndex] = {}  # moves and volume spikes on the close
        self.by_stream: dict[Stream, Watched] = {}
        self.series: dict[Stream, StreamSeries] = {}
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
        old_indexes = self.indexes
        self.general, self.indexes, self.measures = {}, {}, {}
        for rule_id, r in rules.items():
            if r.kind == "feed_silent" or not r.enabled or r.state != "armed":
                continue
            stream, closes_only = (r.symbol, r.interval), r.frequency == "per_close"
            if self.indexed and indexable(r.kind, r.threshold):
                index = self.indexes.setdefault((stream, r.watch, closes_only), LevelIndex())
                index.add(rule_id, r.kind, r.threshold, fresh=rule_id not in kept)  # type: ignore[arg-type]
            elif self.indexed and measurable(r.kind, r.watch):
                limit = r.threshold if r.kind == "pct_move" else r.factor
                group = self.measures.setdefault((stream, closes_only), MeasureIndex())
                group.add(rule_id, r.kind, lookback_of(r), float(limit or 0.0))  # type: ignore[arg-type]
            else:
                self.general.setdefault(stream, []).append(rule_id)
        for key, index in self.indexes.items():  # what each watched value showed so far stays known
            if key in old_indexes:
                index.prev = old_indexes[key].prev
        levels: dict[Stream, list[tuple[str, bool, LevelIndex]]] = {}
        for (stream, watch, closes_only), index in self.indexes.items():
            levels.setdefault(stream, []).append((watch, closes_only, index))
        old = self.by_stream
        self.by_stream = {}
        for s in set(self.general) | set(levels) | {stream for stream, _ in self.measures}:
            w = self.by_stream[s] = Watched(levels.get(s, []), self.general.get(s))
            w.measure_every, w.measure_closes = self.measures.get((s, False)), self.measures.get((s, True))
            if w.general or w.measure_every or w.measure_closes or any(watch != "close" for watch, _, _ in w.levels):
                w.series = self.series.setdefault(s, StreamSeries())
            if s in old:
                w.last_seq = old[s].last_seq

    def armed(self, rule: AlertRule, now: int) -> bool:
        return rule.enabled and rule.state == "armed" and (rule.expires_at is None or now < rule.expires_at)

    def on_candles(self, candles: Iterable[Candle], now: int) -> Evaluation:
        """Evaluate the rules of every updated stream, update by update."""
        events: list[AlertEvent] = []
        states: dict[int, str] = {}
        by_stream, last_trade = self.by_stream, self.last_trade
        for c in candles:
            if c.trades > 0 and c.event_time > last_trade.get(c.symbol, 0):
                last_trade[c.symbol] = c.event_time
            w = by_stream.get((c.symbol, c.interval))
            if w is None:
                continue
            continuous = w.last_seq is not None and c.seq == w.last_seq + 1
            w.last_seq = c.seq
            series = w.series
            if series is not None:
                series.apply(c)
            if not continuous:  # a crossing needs the previous value: none after a start, a restart or a gap
                for _, _, index in w.levels:
                    index.prev = None
            for watch, closes_only, index in w.levels:
                if closes_only and not c.closed:
                    continue
                value = c.close if watch == "close" else series.indicator(watch)  # type: ignore[union-attr]
                prev, index.prev = index.prev, value
                if value is not None and not (index.quiet[0] < value < index.quiet[1]):
                    self._indexed(index, prev, value, c, now, events, states)
            if series is not None:
                if w.measure_every is not None and not self._calm(w.measure_every, series):
                    self._measured(w.measure_every, series, c, now, events, states)
                if w.measure_closes is not None and c.closed and not self._calm(w.measure_closes, series):
                    self._measured(w.measure_closes, series, c, now, events, states)
                if w.general:
                    self._general(w.general, series, c, continuous, now, events, states)
        self._settle(states)
        return Evaluation(events, states)

    def _indexed(
        self,
        index: LevelIndex,
        prev: float | None,
        value: float,
        c: Candle,
        now: int,
        events: list[AlertEvent],
        states: dict[int, str],
    ) -> None:
        """The index's candidates for this update, each checked exactly (few: those whose level was reached)."""
        candidates = index.candidates(prev, value)
        index.fresh.clear()
        for rule_id in candidates:
            rule = self.rules[rule_id]
            if rule_id in states or not self.armed(rule, now):
                self._expire(rule, now, states)
                continue
            level = None if rule.kind in CHANNEL_KINDS else float(rule.threshold)  # type: ignore[arg-type]
            hit, _ = condition(rule, EMPTY, value, level, prev, level)
            if hit:
                st = self.state.setdefault(rule_id, RuleState())
                self._fire(rule, st, c, now, value, level, None, events, states)

    @staticmethod
    def _calm(index: MeasureIndex, series: StreamSeries) -> bool:
        """Whether the current candle lies where none of the index's rules can fire (the bounds are computed
        once per candle; :meth:`_measured` checks the others exactly)."""
        cur = series.current()
        if cur is None:
            return True
        before = series.before()
        if index.calm_for is not before or before is None:
            index.calm_for, index.calm = before, calm_bounds(index, series)
        low, high, volume = index.calm
        return low < cur.close < high and cur.volume < volume

    def _measured(
        self,
        index: MeasureIndex,
        series: StreamSeries,
        c: Candle,
        now: int,
        events: list[AlertEvent],
        states: dict[int, str],
    ) -> None:
        """Moves and volume spikes: one measure per lookback, the rules it reaches found by bisection."""
        cur = series.current()
        if cur is None:
            return
        for (kind, n), ladder in index.groups.items():
            if kind == "pct_move":
                then = series.back(n)
                if then is None or then.close == 0:
                    continue
                candidates = ladder.upto(abs(cur.close - then.close) / abs(then.close) * 100.0 + 1e-6)
            else:
                mean = series.mean_volume_before(n)
                if mean is None or mean <= 0:
                    continue
                candidates = ladder.upto(cur.volume / mean * (1 + 1e-9))
            for rule_id in candidates:  # a superset by a hair: each is checked exactly
                rule = self.rules[rule_id]
                if rule_id in states or not self.armed(rule, now):
                    self._expire(rule, now, states)
                    continue
                hit, pct = condition(rule, series, cur.close, None, None, None)
                if hit:
                    st = self.state.setdefault(rule_id, RuleState())
                    value = cur.volume if kind == "volume_spike" else cur.close
                    self._fire(rule, st, c, now, value, None, pct, events, states)

    def _general(
        self,
        ids: list[int],
        series: StreamSeries,
        c: Candle,
        continuous: bool,
        now: int,
        events: list[AlertEvent],
        states: dict[int, str],
    ) -> None:
        """Rules that need their own evaluation: an indicator as the level, a move of an indicator (and every rule
        when not indexed)."""
        memo: dict[str, float | None] = {}
        for rule_id in ids:
            rule = self.rules[rule_id]
            if rule_id in states or not self.armed(rule, now):
                self._expire(rule, now, states)
                continue
            st = self.state.setdefault(rule_id, RuleState())
            if not continuous:
                st.prev = st.prev_level = None
            if rule.frequency == "per_close" and not c.closed:
                continue
            self._step(rule, st, series, c, now, memo, events, states)

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
        """Disarm the rules that fired once or expired (they leave the index and the general lists)."""
        if not states:
            return
        rules = dict(self.rules)
        for rule_id, new in states.items():
            rules[rule_id] = msgspec.structs.replace(rules[rule_id], state=new)
        kept = dict(self.state)
        self.set_rules(rules.values())
        self.state.update({i: st for i, st in kept.items() if i in rules})

    @staticmethod
    def _cooled(rule: AlertRule, st: RuleState, now: int) -> bool:
        return st.last_fired_at is None or now - st.last_fired_at >= rule.cooldown_s * 1000

    def _step(
        self,
        rule: AlertRule,
        st: RuleState,
        series: StreamSeries,
        c: Candle,
        now: int,
        memo: dict[str, float | None],
        events: list[AlertEvent],
        states: dict[int, str],
    ) -> None:
        value = self._value(rule.watch, series, memo)
        level = self._level(rule, series, memo)
        prev, prev_level = st.prev, st.prev_level
        st.prev, st.prev_level = value, level
        if value is None:
            return
        hit, pct = condition(rule, series, value, level, prev, prev_level)
        if hit:
            self._fire(rule, st, c, now, c.volume if rule.kind == "volume_spike" else value, level, pct, events, states)

    def _fire(
        self,
        rule: AlertRule,
        st: RuleState,
        c: Candle,
        now: int,
        value: float,
        level: float | None,
        pct: float | None,
        events: list[AlertEvent],
        states: dict[int, str],
    ) -> None:
        """The condition holds: fire unless the frequency says not now."""
        if rule.frequency == "per_candle" and st.fired_open_time == c.open_time:
            return
        if rule.frequency == "every" and not self._cooled(rule, st, now):
            return
        st.fired_open_time, st.last_fired_at = c.open_time, now
        events.append(self._event(rule, value, level, now, c.open_time, pct))
        if rule.frequency == "once":
            states[rule.id] = "fired"  # type: ignore[index]

    def _value(self, watch: str, series: StreamSeries, memo: dict[str, float | None]) -> float | None:
        if watch not in memo:
            if watch == "close":
                cur = series.current()
                memo[watch] = cur.close if cur is not None else None
            else:
                memo[watch] = series.indicator(watch)
        return memo[watch]

    def _level(self, rule: AlertRule, series: StreamSeries, memo: dict[str, float | None]) -> float | None:
        if rule.kind not in LEVEL_KINDS:
            return None
        if isinstance(rule.threshold, str):
            return self._value(rule.threshold, series, memo)
        return float(rule.threshold)  # type: ignore[arg-type]

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


def calm_bounds(index: MeasureIndex, series: StreamSeries) -> tuple[float, float, float]:
    """(low, high, volume): a current candle with low < close < high and volume below reaches no rule of the
    index. Each group's smallest threshold is the first one reached; the margins (a billionth, a few ulps) keep
    the bounds inside what :meth:`AlertEngine._measured` computes, whatever its rounding."""
    low, high, volume = -math.inf, math.inf, math.inf
    for (kind, n), ladder in index.groups.items():
        least = ladder.levels[0]
        if kind == "pct_move":
            then = series.back(n)
            if then is None or then.close == 0:
                continue  # this group cannot fire now
            ref = then.close
            reach = (least - 1e-6) / 100.0 * abs(ref) * (1 - 1e-9) - 4 * math.ulp(ref)
            if reach <= 0:
                return (math.inf, -math.inf, -math.inf)  # any move may reach it: check every update
            low, high = max(low, ref - reach), min(high, ref + reach)
        else:
            mean = series.mean_volume_before(n)
            if mean is None or mean <= 0:
                continue
            volume = min(volume, least * mean * (1 - 1e-8))
    return (low, high, volume)


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
