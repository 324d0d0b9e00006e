"""Figure builders: candle columns in, Plotly figure out (pure functions, no Streamlit).

``candles_figure_spec`` builds the figure as a plain Plotly JSON dict with
numeric arrays already in Plotly's compact typed-array form (``bdata``), so a
figure shared by many sessions is built and encoded once per update;
``candles_figure`` wraps the same spec in a validated ``go.Figure``.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from backend.config import INTERVALS_MS
from backend.models import Candle
from services import indicators as ind
from services.fmt import fmt_price, pair_label, plotly_price_format

UP = "#26a69a"
DOWN = "#ef5350"
UP_VOLUME = "rgba(38,166,154,0.55)"
DOWN_VOLUME = "rgba(239,83,80,0.55)"
GRID = "rgba(128,128,128,0.16)"
SPIKE = "rgba(128,128,128,0.7)"
FONT = "Inter, 'Source Sans Pro', system-ui, sans-serif"
COLUMNS = (
    "open_time",
    "close_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trades",
    "closed",
    "seq",
    "event_time",
    "emitted_at",
)


@dataclass(frozen=True)
class ChartSpec:
    """What a candles chart shows; equal specs over equal data give equal figures."""

    symbol: str
    interval: str
    indicators: tuple[str, ...] = ()
    tz: str = "UTC"
    height: int = 560
    extra: tuple[Any, ...] = field(default=())  # caller's cache discriminator (e.g. older history loaded)

    @property
    def uirevision(self) -> str:
        """Stable per symbol, interval and zone: the user's zoom and pan survive every update."""
        return f"{self.symbol}:{self.interval}:{self.tz}"


def candles_frame(candles: Sequence[Candle]) -> pd.DataFrame:
    """Candles (oldest first) → a column frame with :data:`COLUMNS`."""
    if not candles:
        return pd.DataFrame({name: pd.Series(dtype=_dtype(name)) for name in COLUMNS})
    rows = [tuple(getattr(c, name) for name in COLUMNS) for c in candles]
    df = pd.DataFrame.from_records(rows, columns=list(COLUMNS))
    return df.astype({name: _dtype(name) for name in COLUMNS})


def _dtype(name: str) -> str:
    if name == "closed":
        return "bool"
    if name in {"open_time", "close_time", "trades", "seq", "event_time", "emitted_at"}:
        return "int64"
    return "float64"


