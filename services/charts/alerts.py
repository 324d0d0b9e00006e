"""The alerts page's preview: the symbol's recent candles with a marker wherever a rule would have fired.

It is the candles page's figure, smaller, with the indicators the rule watches, the rule's levels as dashed
lines and the would-have-fired markers; so a preview looks like what the rule will do on the real chart.
Pure: candle columns, fires and the rule in, a Plotly figure dict out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from backend.alerts.series import INDICATOR_WATCHES
from backend.config import INTERVALS_MS
from backend.models import AlertRule
from services.charts.alert_text import fmt_duration, fmt_level
from services.charts.candles import ChartSpec, candles_figure_spec
from services.charts.marks import AlertMark, marker_trace
from services.charts.palette import ALERT, FONT

PREVIEW_HEIGHT = 360


def watched_indicators(rule: AlertRule) -> tuple[str, ...]:
    """The chart indicators a rule reads (its watch, and the indicator it crosses), e.g. ``("ema20", "ema50")``."""
    names = [rule.watch, rule.threshold if isinstance(rule.threshold, str) else ""]
    return tuple(dict.fromkeys(INDICATOR_WATCHES[n][0] for n in names if n in INDICATOR_WATCHES))


def rule_levels(rule: AlertRule) -> list[float]:
    """The fixed price levels a rule compares against (a level, or a channel's two bounds)."""
    t = rule.threshold
    if rule.kind in {"channel_enter", "channel_exit"} and isinstance(t, list):
        return sorted(float(x) for x in t)
    if rule.kind in {"price_above", "price_below", "cross", "cross_up", "cross_down"} and isinstance(t, int | float):
        return [float(t)]
    return []


def preview_figure_spec(
    df: pd.DataFrame, marks: Sequence[AlertMark], rule: AlertRule, tz: str = "UTC"
) -> dict[str, Any]:
    """Candles (with volume and the watched indicators), the rule's levels, a marker at each would-be fire."""
    spec = ChartSpec(rule.symbol, rule.interval, watched_indicators(rule), tz, PREVIEW_HEIGHT)
    fig = candles_figure_spec(df, spec)
    trace = marker_trace(df, marks, tz, name="Would fire")
    if trace is not None:
        fig["data"].append(trace)
    layout = fig["layout"]
    layout["uirevision"] = f"preview:{spec.uirevision}"
    layout["margin"] = {"l": 8, "r": 78, "t": 24, "b": 36}
    yref = "y3" if rule.watch == "rsi14" else "y"  # an RSI level sits on the RSI panel
    levels = rule_levels(rule)
    layout.setdefault("shapes", [])
    layout.setdefault("annotations", [])
    if len(levels) == 2:
        layout["shapes"].append(
            {"type": "rect", "xref": "paper", "x0": 0, "x1": 1, "yref": yref, "y0": levels[0], "y1": levels[1],
             "fillcolor": "rgba(240,185,11,0.07)", "line": {"width": 0}, "layer": "below"}
        )  # fmt: skip
    for level in levels:
        layout["shapes"].append(
            {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": yref, "y0": level, "y1": level,
             "line": {"color": ALERT, "width": 1.2, "dash": "dash"}}
        )  # fmt: skip
        layout["annotations"].append(
            {"xref": "paper", "x": 0.0, "xanchor": "left", "yref": yref, "y": level, "yanchor": "bottom",
             "text": f"alert {fmt_level(level)}", "showarrow": False, "name": "alert_level",
             "font": {"color": ALERT, "size": 11, "family": FONT}}
        )  # fmt: skip
    layout["meta"] = {**layout.get("meta", {}), "fires": len(marks)}
    return fig


def preview_summary(fires: int, candles: int, interval: str) -> str:
    """``Would have fired <b>3 times</b> over the last 240 candles (4 h of 1m).`` (HTML)"""
    if candles == 0:
        return "No closed candles of this stream are cached yet: nothing to try the rule on."
    times = "never" if fires == 0 else ("once" if fires == 1 else f"{fires:,} times")
    span = fmt_duration(candles * INTERVALS_MS.get(interval, 60_000) / 1000)
    return f"Would have fired <b>{times}</b> over the last {candles:,} candles ({span} of {interval})."
