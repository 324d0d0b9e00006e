"""The candles page's figure: candlesticks, volume beneath, indicator overlays, alert markers, last price line.

``candles_figure_spec`` builds the figure as a plain Plotly JSON dict with
numeric arrays already in Plotly's compact typed-array form (``bdata``), so a
figure shared by many sessions is built and encoded once per update;
``candles_figure`` wraps the same spec in a validated ``go.Figure``. Pure:
candle columns in, figure out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from backend import indicators as ind
from backend.config import INTERVALS_MS
from services.charts.arrays import typed, wall_clock_ms
from services.charts.fmt import fmt_price, pair_label, plotly_price_format
from services.charts.frame import direction
from services.charts.layout import chart_layout
from services.charts.marks import AlertMark, marker_trace
from services.charts.palette import DOWN, DOWN_VOLUME, FLAT, FONT, GRID, SPIKE, UP, UP_VOLUME
from services.charts.trend import change_pct, trend, trend_color


@dataclass(frozen=True)
class ChartSpec:
    """What a candles chart shows; equal specs over equal data give equal figures."""

    symbol: str
    interval: str
    indicators: tuple[str, ...] = ()
    tz: str = "UTC"
    height: int = 560
    extra: tuple[Any, ...] = field(default=())  # caller's cache discriminator (e.g. older history loaded)
    markers: tuple[AlertMark, ...] = ()  # alerts fired on this stream, drawn above their candles
    style: str = "candles"  # "candles", or "line": an area under the close

    @property
    def uirevision(self) -> str:
        """Stable per symbol, interval and zone: the user's zoom and pan survive every update."""
        return f"{self.symbol}:{self.interval}:{self.tz}"


def _hover_time_format(interval: str) -> str:
    return "%Y-%m-%d %H:%M:%S" if INTERVALS_MS.get(interval, 60_000) < 60_000 else "%Y-%m-%d %H:%M"


def _panel_domains(has_rsi: bool) -> dict[str, tuple[float, float]]:
    if has_rsi:
        return {"price": (0.42, 1.0), "volume": (0.23, 0.39), "rsi": (0.0, 0.19)}
    return {"price": (0.27, 1.0), "volume": (0.0, 0.24)}


def candles_figure_spec(df: pd.DataFrame, spec: ChartSpec) -> dict[str, Any]:
    """The candles page's figure: candlesticks, volume beneath, overlays, last price line."""
    keys = [k for k in spec.indicators if k in ind.INDICATORS]
    has_rsi = any(ind.INDICATORS[k].panel == "rsi" for k in keys)
    domains = _panel_domains(has_rsi)
    panels = list(domains)
    axis = {name: ("" if i == 0 else str(i + 1)) for i, name in enumerate(panels)}  # price → x/y, volume → x2/y2
    x = typed(wall_clock_ms(df["open_time"], spec.tz))
    up = direction(df)
    last_close = float(df["close"].iloc[-1]) if len(df) else math.nan
    price_fmt = plotly_price_format(last_close if math.isfinite(last_close) else 1.0)
    price = _close_area(df, x, spec, price_fmt) if spec.style == "line" else [_candlesticks(df, x, spec)]
    data: list[dict[str, Any]] = [
        *price,
        {
            "type": "bar",
            "name": "Volume",
            "x": x,
            "y": typed(df["volume"]),
            "marker": {
                "color": typed(up),
                "colorscale": [[0.0, DOWN_VOLUME], [1.0, UP_VOLUME]],
                "cmin": 0,
                "cmax": 1,
                "showscale": False,
                "line": {"width": 0},
            },
            "showlegend": False,
            "hovertemplate": "Vol %{y:,.4~f}<extra></extra>",
            "xaxis": "x" + axis["volume"],
            "yaxis": "y" + axis["volume"],
        },
    ]
    for key in keys:
        data.extend(_indicator_traces(key, df, x, axis, price_fmt))
    marks = marker_trace(df, spec.markers, spec.tz)
    if marks is not None:
        data.append(marks)
    max_volume = float(df["volume"].max()) if len(df) else 0.0
    layout = _layout(spec, panels, domains, axis, price_fmt, volume_fmt="~s" if max_volume >= 1000 else ",.3~f")
    if len(df):
        # the last-price mark takes the colour of what it sits on: the last candle, or the line's move
        mark = price[-1]["line"]["color"] if spec.style == "line" else (UP if up[-1] else DOWN)
        layout["shapes"], layout["annotations"] = _last_price_marks(last_close, mark, has_rsi, axis)
    layout["meta"] = {
        "symbol": spec.symbol,
        "interval": spec.interval,
        "candles": len(df),
        "last_open_time": int(df["open_time"].iloc[-1]) if len(df) else None,
        "last_close": last_close if math.isfinite(last_close) else None,
        "event_time": int(df["event_time"].max()) if len(df) and "event_time" in df else None,
        "seq": int(df["seq"].iloc[-1]) if len(df) and "seq" in df else None,
    }
    return {"data": data, "layout": layout}


