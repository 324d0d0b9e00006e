"""Renders shared by every session of the process: built once per update, drawn by many.

A page's rerun asks these caches for the current figure (Plotly JSON, arrays
in compact base64 form, already encoded to the bytes the browser gets) or tile; the first
session that needs a newer one builds it (at most every ``min_age_s`` per
key, so the build rate follows the update rate, never the session count),
everybody else gets the same object. Nothing here does I/O.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from backend.config import INTERVALS_MS
from backend.models import Candle, now_ms
from services.charts import ChartSpec, candles_figure_spec, candles_frame, sparkline_svg
from services.feed import Feed, Stream, StreamBook
from services.fmt import fmt_compact, fmt_pct, fmt_price, split_symbol
from services.plot import CANDLES_CONFIG, encode_plot


@dataclass(frozen=True)
class Rendered:
    """A shared render and what it was built from."""

    value: Any
    version: int
    built_at: float
    synced: bool
    meta: dict[str, Any]


class RenderCache:
    """Per-key renders, rebuilt when the source version moved and the render is older than ``min_age_s``."""

    def __init__(self, min_age_s: float = 0.2, max_entries: int = 256) -> None:
        self.min_age_s = min_age_s
        self.max_entries = max_entries
        self._entries: OrderedDict[Any, Rendered] = OrderedDict()
        self._locks: dict[Any, threading.Lock] = {}
        self._guard = threading.Lock()
        self.builds = 0
        self.hits = 0

    def get(
        self, key: Any, version: int, build: Callable[[], tuple[Any, dict[str, Any]]], *, synced: bool = True
    ) -> Rendered:
        entry = self._fresh(key, version, synced)
        if entry is not None:
            return entry
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # one builder per key; the others wait and take its result
            entry = self._fresh(key, version, synced)
            if entry is not None:
                return entry
            value, meta = build()
            entry = Rendered(value, version, time.monotonic(), synced, meta)
            with self._guard:
                self._entries[key] = entry
                self._entries.move_to_end(key)
                self.builds += 1
                while len(self._entries) > self.max_entries:
                    old, _ = self._entries.popitem(last=False)
                    self._locks.pop(old, None)
            return entry

    def _fresh(self, key: Any, version: int, synced: bool) -> Rendered | None:
        with self._guard:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if (
                entry.version == version
                or time.monotonic() - entry.built_at < self.min_age_s
                or (not synced and entry.synced)  # keep the last complete picture while a resync runs
            ):
                self.hits += 1
                return entry
            return None


# ---------------------------------------------------------------- candles chart


class ChartRenderer:
    """The candles page's figure per (chart spec, depth), shared across sessions."""

    def __init__(self, feed: Feed, cache: RenderCache | None = None) -> None:
        self.feed = feed
        self.cache = cache or RenderCache()

    def figure(self, spec: ChartSpec, bars: int, older: Sequence[Candle] = ()) -> Rendered | None:
        """The current figure as :func:`~services.plot.live_plot` bytes, or None before the stream's snapshot."""
        stream = (spec.symbol, spec.interval)
        state = self.feed.read(stream, lambda b: (b.version, b.loaded, b.synced))
        if state is None or not state[1]:
            return None
        version, _, synced = state
        anchor = older[-1].open_time + 1 if older else None

        def build() -> tuple[Any, dict[str, Any]]:
            rows = self.feed.read(stream, lambda b: b.tail(bars, since_open_time=anchor)) or []
            fig = candles_figure_spec(candles_frame([*older, *rows]), spec)
            return encode_plot(fig, CANDLES_CONFIG), {**fig["layout"]["meta"], "last_two": rows[-2:]}

        return self.cache.get((spec, bars), version, build, synced=synced)


# ---------------------------------------------------------------- overview tiles


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
    tick_up: bool | None
    event_time: int | None


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
        change = (price / first.open - 1.0) * 100.0 if first.open else None
        label = "24h" if first.open_time <= now - 86_400_000 + INTERVALS_MS[DAY_INTERVAL] else "since " + _hhmm(first)
        high = max(c.high for c in day)
        low = min(c.low for c in day)
        qv = sum(c.quote_volume for c in day)
    spark: tuple[float, ...] = ()
    spark_label = ""  # the span the sparkline covers
    for interval in SPARK_INTERVALS:
        rows = books.get(interval, [])
        if len(rows) >= SPARK_MIN_POINTS or interval == SPARK_INTERVALS[-1]:
            pts = rows[-SPARK_POINTS[interval] :]
            spark = tuple(c.close for c in pts)
            span_ms = INTERVALS_MS[interval] * len(pts)
            spark_label = f"last {_span(span_ms)}" if pts else ""
            break
    prev = _previous_close(books)
    tick_up = None if prev is None or price is None or price == prev else price > prev
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
        tick_up,
        last.event_time if last else None,
    )


def _previous_close(books: dict[str, list[Candle]]) -> float | None:
    rows = books.get("1s") or []
    return rows[-2].close if len(rows) >= 2 else None


def _hhmm(c: Candle) -> str:
    return time.strftime("%H:%M UTC", time.gmtime(c.open_time / 1000))


def _span(ms: int) -> str:
    s = ms // 1000
    if s < 3600:
        return f"{max(1, s // 60)}m" if s >= 60 else f"{s}s"
    return f"{s // 3600}h"


