"""Alert markers on a candles figure: a small triangle above each candle an alert fired on.

Shared by the candles page's chart and the alerts page's preview, so a fired alert and a would-have-fired
one look the same. Pure: candle columns and marks in, a Plotly trace out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import numpy as np
import pandas as pd

from services.charts.arrays import typed, wall_clock_ms
from services.charts.palette import ALERT, ALERT_EDGE

MAX_LINES = 4  # messages listed in one marker's hover; the rest are counted
LIFT = 0.035  # how far above the candle's high a marker sits, as a share of the shown price range


@dataclass(frozen=True)
class AlertMark:
    """An alert that fired (or would have) on the candle opening at ``open_time``."""

    open_time: int
    message: str


def marks_of(fires: Iterable[Any]) -> tuple[AlertMark, ...]:
    """Marks from anything with ``open_time`` and ``message`` (alert records, preview fires), oldest first.

    Alerts without a candle (``feed_silent``) have no place on the chart and are left out.
    """
    marks = [AlertMark(int(f.open_time), str(f.message)) for f in fires if f.open_time is not None]
    return tuple(sorted(marks, key=lambda m: m.open_time))


def marker_trace(
    df: pd.DataFrame, marks: Sequence[AlertMark], tz: str, *, name: str = "Alerts"
) -> dict[str, Any] | None:
    """One scatter trace with a marker per candle of ``df`` that has marks (None when none is shown).

    Several alerts on one candle share its marker; the hover lists their messages.
    """
    if not marks or df.empty:
        return None
    by_time: dict[int, list[str]] = {}
    for m in marks:
        by_time.setdefault(m.open_time, []).append(m.message)
    open_times = df["open_time"].to_numpy(dtype=np.int64)
    rows = np.flatnonzero(np.isin(open_times, np.fromiter(by_time, dtype=np.int64, count=len(by_time))))
    if len(rows) == 0:
        return None
    highs = df["high"].to_numpy(dtype=float)
    span = float(np.nanmax(highs) - np.nanmin(df["low"].to_numpy(dtype=float))) or abs(float(highs[-1])) * 0.01
    shown = open_times[rows]
    return {
        "type": "scatter",
        "mode": "markers",
        "name": name,
        "x": typed(wall_clock_ms(shown, tz)),
        "y": typed(highs[rows] + span * LIFT),
        "hovertext": [_hover(by_time[int(t)]) for t in shown],
        "hovertemplate": "%{hovertext}<extra></extra>",
        "marker": {"symbol": "triangle-down", "size": 11, "color": ALERT, "line": {"color": ALERT_EDGE, "width": 1}},
        "showlegend": True,
        "xaxis": "x",
        "yaxis": "y",
    }


def _hover(messages: list[str]) -> str:
    lines = [f"🔔 {escape(m)}" for m in messages[:MAX_LINES]]
    if len(messages) > MAX_LINES:
        lines.append(f"… and {len(messages) - MAX_LINES} more")
    return "<br>".join(lines)