def _candlesticks(df: pd.DataFrame, x: dict[str, str], spec: ChartSpec) -> dict[str, Any]:
    return {
        "type": "candlestick",
        "name": pair_label(spec.symbol),
        "x": x,
        "open": typed(df["open"]),
        "high": typed(df["high"]),
        "low": typed(df["low"]),
        "close": typed(df["close"]),
        "increasing": {"line": {"color": UP, "width": 1}, "fillcolor": UP},
        "decreasing": {"line": {"color": DOWN, "width": 1}, "fillcolor": DOWN},
        "whiskerwidth": 0,
        "showlegend": False,
        "xaxis": "x",
        "yaxis": "y",
    }


def _close_area(df: pd.DataFrame, x: dict[str, str], spec: ChartSpec, price_fmt: str) -> list[dict[str, Any]]:
    """The close as a line over a soft area down to the lowest close shown, coloured by the move over the range.

    The area fills down to an invisible floor line (not to zero, which would flatten the price axis).
    """
    closes = df["close"].to_numpy(dtype=float)
    color = trend_color(trend(change_pct(closes[0], closes[-1]))) if len(closes) else FLAT
    floor = np.full(len(closes), closes.min() if len(closes) else 0.0)
    common = {"type": "scatter", "mode": "lines", "x": x, "xaxis": "x", "yaxis": "y", "showlegend": False}
    return [
        {**common, "name": "floor", "y": typed(floor), "line": {"width": 0}, "hoverinfo": "skip"},
        {
            **common,
            "name": pair_label(spec.symbol),
            "y": typed(closes),
            "line": {"color": color, "width": 1.8},
            "fill": "tonexty",
            "fillcolor": _soft(color),
            "hovertemplate": f"Close %{{y:{price_fmt}}}<extra></extra>",
        },
    ]


def _soft(color: str) -> str:
    """A hex colour as a light fill."""
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},0.16)"


def candles_figure(df: pd.DataFrame, spec: ChartSpec) -> go.Figure:
    """:func:`candles_figure_spec` as a validated Plotly figure."""
    return go.Figure(candles_figure_spec(df, spec))


def _indicator_traces(
    key: str, df: pd.DataFrame, x: dict[str, str], axis: dict[str, str], price_fmt: str
) -> list[dict[str, Any]]:
    spec = ind.INDICATORS[key]
    lines = ind.compute(key, df)
    panel = axis[spec.panel]
    base = {"type": "scatter", "mode": "lines", "x": x, "xaxis": "x" + panel, "yaxis": "y" + panel}
    if key.startswith("bb"):
        band = {"color": spec.color, "width": 1}
        return [
            {**base, "name": f"{spec.label} upper", "y": typed(lines["upper"]), "line": band, "legendgroup": key,
             "showlegend": False, "hovertemplate": f"BB upper %{{y:{price_fmt}}}<extra></extra>"},
            {**base, "name": spec.label, "y": typed(lines["lower"]), "line": band, "legendgroup": key,
             "fill": "tonexty", "fillcolor": "rgba(126,87,194,0.08)",
             "hovertemplate": f"BB lower %{{y:{price_fmt}}}<extra></extra>"},
            {**base, "name": f"{spec.label} basis", "y": typed(lines["mid"]), "legendgroup": key, "showlegend": False,
             "line": {"color": spec.color, "width": 1, "dash": "dot"},
             "hovertemplate": f"BB basis %{{y:{price_fmt}}}<extra></extra>"},
        ]  # fmt: skip
    fmt = ".1f" if spec.panel == "rsi" else price_fmt
    return [
        {
            **base,
            "name": spec.label,
            "y": typed(lines.iloc[:, 0]),
            "line": {"color": spec.color, "width": 1.4},
            "hovertemplate": f"{spec.label} %{{y:{fmt}}}<extra></extra>",
            "showlegend": True,  # the RSI panel's line too: every drawn indicator is named in the legend
        }
    ]


