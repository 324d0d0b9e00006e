"""When a rule's condition holds, and how the alert says so: pure functions of values, no state.

``price_above`` / ``price_below`` compare strictly (equal is neither); a crossing needs the previous value
(``cross_up``: previous <= level < value, Pine Script's ``ta.crossover``); channels include their bounds and
read ``[high, low]`` as ``[low, high]``; ``pct_move`` compares to 1e-9 % so decimal prices hit exactly.
"""

from __future__ import annotations

from backend.alerts.series import StreamSeries
from backend.models import AlertRule

CROSS_KINDS = frozenset({"cross", "cross_up", "cross_down", "channel_enter", "channel_exit"})
LEVEL_KINDS = frozenset({"price_above", "price_below", "cross", "cross_up", "cross_down"})
_VERBS = {
    "price_above": "is above",
    "price_below": "is below",
    "cross_up": "crossed above",
    "cross_down": "crossed below",
    "channel_enter": "entered",
    "channel_exit": "left",
}


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


def condition(
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


def lookback_of(rule: AlertRule) -> int:
    """The candles a move or a volume mean is measured over (1 and 20 when unset)."""
    return rule.lookback or (1 if rule.kind == "pct_move" else 20)


def _pct_move(rule: AlertRule, series: StreamSeries) -> tuple[bool, float | None]:
    n = lookback_of(rule)
    if rule.watch == "close":
        then, now = series.back(n), series.current()
        ref = then.close if then is not None else None
        cur = now.close if now is not None else None
    else:
        ref, cur = series.indicator_back(rule.watch, n), series.indicator(rule.watch)
    if ref is None or cur is None or ref == 0:
        return False, None
    pct = round((cur - ref) / abs(ref) * 100.0, 9)  # decimal prices: 98.98 from 101 is -2 %, not -1.99999…
    return abs(pct) >= float(rule.threshold), pct  # type: ignore[arg-type]


def _volume_spike(rule: AlertRule, series: StreamSeries) -> bool:
    cur = series.current()
    mean = series.mean_volume_before(lookback_of(rule))
    return cur is not None and mean is not None and mean > 0 and cur.volume > (rule.factor or 1.0) * mean
