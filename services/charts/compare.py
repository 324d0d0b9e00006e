"""The comparison view: several symbols' closes as % change from the start of the chosen range, on one axis.

Answers "which moved most over this range?". Every line starts at 0 % at the
first open time all symbols share, so they are compared over the same span;
the legend lists them by their change, largest first. Pure: candle frames in,
figure out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from services.charts.arrays import typed, wall_clock_ms
from services.charts.fmt import fmt_pct, pair_label
from services.charts.layout import chart_layout
from services.charts.palette import FLAT, GRID, SPIKE

LINE_COLORS = ("#f0b90b", "#29b6f6", "#ab47bc", "#66bb6a", "#ff7043", "#ec407a", "#8d6e63", "#78909c")


@dataclass(frozen=True)
class CompareSpec:
    """What a comparison chart shows; equal specs over equal data give equal figures."""

    symbols: tuple[str, ...]
    interval: str
    tz: str = "UTC"
    height: int = 560

    @property
    def uirevision(self) -> str:
        return f"compare:{self.interval}:{self.tz}"


def percent_change(df: pd.DataFrame, since: int) -> pd.DataFrame:
    """``open_time`` and the close as % change from the close of the candle opening at ``since`` (the base)."""
    rows = df[df["open_time"] >= since]
    if rows.empty:
        return pd.DataFrame({"open_time": pd.Series(dtype="int64"), "pct": pd.Series(dtype="float64")})
    base = float(rows["close"].iloc[0])
    pct = (rows["close"].to_numpy(dtype=float) / base - 1.0) * 100.0 if base else np.full(len(rows), np.nan)
    return pd.DataFrame({"open_time": rows["open_time"].to_numpy(), "pct": pct})


def common_start(frames: Mapping[str, pd.DataFrame]) -> int | None:
    """The first open time every non-empty frame covers (so every line is measured over the same span)."""
    firsts = [int(df["open_time"].iloc[0]) for df in frames.values() if len(df)]
    return max(firsts) if firsts else None


def compare_figure_spec(frames: Mapping[str, pd.DataFrame], spec: CompareSpec) -> dict[str, Any]:
    """One line per symbol, % change since the common start; legend sorted by the latest change."""
    since = common_start(frames)
    changes = {s: percent_change(frames[s], since) for s in spec.symbols if s in frames and since is not None}
    last = {s: float(c["pct"].iloc[-1]) if len(c) else float("nan") for s, c in changes.items()}
    order = sorted(changes, key=lambda s: (-np.nan_to_num(last[s], nan=-np.inf), s))
    colors = {s: LINE_COLORS[i % len(LINE_COLORS)] for i, s in enumerate(spec.symbols)}
    data = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": f"{pair_label(s)} {fmt_pct(last[s])}",
            "x": typed(wall_clock_ms(changes[s]["open_time"], spec.tz)),
            "y": typed(changes[s]["pct"]),
            "line": {"color": colors[s], "width": 1.8},
            "hovertemplate": f"{pair_label(s)} %{{y:+.2f}}%<extra></extra>",
            "legendrank": rank,
        }
        for rank, s in enumerate(order, start=1)
    ]
    layout = chart_layout(spec.uirevision, spec.height, right_margin=60) | {
        "xaxis": {"type": "date", "showgrid": True, "gridcolor": GRID, "zeroline": False, "showspikes": True,
                  "spikemode": "across", "spikedash": "dot", "spikethickness": 1, "spikecolor": SPIKE},
        "yaxis": {"side": "right", "gridcolor": GRID, "ticksuffix": "%", "tickformat": "+.2f", "hoverformat": "+.2f",
                  "zeroline": True, "zerolinecolor": FLAT, "zerolinewidth": 1},
        "meta": {
            "symbols": list(order),
            "since": since,
            "change_pct": {s: (None if np.isnan(v) else v) for s, v in last.items()},
            "event_time": max((int(df["event_time"].max()) for df in frames.values() if len(df)), default=None),
        },
    }  # fmt: skip
    return {"data": data, "layout": layout}