def wall_clock_ms(open_time_ms: np.ndarray | pd.Series, tz: str) -> np.ndarray:
    """Epoch ms → the same instants as wall-clock ms in ``tz`` (Plotly draws numbers as UTC)."""
    ms = np.asarray(open_time_ms, dtype=np.int64)
    if tz in {"UTC", "Etc/UTC", ""} or len(ms) == 0:
        return ms.astype(np.float64)
    stamps = pd.DatetimeIndex(pd.to_datetime(ms, unit="ms", utc=True)).tz_convert(tz).tz_localize(None)
    return (stamps.asi8 // 1_000_000 if stamps.unit == "ns" else _as_ms(stamps)).astype(np.float64)


def _as_ms(stamps: pd.DatetimeIndex) -> np.ndarray:
    return stamps.as_unit("ms").asi8


def typed(values: np.ndarray | pd.Series) -> dict[str, str]:
    """A numeric array in Plotly's typed-array form: ``{"dtype": "f8", "bdata": base64}``."""
    arr = np.asarray(values)
    if arr.dtype == np.bool_ or arr.dtype == np.uint8:
        arr, code = arr.astype(np.uint8), "u1"
    else:
        arr, code = arr.astype(np.float64), "f8"
    return {"dtype": code, "bdata": base64.b64encode(np.ascontiguousarray(arr).tobytes()).decode("ascii")}


def direction(df: pd.DataFrame) -> np.ndarray:
    """True where a candle closed at or above its open (drawn green)."""
    return (df["close"].to_numpy() >= df["open"].to_numpy()).astype(bool)


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
    data: list[dict[str, Any]] = [
        {
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
        },
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
    last_close = float(df["close"].iloc[-1]) if len(df) else math.nan
    price_fmt = plotly_price_format(last_close if math.isfinite(last_close) else 1.0)
    for key in keys:
        data.extend(_indicator_traces(key, df, x, axis, price_fmt))
    max_volume = float(df["volume"].max()) if len(df) else 0.0
    layout = _layout(spec, panels, domains, axis, price_fmt, volume_fmt="~s" if max_volume >= 1000 else ",.3~f")
    if len(df):
        layout["shapes"], layout["annotations"] = _last_price_marks(last_close, bool(up[-1]), has_rsi, axis)
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
            "showlegend": spec.panel == "price",
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
    layout: dict[str, Any] = {
        "uirevision": spec.uirevision,
        "height": spec.height,
        "margin": {"l": 8, "r": 78, "t": 28, "b": 44},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"family": FONT, "size": 12},
        "hovermode": "x unified",
        "hoverlabel": {"font": {"family": FONT, "size": 12}},
        "dragmode": "pan",
        "bargap": 0.15,
        "showlegend": True,
        "legend": {"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom", "bgcolor": "rgba(0,0,0,0)"},
    }
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
    price: float, up: bool, has_rsi: bool, axis: dict[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    color = UP if up else DOWN
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


# ---------------------------------------------------------------- sparklines


def sparkline_svg(values: Sequence[float], *, width: int = 220, height: int = 46, up: bool | None = None) -> str:
    """A small inline SVG line with a soft fill, coloured by the move over the series."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if up is None:
        up = len(vals) < 2 or vals[-1] >= vals[0]
    color = UP if up else DOWN
    if len(vals) < 2:
        mid = height / 2
        return (
            f'<svg viewBox="0 0 {width} {height}" width="100%" height="{height}" preserveAspectRatio="none">'
            f'<line x1="0" y1="{mid}" x2="{width}" y2="{mid}" stroke="{color}" stroke-width="1.5" '
            f'stroke-dasharray="3 3" opacity="0.6"/></svg>'
        )
    lo, hi = min(vals), max(vals)
    span = hi - lo or 1.0
    pad = 3.0
    step = width / (len(vals) - 1)
    pts = [(i * step, pad + (height - 2 * pad) * (1 - (v - lo) / span)) for i, v in enumerate(vals)]
    line = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
    area = f"0,{height} {line} {width},{height}"
    gid = f"g{'u' if up else 'd'}"
    return (
        f'<svg viewBox="0 0 {width} {height}" width="100%" height="{height}" preserveAspectRatio="none">'
        f'<defs><linearGradient id="{gid}" x1="0" y1="0" x2="0" y2="1">'
        f'<stop offset="0%" stop-color="{color}" stop-opacity="0.28"/>'
        f'<stop offset="100%" stop-color="{color}" stop-opacity="0"/></linearGradient></defs>'
        f'<polygon points="{area}" fill="url(#{gid})"/>'
        f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="1.6" '
        f'stroke-linejoin="round" stroke-linecap="round"/></svg>'
    )


# ---------------------------------------------------------------- small time series (system page)


def rates_figure_spec(
    t_ms: Sequence[float], series: dict[str, Sequence[float]], *, height: int = 220, colors: Sequence[str] = ()
) -> dict[str, Any]:
    """Lines of figures over time (trades/s, updates/s) for the system page."""
    palette = list(colors) or ["#f0b90b", "#29b6f6", UP, DOWN, "#ab47bc"]
    x = typed(np.asarray(t_ms, dtype=np.float64))
    data = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": name,
            "x": x,
            "y": typed(np.asarray(values, dtype=np.float64)),
            "line": {"color": palette[i % len(palette)], "width": 1.6},
            "hovertemplate": f"{name} %{{y:,.1f}}<extra></extra>",
        }
        for i, (name, values) in enumerate(series.items())
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