def _layout(
    spec: ChartSpec,
    panels: list[str],
    domains: dict[str, tuple[float, float]],
    axis: dict[str, str],
    price_fmt: str,
    volume_fmt: str = "~s",
) -> dict[str, Any]:
    hover_fmt = _hover_time_format(spec.interval)
    layout = chart_layout(spec.uirevision, spec.height, right_margin=78) | {"bargap": 0.15}
    last = panels[-1]
    for name in panels:
        suffix = axis[name]
        x_axis: dict[str, Any] = {
            "type": "date",
            "domain": [0.0, 1.0],
            "anchor": "y" + suffix,
            "rangeslider": {"visible": False},
            "showgrid": True,
            "gridcolor": GRID,
            "zeroline": False,
            "showticklabels": name == last,
            "hoverformat": hover_fmt,
            "showspikes": True,
            "spikemode": "across",
            "spikesnap": "cursor",
            "spikedash": "dot",
            "spikethickness": 1,
            "spikecolor": SPIKE,
            "showline": False,
        }
        if suffix:
            x_axis["matches"] = "x"
        y_axis: dict[str, Any] = {
            "domain": list(domains[name]),
            "anchor": "x" + suffix,
            "side": "right",
            "showgrid": True,
            "gridcolor": GRID,
            "zeroline": False,
            "fixedrange": False,
            "showline": False,
            "ticks": "",
        }
        if name == "price":
            y_axis |= {"tickformat": price_fmt, "hoverformat": price_fmt, "showspikes": True, "spikemode": "across",
                       "spikesnap": "cursor", "spikedash": "dot", "spikethickness": 1, "spikecolor": SPIKE}  # fmt: skip
        elif name == "volume":
            y_axis |= {"tickformat": volume_fmt, "rangemode": "tozero", "nticks": 3}
        else:
            y_axis |= {"range": [0, 100], "tickvals": [30, 50, 70], "autorange": False}
        layout["xaxis" + suffix] = x_axis
        layout["yaxis" + suffix] = y_axis
    return layout


def _last_price_marks(
    price: float, color: str, has_rsi: bool, axis: dict[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    shapes: list[dict[str, Any]] = [
        {
            "type": "line",
            "xref": "paper",
            "x0": 0,
            "x1": 1,
            "yref": "y",
            "y0": price,
            "y1": price,
            "line": {"color": color, "width": 1, "dash": "dash"},
            "layer": "below",
        }
    ]
    annotations = [
        {
            "xref": "paper",
            "x": 1.0,
            "xanchor": "left",
            "yref": "y",
            "y": price,
            "text": f"<b>{fmt_price(price)}</b>",
            "showarrow": False,
            "font": {"color": "#ffffff", "size": 11, "family": FONT},
            "bgcolor": color,
            "borderpad": 3,
            "name": "last_price",
        }
    ]
    if has_rsi:
        yref = "y" + axis["rsi"]
        for level in (30, 70):
            shapes.append(
                {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": yref, "y0": level, "y1": level,
                 "line": {"color": SPIKE, "width": 1, "dash": "dot"}, "layer": "below"}
            )  # fmt: skip
    return shapes, annotations
