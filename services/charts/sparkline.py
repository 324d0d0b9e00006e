"""The overview tiles' sparkline: a small inline SVG, no Plotly."""

from __future__ import annotations

import math
from collections.abc import Sequence

from services.charts.trend import Trend, change_pct, trend, trend_color

ANCHOR = 10_000  # x counts candles from a multiple of this (one whole resend when the count passes one)


def sparkline_svg(
    values: Sequence[float],
    *,
    start: int = 0,
    width: int = 220,
    height: int = 46,
    direction: Trend | None = None,
) -> str:
    """A small inline SVG line with a soft fill, coloured by ``direction`` (else by the move over the series).

    Drawn in the candles' own coordinates (x: the candle's number, ``start`` for the first value; y: the price
    below a round base, downwards) with the window chosen by the ``viewBox``, so a point keeps its text from one
    update to the next and the overview's patches carry only the points that came, went or moved
    (:mod:`services.charts.splice`).
    """
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
    span = hi - lo or abs(hi) * 1e-6 or 1.0
    pad = span * 3.0 / (height - 6.0)  # 3 px above and below the line, as before
    x0 = start - start // ANCHOR * ANCHOR
    xs = range(x0, x0 + len(vals))
    base = float(f"{lo:.2g}")  # moves only when the price crosses a round number (then every point is resent)
    line = " ".join(f"{x},{_num(base - v)}" for x, v in zip(xs, vals, strict=True))
    bottom = _num(base - (lo - pad))
    area = f"{xs[0]},{bottom} {line} {xs[-1]},{bottom}"
    box = f"{xs[0]} {_num(base - (hi + pad))} {len(vals) - 1} {_num((hi - lo) + 2 * pad)}"
    gid = f"g{direction}"
    return (
        f'<svg viewBox="{box}" width="100%" height="{height}" preserveAspectRatio="none">'
        f'<defs><linearGradient id="{gid}" x1="0" y1="0" x2="0" y2="1">'
        f'<stop offset="0%" stop-color="{color}" stop-opacity="0.28"/>'
        f'<stop offset="100%" stop-color="{color}" stop-opacity="0"/></linearGradient></defs>'
        f'<polygon points="{area}" fill="url(#{gid})"/>'
        f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="2.2" '
        f'stroke-linejoin="round" stroke-linecap="round" vector-effect="non-scaling-stroke"/></svg>'
    )


def _num(v: float) -> str:
    """A coordinate in 6 significant digits (finer than a pixel of the sparkline: the window is within a round
    number's distance of its base)."""
    return f"{v:.6g}"
