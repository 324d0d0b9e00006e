"""The candles chart and the overview tiles, from the feed's books through a shared render cache.

One figure per (chart spec, depth) and one tile per symbol, rebuilt when
their books move and shared by every session of the process; nothing here
does I/O or calls ``st.*``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from backend.models import Candle
from services.charts.candles import ChartSpec, candles_figure_spec
from services.charts.compare import CompareSpec, compare_figure_spec
from services.charts.frame import candles_frame
from services.charts.tiles import OVERVIEW_INTERVALS, placeholder_html, tile_data, tile_html
from services.feed.book import Stream, StreamBook
from services.feed.feed import Feed
from services.ui.plot import CANDLES_CONFIG, Frame, cells_frame, plot_frame
from services.ui.render_cache import RenderCache, Rendered


class ChartRenderer:
    """The candles page's figure per (chart spec, depth), shared across sessions."""

    def __init__(self, feed: Feed, cache: RenderCache | None = None) -> None:
        self.feed = feed
        self.cache = cache or RenderCache()

    def figure(self, spec: ChartSpec, bars: int, older: Sequence[Candle] = ()) -> Rendered | None:
        """The current figure as a :class:`~services.ui.plot.PlotFrame`, or None before the stream's snapshot."""
        stream = (spec.symbol, spec.interval)
        state = self.feed.read(stream, lambda b: (b.version, b.loaded, b.synced))
        if state is None or not state[1]:
            return None
        version, _, synced = state
        anchor = older[-1].open_time + 1 if older else None

        def build() -> tuple[Any, dict[str, Any]]:
            rows = self.feed.read(stream, lambda b: b.tail(bars, since_open_time=anchor)) or []
            fig = candles_figure_spec(candles_frame([*older, *rows]), spec)
            return plot_frame(fig, CANDLES_CONFIG), {**fig["layout"]["meta"], "last_two": rows[-2:]}

        return self.cache.get((spec, bars), version, build, synced=synced)

    def compare(self, spec: CompareSpec, bars: int) -> Rendered | None:
        """The comparison figure over the last ``bars`` candles of each symbol, or None before any snapshot."""
        streams = [(s, spec.interval) for s in spec.symbols]
        states = [self.feed.read(s, lambda b: (b.version, b.loaded, b.synced)) for s in streams]
        loaded = [st for st in states if st is not None and st[1]]
        if not loaded:
            return None
        version = sum(st[0] for st in loaded)

        def build() -> tuple[Any, dict[str, Any]]:
            frames = {
                s: candles_frame(self.feed.read((s, spec.interval), lambda b: b.tail(bars)) or []) for s in spec.symbols
            }
            fig = compare_figure_spec(frames, spec)
            return plot_frame(fig, CANDLES_CONFIG), dict(fig["layout"]["meta"])

        return self.cache.get(("compare", spec, bars), version, build, synced=all(st[2] for st in loaded))


class TileRenderer:
    """Overview tiles per symbol, and the grid of them, shared across sessions."""

    def __init__(self, feed: Feed, cache: RenderCache | None = None) -> None:
        self.feed = feed
        self.cache = cache or RenderCache(min_age_s=0.2)
        self._grids: dict[tuple[tuple[str, ...], int], tuple[tuple[str, ...], Frame]] = {}
        self._guard = threading.Lock()

    def grid(self, symbols: Sequence[str], *, waiting: bool, columns: int) -> Frame:
        """The tiles of ``symbols`` (a tile links to its chart) as one version of the grid: the same version, and
        token, for every session while no tile changes (so patches between versions are shared too)."""
        cells = []
        for symbol in symbols:
            rendered = self.tile(symbol, href=f"candles?symbol={symbol}")
            note = "waiting for the relay" if waiting else "loading…"
            cells.append(placeholder_html(symbol, note) if rendered is None else rendered.value)
        key = (tuple(symbols), columns)
        with self._guard:
            last = self._grids.get(key)
            if last is None or last[0] != tuple(cells):
                last = self._grids[key] = (tuple(cells), cells_frame(cells, f"cs-cols-{columns}"))
            return last[1]

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
