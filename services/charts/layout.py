"""The layout every main chart shares (candles, line, comparison): transparent, one font, unified hover, pan, the
legend above the plot."""

from __future__ import annotations

from typing import Any

from services.charts.palette import FONT


def chart_layout(uirevision: str, height: int, right_margin: int) -> dict[str, Any]:
    """The shared part of a main chart's layout; ``uirevision`` keeps the user's zoom across updates."""
    return {
        "uirevision": uirevision,
        "height": height,
        "margin": {"l": 8, "r": right_margin, "t": 28, "b": 44},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"family": FONT, "size": 12},
        "hovermode": "x unified",
        "hoverlabel": {"font": {"family": FONT, "size": 12}},
        "dragmode": "pan",
        "showlegend": True,
        "legend": {"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom", "bgcolor": "rgba(0,0,0,0)"},
    }
