"""The overview tiles' sparkline: a small inline SVG, no Plotly."""

from __future__ import annotations

import math
from collections.abc import Sequence

from services.charts.trend import Trend, change_pct, trend, trend_color


def sparkline_svg(
    values: Sequence[float], *, width: int = 220, height: int = 46, direction: Trend | None = None
) -> str:
    """A small inline SVG line with a soft fill, coloured by ``direction`` (else by the move over the series)."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if direction is None:
        direction = trend(change_pct(vals[0], vals[-1])) if len(vals) > 1 else "flat"
    color = trend_color(direction)
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
    gid = f"g{direction}"
    return (
        f'<svg viewBox="0 0 {width} {height}" width="100%" height="{height}" preserveAspectRatio="none">'
        f'<defs><linearGradient id="{gid}" x1="0" y1="0" x2="0" y2="1">'
        f'<stop offset="0%" stop-color="{color}" stop-opacity="0.28"/>'
        f'<stop offset="100%" stop-color="{color}" stop-opacity="0"/></linearGradient></defs>'
        f'<polygon points="{area}" fill="url(#{gid})"/>'
        f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="1.6" '
        f'stroke-linejoin="round" stroke-linecap="round"/></svg>'
    )
