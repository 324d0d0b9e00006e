"""Candles: one symbol and interval, live candlesticks with volume, overlays, alert markers and older history.

The view lives in the URL (``?symbol=ETHUSDT&interval=5m&ind=ema20,vwap&tz=local&bars=500``).
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from html import escape

import streamlit as st

from backend.indicators import INDICATORS
from backend.models import Candle
from services.charts.candles import ChartSpec
from services.charts.fmt import fmt_compact, fmt_pct, fmt_price, pair_label
from services.charts.marks import AlertMark
from services.client import RelayError
from services.feed.status import FeedStatus
from services.ui.alert_data import stream_marks
from services.ui.page import live_page
from services.ui.plot import live_plot
from services.ui.query import query_choice, set_query
from services.ui.runtime import Runtime, runtime

BARS = ("100", "300", "500", "1000")
TZ = {"utc": "UTC", "local": "Local"}
OLDER_PAGE = 500


@st.cache_data(ttl=600, max_entries=256, show_spinner=False)
def older_candles(symbol: str, interval: str, end: int, limit: int) -> list[Candle]:
    """A page of closed candles before ``end`` from the relay's SQL history (shared by all sessions)."""
    return runtime().feed.client.history_before(symbol, interval, end, limit)


def main() -> None:
    page = live_page("candles")
    rt = page.rt
    symbols = page.symbols()
    intervals = page.intervals()

    symbol = query_choice("symbol", symbols, symbols[0])
    interval = query_choice("interval", intervals, "1m" if "1m" in intervals else intervals[0])
    chosen = [k for k in str(st.query_params.get("ind", "")).split(",") if k in INDICATORS]
    tz_key = query_choice("tz", list(TZ), "utc")
    bars = int(query_choice("bars", BARS, "300"))

    c1, c2, c3, c4, c5 = st.columns([1.2, 2.0, 3.4, 1.15, 0.85], vertical_alignment="bottom")
    symbol = c1.selectbox("Symbol", symbols, index=symbols.index(symbol), format_func=pair_label)
    interval = c2.segmented_control("Interval", intervals, default=interval) or interval
    chosen = c3.multiselect(
        "Indicators", list(INDICATORS), default=chosen, format_func=lambda k: INDICATORS[k].label, placeholder="None"
    )
    tz_key = c4.segmented_control("Time", list(TZ), default=tz_key, format_func=TZ.__getitem__) or tz_key
    bars = int(c5.selectbox("Bars", BARS, index=BARS.index(str(bars))))
    set_query(
        symbol=symbol,
        interval=interval,
        ind=",".join(chosen) or None,
        tz=None if tz_key == "utc" else tz_key,
        bars=None if bars == 300 else str(bars),
    )

    stream = (symbol, interval)
    page.want({stream})
    tz = (st.context.timezone or "UTC") if tz_key == "local" else "UTC"
    spec = ChartSpec(symbol, interval, tuple(chosen), tz)
    older_key = f"older:{symbol}:{interval}"
    pages: list[int] = st.session_state.setdefault(older_key, [])
    older = _older_rows(symbol, interval, pages)
    rt.feed.wait_loaded([stream], timeout=5.0)

    def draw(status: FeedStatus) -> None:
        view = replace(spec, extra=tuple(pages) if older else (), markers=_marks(rt, stream, status.live))
        rendered = rt.charts.figure(view, bars, older)
        if rendered is None:
            if status.live:
                book = rt.feed.book(stream)
                err = book.error if book is not None else None
                if err:
                    st.warning(f"Could not load {pair_label(symbol)} {interval}: {err}")
                else:
                    st.info(f"Loading {pair_label(symbol)} {interval}…", icon=":material/hourglass_top:")
            return
        legend(symbol, interval, rendered.meta.get("last_two", []), resyncing=not rendered.synced)
        live_plot(rendered.value, key="candles-chart")

    page.live(draw)

    left, right = st.columns([1, 3], vertical_alignment="center")
    if left.button("Load older history", icon=":material/history:", help="500 more closed candles from SQL history"):
        first = older[0].open_time if older else _first_open_time(rt, stream, bars)
        if first is not None:
            try:
                more = older_candles(symbol, interval, first, OLDER_PAGE)
            except RelayError as exc:
                right.warning(f"Older history is not available now: {exc}")
            else:
                if more:
                    pages.append(first)
                    st.rerun()
                else:
                    right.info("No older candles are stored for this stream.")
    if older:
        right.caption(f"{len(older):,} older candles loaded from history · drag or scroll the chart to see them")


def _marks(rt: Runtime, stream: tuple[str, str], live: bool) -> tuple[AlertMark, ...]:
    """The stream's fired alerts (cached, fetched again when the listener sees one); kept while the relay is down."""
    key = f"marks:{stream[0]}:{stream[1]}"
    if live:
        with contextlib.suppress(RelayError):
            st.session_state[key] = stream_marks(rt.feed, stream)
    return st.session_state.get(key, ())


def _older_rows(symbol: str, interval: str, pages: list[int]) -> list[Candle]:
    """The older pages this session loaded, oldest first (each cached process-wide)."""
    rows: list[Candle] = []
    for end in sorted(pages):
        try:
            rows = [*older_candles(symbol, interval, end, OLDER_PAGE), *[c for c in rows if c.open_time >= end]]
        except RelayError:
            continue
    seen: set[int] = set()
    out = []
    for c in sorted(rows, key=lambda c: c.open_time):
        if c.open_time not in seen:
            seen.add(c.open_time)
            out.append(c)
    return out


def _first_open_time(rt: Runtime, stream: tuple[str, str], bars: int) -> int | None:
    rows = rt.feed.read(stream, lambda b: b.tail(bars)) or []
    return rows[0].open_time if rows else None


def legend(symbol: str, interval: str, last_two: list[Candle], *, resyncing: bool) -> None:
    """Price, change of the forming candle and its OHLC, above the chart."""
    if not last_two:
        return
    c = last_two[-1]
    ref = last_two[-2].close if len(last_two) > 1 else c.open
    chg = (c.close / ref - 1.0) * 100.0 if ref else None
    cls = "cs-up" if (chg or 0) >= 0 else "cs-down"
    tag = " · resyncing…" if resyncing else ""
    st.markdown(
        f'<div class="cs-legend" data-testid="chart-legend">'
        f"<span><b>{escape(pair_label(symbol))}</b> <span class='cs-muted'>{escape(interval)}{tag}</span></span>"
        f'<span class="cs-big {"cs-tick-up" if c.close >= c.open else "cs-tick-down"}" data-testid="last-price">'
        f"{fmt_price(c.close)}</span>"
        f'<span class="cs-pill {cls}">{fmt_pct(chg)}</span>'
        f"<span><em>O</em>{fmt_price(c.open)}</span><span><em>H</em>{fmt_price(c.high)}</span>"
        f"<span><em>L</em>{fmt_price(c.low)}</span><span><em>C</em>{fmt_price(c.close)}</span>"
        f"<span><em>Vol</em>{fmt_compact(c.volume, 3)}</span><span><em>Trades</em>{c.trades:,}</span>"
        "</div>",
        unsafe_allow_html=True,
    )


main()
