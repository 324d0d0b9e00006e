"""The system page's small time series: rates (trades/s, candle updates/s) over the last minutes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from services.charts.arrays import typed
from services.charts.palette import DOWN, FONT, GRID, UP

GAP_MS = 5_000  # samples come every second while the page is open: a longer silence is a gap, not a trend


def break_at_gaps(
    t_ms: Sequence[float], series: dict[str, Sequence[float]], gap_ms: float = GAP_MS
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Times and values with a NaN point inside every gap longer than ``gap_ms`` (Plotly breaks a line at NaN)."""
    t = np.asarray(t_ms, dtype=np.float64)
    cuts = np.flatnonzero(np.diff(t) > gap_ms) + 1  # index of the first sample after each gap
    mids = (t[cuts - 1] + t[cuts]) / 2
    out_t = np.insert(t, cuts, mids)
    out = {name: np.insert(np.asarray(v, dtype=np.float64), cuts, np.nan) for name, v in series.items()}
    return out_t, out


def rates_figure_spec(
    t_ms: Sequence[float], series: dict[str, Sequence[float]], *, height: int = 220, colors: Sequence[str] = ()
) -> dict[str, Any]:
    """Lines of figures over time (trades/s, updates/s) for the system page, broken where no samples were taken."""
    palette = list(colors) or ["#f0b90b", "#29b6f6", UP, DOWN, "#ab47bc"]
    t, lines = break_at_gaps(t_ms, series)
    x = typed(t)
    data = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": name,
            "x": x,
            "y": typed(values),
            "connectgaps": False,
            "line": {"color": palette[i % len(palette)], "width": 1.6},
            "hovertemplate": f"{name} %{{y:,.1f}}<extra></extra>",
        }
        for i, (name, values) in enumerate(lines.items())
    ]
    layout = {
        "height": height,
        "margin": {"l": 8, "r": 48, "t": 8, "b": 24},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"family": FONT, "size": 11},
        "hovermode": "x unified",
        "showlegend": True,
        "legend": {"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom", "bgcolor": "rgba(0,0,0,0)"},
        "xaxis": {
            "type": "date",
            "showgrid": False,
            "hoverformat": "%H:%M:%S",
            # whole seconds, but never one label twice while the history is only a few seconds long
            "tickformatstops": [
                {"dtickrange": [None, 1000], "value": "%H:%M:%S.%L"},
                {"dtickrange": [1000, None], "value": "%H:%M:%S"},
            ],
        },
        "yaxis": {"side": "right", "gridcolor": GRID, "zeroline": False, "rangemode": "tozero", "tickformat": "~s"},
        "uirevision": "rates",
    }
    return {"data": data, "layout": layout}