def tile_html(t: TileData, href: str | None = None) -> str:
    """The overview tile: pair, price (coloured by the last tick), change pill, sparkline, range and volume."""
    base, quote = split_symbol(t.symbol)
    up = (t.change_pct or 0.0) >= 0
    tick = "" if t.tick_up is None else (" cs-tick-up" if t.tick_up else " cs-tick-down")
    pill = "cs-up" if up else "cs-down"
    spark = sparkline_svg(t.spark, up=(t.spark[-1] >= t.spark[0]) if len(t.spark) > 1 else None)
    quote_html = f'<span class="cs-quote">/{escape(quote)}</span>' if quote else ""
    tag, attrs = ("a", f' href="{escape(href)}" target="_self"') if href else ("span", "")
    # spans only (styled as blocks): Streamlit's markdown splits an <a> wrapped around <div>s
    return (
        f'<{tag} class="cs-tile"{attrs} data-symbol="{escape(t.symbol)}">'
        f'<span class="cs-head"><span class="cs-pair">{escape(base)}{quote_html}</span>'
        f'<span class="cs-chg"><span class="cs-muted">{escape(t.change_label)}</span>'
        f'<span class="cs-pill {pill}">{fmt_pct(t.change_pct)}</span></span></span>'
        f'<span class="cs-price{tick}" data-testid="tile-price">{fmt_price(t.price)}</span>'
        f'<span class="cs-spark">{spark}</span>'
        f'<span class="cs-foot"><span><em>High</em>{fmt_price(t.high)}</span>'
        f"<span><em>Low</em>{fmt_price(t.low)}</span>"
        f"<span><em>Vol</em>{fmt_compact(t.quote_volume)}{(' ' + escape(quote)) if quote else ''}</span>"
        f'<span class="cs-muted">{escape(t.spark_label)}</span></span>'
        f"</{tag}>"
    )


TILE_CSS = """
<style>
a.cs-tile, a.cs-tile:hover { text-decoration: none !important; color: inherit !important; }
.cs-tile { display: block; border: 1px solid rgba(128,128,128,0.22); border-radius: 10px; padding: 12px 14px 10px;
  background: rgba(128,128,128,0.045); transition: border-color .15s, background .15s;
  font-variant-numeric: tabular-nums; }
a.cs-tile:hover { border-color: rgba(240,185,11,0.75); background: rgba(128,128,128,0.08); }
.cs-tile > span { display: block; }
.cs-tile > .cs-head, .cs-tile > .cs-foot { display: flex; }
.cs-head { display: flex; justify-content: space-between; align-items: center; }
.cs-pair { font-weight: 700; font-size: 1.02rem; letter-spacing: .01em; }
.cs-quote { opacity: .5; font-weight: 500; }
.cs-chg { display: flex; gap: 8px; align-items: center; font-size: .72rem; }
.cs-pill { font-size: .8rem; font-weight: 700; padding: 2px 8px; border-radius: 6px; }
.cs-up { color: #26a69a; background: rgba(38,166,154,0.14); }
.cs-down { color: #ef5350; background: rgba(239,83,80,0.14); }
.cs-tile > .cs-price { font-size: 1.65rem; font-weight: 700; margin: 4px 0 2px; line-height: 1.2; }
.cs-tick-up { color: #26a69a; } .cs-tick-down { color: #ef5350; }
.cs-spark { position: relative; margin: 2px -2px 4px; }
.cs-spark svg { display: block; }
.cs-foot { display: flex; justify-content: space-between; font-size: .76rem; opacity: .85; gap: 6px;
  white-space: nowrap; }
.cs-foot em { font-style: normal; opacity: .55; margin-right: 5px; }
.cs-status { display: flex; flex-wrap: wrap; gap: 18px; align-items: center; font-size: .85rem; opacity: .92; }
.cs-dot { display: inline-block; width: 8px; height: 8px; border-radius: 50%; margin-right: 6px; }
.cs-dot.live { background: #26a69a; box-shadow: 0 0 0 3px rgba(38,166,154,0.25); }
.cs-dot.down { background: #ef5350; box-shadow: 0 0 0 3px rgba(239,83,80,0.25); }
.cs-dot.wait { background: #f0b90b; box-shadow: 0 0 0 3px rgba(240,185,11,0.25); }
.cs-muted { opacity: .6; }
.cs-legend { font-size: .9rem; font-variant-numeric: tabular-nums; display: flex; flex-wrap: wrap; gap: 14px;
  align-items: baseline; }
.cs-legend .cs-big { font-size: 1.7rem; font-weight: 700; }
.cs-legend em { font-style: normal; opacity: .55; margin-right: 3px; }
</style>
"""


class TileRenderer:
    """Overview tiles per symbol, shared across sessions."""

    def __init__(self, feed: Feed, cache: RenderCache | None = None) -> None:
        self.feed = feed
        self.cache = cache or RenderCache(min_age_s=0.2)

    def tile(self, symbol: str, href: str | None = None) -> Rendered | None:
        streams = [(symbol, i) for i in OVERVIEW_INTERVALS]
        states = [self.feed.read(s, lambda b: (b.version, b.loaded)) for s in streams]
        if not any(st and st[1] for st in states):
            return None
        version = sum(st[0] for st in states if st)

        def build() -> tuple[Any, dict[str, Any]]:
            books = {s[1]: self.feed.read(s, _rows) or [] for s in streams}
            data = tile_data(symbol, books)
            return tile_html(data, href), {"price": data.price, "event_time": data.event_time}

        return self.cache.get((symbol, href), version, build)


def _rows(b: StreamBook) -> list[Candle]:
    return b.tail()


def overview_streams(symbols: Sequence[str]) -> set[Stream]:
    return {(s, i) for s in symbols for i in OVERVIEW_INTERVALS}
