"""The overview's tile of one symbol: its figures from the books, then its HTML (pure functions).

Price, change over 24 h (or since the first candle), the 24 h range and
volume, and a sparkline; built from the 1s, 1m and 1h books.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from html import escape

from backend.config import INTERVALS_MS
from backend.models import Candle, now_ms
from services.charts.fmt import fmt_compact, fmt_pct, fmt_price, split_symbol
from services.charts.sparkline import sparkline_svg
from services.charts.trend import RULE, Trend, change_pct, trend

SPARK_INTERVALS: tuple[str, ...] = ("1m", "1s")  # sparkline source: 1m candles, or 1s ones on a young feed
DAY_INTERVAL = "1h"
OVERVIEW_INTERVALS: tuple[str, ...] = ("1s", "1m", "1h")
SPARK_MIN_POINTS = 12
SPARK_POINTS = {"1m": 120, "1s": 300}


@dataclass(frozen=True)
class TileData:
    """Figures of one symbol on the overview (pure data, built from the books)."""

    symbol: str
    price: float | None
    change_pct: float | None
    change_label: str
    high: float | None
    low: float | None
    quote_volume: float | None
    spark: tuple[float, ...]
    spark_label: str
    event_time: int | None
    spark_start: int = 0  # the first sparkline point's candle number (open time / interval)

    @property
    def trend(self) -> Trend:
        """The tile's one colour rule: the direction of the change shown in its pill (price and sparkline follow)."""
        return trend(self.change_pct)


def tile_data(symbol: str, books: dict[str, list[Candle]], now: int | None = None) -> TileData:
    """Price, change over 24 h (or since the first candle), 24 h range and volume, sparkline points."""
    now = now_ms() if now is None else now
    freshest = [rows[-1] for rows in books.values() if rows]
    last = max(freshest, key=lambda c: (c.event_time, c.seq), default=None)
    day = [c for c in books.get(DAY_INTERVAL, []) if c.open_time >= now - 86_400_000 - INTERVALS_MS[DAY_INTERVAL]]
    day = [c for c in day if c.close_time >= now - 86_400_000] or day
    price = last.close if last else None
    change = label = None
    high = low = qv = None
    if day and price is not None:
        first = day[0]
        change = change_pct(first.open, price)
        label = "24h" if first.open_time <= now - 86_400_000 + INTERVALS_MS[DAY_INTERVAL] else "since " + _hhmm(first)
        high = max(c.high for c in day)
        low = min(c.low for c in day)
        qv = sum(c.quote_volume for c in day)
    spark: tuple[float, ...] = ()
    spark_start = 0
    spark_label = ""  # the span the sparkline covers
    for interval in SPARK_INTERVALS:
        rows = books.get(interval, [])
        if len(rows) >= SPARK_MIN_POINTS or interval == SPARK_INTERVALS[-1]:
            pts = rows[-SPARK_POINTS[interval] :]
            spark = tuple(c.close for c in pts)
            spark_start = pts[0].open_time // INTERVALS_MS[interval] if pts else 0
            span_ms = INTERVALS_MS[interval] * len(pts)
            spark_label = f"last {_span(span_ms)}" if pts else ""
            break
    return TileData(
        symbol,
        price,
        change,
        label or "24h",
        high,
        low,
        qv,
        spark,
        spark_label,
        last.event_time if last else None,
        spark_start,
    )


def _hhmm(c: Candle) -> str:
    return time.strftime("%H:%M UTC", time.gmtime(c.open_time / 1000))


def _span(ms: int) -> str:
    s = ms // 1000
    if s < 3600:
        return f"{max(1, s // 60)}m" if s >= 60 else f"{s}s"
    return f"{s // 3600}h"


def tile_tooltip(t: TileData) -> str:
    """The tile's tooltip: what its colours mean and what each figure covers."""
    spark = f"; the line shows the {t.spark_label}" if t.spark_label else ""
    return f"Change {t.change_label} (price against the open {t.change_label}{spark}). {RULE}"


def tile_html(t: TileData, href: str | None = None) -> str:
    """The overview tile: pair, price, change pill, sparkline, range and volume; one colour rule for all three."""
    base, quote = split_symbol(t.symbol)
    direction = t.trend
    spark = sparkline_svg(t.spark, start=t.spark_start, direction=direction)
    quote_html = f'<span class="cs-quote">/{escape(quote)}</span>' if quote else ""
    tag = "a" if href else "span"
    attrs = (f' href="{escape(href)}" target="_self"' if href else "") + f' title="{escape(tile_tooltip(t))}"'
    attrs += f' data-trend="{direction}"'
    # spans only (styled as blocks): Streamlit's markdown splits an <a> wrapped around <div>s
    return (
        f'<{tag} class="cs-tile"{attrs} data-symbol="{escape(t.symbol)}">'
        f'<span class="cs-head"><span class="cs-pair">{escape(base)}{quote_html}</span>'
        f'<span class="cs-chg"><span class="cs-muted">{escape(t.change_label)}</span>'
        f'<span class="cs-pill cs-{direction}">{fmt_pct(t.change_pct)}</span></span></span>'
        f'<span class="cs-price cs-{direction}-text" data-testid="tile-price">{fmt_price(t.price)}</span>'
        f'<span class="cs-spark">{spark}</span>'
        f'<span class="cs-foot"><span><em>High</em>{fmt_price(t.high)}</span>'
        f"<span><em>Low</em>{fmt_price(t.low)}</span>"
        f"<span><em>Vol</em>{fmt_compact(t.quote_volume)}{(' ' + escape(quote)) if quote else ''}</span>"
        f'<span class="cs-muted">{escape(t.spark_label)}</span></span>'
        f"</{tag}>"
    )


def placeholder_html(symbol: str, note: str) -> str:
    """The tile of a symbol with no candles yet: its name and why (waiting for the relay, loading)."""
    return (
        f'<span class="cs-tile" data-symbol="{escape(symbol)}"><span class="cs-pair">{escape(symbol)}</span>'
        f'<span class="cs-price cs-muted" data-testid="tile-price">—</span><span class="cs-muted">{escape(note)}</span>'
        "</span>"
    )
