"""Candles: one symbol and interval as candlesticks or a line, or several symbols compared in % change; live, with
volume, overlays, alert markers and older history.

The view lives in the URL (``?symbol=ETHUSDT&interval=5m&view=line&ind=ema20,vwap&tz=local&bars=500``;
``view=compare&cmp=BTCUSDT,ETHUSDT``); a link asking for what can't be shown says so.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, replace
from html import escape
from typing import Any

import streamlit as st

from backend.indicators import INDICATORS
from backend.models import Candle, normalize_symbol
from services.charts.candles import ChartSpec
from services.charts.compare import LINE_COLORS, CompareSpec
from services.charts.fmt import fmt_compact, fmt_pct, fmt_price, pair_label
from services.charts.marks import AlertMark
from services.charts.trend import change_pct, trend
from services.client import RelayError
from services.feed.status import FeedStatus
from services.settings import ui_settings
from services.ui.alert_data import stream_marks
from services.ui.page import LivePage, live_page
from services.ui.plot import live_figure
from services.ui.query import Choice, pick, plain, query_pick, refused_text, set_query
from services.ui.runtime import Runtime, runtime

BARS = ("100", "300", "500", "1000")
TZ = {"utc": "UTC", "local": "Local"}
VIEWS = {"candles": "Candles", "line": "Line", "compare": "Compare"}
OLDER_PAGE = 500
MAX_COMPARE = len(LINE_COLORS)


@st.cache_data(ttl=600, max_entries=256, show_spinner=False)
def older_candles(symbol: str, interval: str, end: int, limit: int) -> list[Candle]:
    """A page of closed candles before ``end`` from the relay's SQL history (shared by all sessions)."""
    return runtime().feed.client.history_before(symbol, interval, end, limit)


@st.cache_data(ttl=30, max_entries=256, show_spinner=False)
def oldest_stored(symbol: str, interval: str) -> int | None:
    """The open time of the stream's oldest candle in SQL history (None: none stored), shared by all sessions."""
    items, _ = runtime().feed.client.history(symbol, interval, limit=1)
    return items[0].open_time if items else None


def _symbol_key(text: str) -> str:
    return normalize_symbol(text) or text.strip().upper()


def main() -> None:
    page = live_page("candles")
    symbols = page.symbols()
    intervals = page.intervals()

    asked_symbol = query_pick("symbol", symbols, symbols[0], key=_symbol_key)
    asked_interval = query_pick("interval", intervals, "1m" if "1m" in intervals else intervals[0])
    asked_view = query_pick("view", list(VIEWS), "candles")
    asked_ind = [pick(k, list(INDICATORS), "") for k in _listed("ind")]
    asked_cmp = [pick(s, symbols, "", key=_symbol_key) for s in _listed("cmp")]
    asked_tz = query_pick("tz", list(TZ), "utc")
    asked_bars = query_pick("bars", BARS, "300")
    bad_link(asked_symbol, asked_interval, asked_view, asked_ind, asked_cmp, asked_tz, asked_bars, symbols, intervals)

    comparing = st.session_state.get("view", asked_view.value) == "compare"
    with st.container(key="chart-controls"):
        widths = [3.0, 2.2, 1.6, 0.9] if comparing else [1.3, 2.2, 1.6, 0.9]
        c1, c2, c3, c4 = st.columns(widths, vertical_alignment="bottom")
    view = c3.segmented_control(
        "View", list(VIEWS), default=asked_view.value, format_func=VIEWS.__getitem__, key="view"
    )
    view = view or asked_view.value
    if view == "compare":
        default_cmp = [c.value for c in asked_cmp if c.value] or symbols[:MAX_COMPARE]
        compared = c1.multiselect(
            "Symbols", symbols, default=default_cmp, format_func=pair_label, max_selections=MAX_COMPARE
        )
        symbol = asked_symbol.value
    else:
        symbol = c1.selectbox("Symbol", symbols, index=symbols.index(asked_symbol.value), format_func=pair_label)
        compared = [c.value for c in asked_cmp if c.value]
    interval = c2.segmented_control("Interval", intervals, default=asked_interval.value) or asked_interval.value
    with c4.popover("Options", icon=":material/tune:", width="stretch"):
        chosen = st.multiselect(
            "Indicators",
            list(INDICATORS),
            default=[c.value for c in asked_ind if c.value],
            format_func=lambda k: INDICATORS[k].label,
            placeholder="None",
            disabled=view == "compare",
            help="Not drawn in the comparison view",
        )
        tz_key = st.segmented_control("Time", list(TZ), default=asked_tz.value, format_func=TZ.__getitem__)
        tz_key = tz_key or asked_tz.value
        bars = int(st.selectbox("Bars", BARS, index=BARS.index(asked_bars.value)))
    set_query(
        symbol=symbol,
        interval=interval,
        view=None if view == "candles" else view,
        cmp=",".join(compared) if view == "compare" and compared else None,
        ind=",".join(chosen) or None,
        tz=None if tz_key == "utc" else tz_key,
        bars=None if bars == 300 else str(bars),
    )
    tz = (st.context.timezone or "UTC") if tz_key == "local" else "UTC"
    if view == "compare":
        compare_view(page, compared, interval, tz, bars)
    else:
        single_view(page, ChartSpec(symbol, interval, tuple(chosen), tz, style=view), bars)


def _listed(name: str) -> list[str]:
    return [k for k in str(st.query_params.get(name, "")).split(",") if k.strip()]


def bad_link(
    symbol: Choice,
    interval: Choice,
    view: Choice,
    ind: list[Choice],
    cmp: list[Choice],
    tz: Choice,
    bars: Choice,
    symbols: list[str],
    intervals: list[str],
) -> None:
    """Say what the link asked for that can't be shown, why, and what is shown instead."""
    refused: list[tuple[str, str]] = []
    carried = ", ".join(pair_label(s) for s in symbols)
    for c in (symbol, *(c for c in cmp if c.asked is not None)):
        if c.asked is not None:
            known = normalize_symbol(c.asked)
            why = f"the relay carries no {plain(known)}" if known else f"“{plain(c.asked)}” is not a symbol"
            refused.append((c.asked, f"{why} (it carries {carried})"))
    if interval.asked is not None:
        refused.append((interval.asked, f"“{plain(interval.asked)}” is not an interval here ({', '.join(intervals)})"))
    if view.asked is not None:
        refused.append((f"view={view.asked}", f"the views are {', '.join(VIEWS)}"))
    for c in ind:
        if c.asked is not None:
            refused.append((c.asked, f"“{plain(c.asked)}” is not an indicator ({', '.join(INDICATORS)})"))
    if tz.asked is not None:
        refused.append((f"tz={tz.asked}", "the time zone is utc or local"))
    if bars.asked is not None:
        refused.append((f"bars={bars.asked}", f"bars is one of {', '.join(BARS)}"))
    if refused:
        if view.value == "compare":
            chosen = [c.value for c in cmp if c.value] or symbols[:MAX_COMPARE]
            shown = f"{', '.join(pair_label(s) for s in chosen)} compared at {interval.value}"
        else:
            shown = f"{pair_label(symbol.value)} {interval.value}"
        with st.container(key="bad-link"):
            st.warning(refused_text(refused, shown), icon=":material/link_off:")


def single_view(page: LivePage, spec: ChartSpec, bars: int) -> None:
    """One symbol: candlesticks or the close as a line, with volume, indicators, alert marks and older history."""
    rt = page.rt
    stream = (spec.symbol, spec.interval)
    page.want({stream})
    older_key = f"older:{spec.symbol}:{spec.interval}"
    pages: list[int] = st.session_state.setdefault(older_key, [])
    older = _older_rows(spec.symbol, spec.interval, pages)
    rt.feed.wait_loaded([stream], timeout=5.0)
    live_part = st.container()  # above the history row, which the app's run draws first
    note = history_note(rt, spec, bars, older, live=rt.feed.status().live)
    row = history_row(rt, spec, bars, older, pages, note)

    def draw(status: FeedStatus) -> None:
        view = replace(spec, extra=tuple(pages) if older else (), markers=_marks(rt, stream, status.live))
        rendered = rt.charts.figure(view, bars, older)
        if rendered is None:
            if status.live:
                book = rt.feed.book(stream)
                err = book.error if book is not None else None
                if err:
                    st.warning(f"Could not load {pair_label(spec.symbol)} {spec.interval}: {err}")
                else:
                    st.info(f"Loading {pair_label(spec.symbol)} {spec.interval}…", icon=":material/hourglass_top:")
            return
        legend(spec.symbol, spec.interval, rendered.meta.get("last_two", []), resyncing=not rendered.synced)
        live_figure(rendered.value, key="candles-chart", identity=(view, bars), delta=ui_settings().delta)
        row.refresh(history_note(rt, spec, bars, older, live=status.live))

    with live_part:
        page.live(draw)
    row.in_app_run = False


@dataclass(frozen=True)
class HistoryNote:
    """What the history row says: the range shown, and whether "Load older history" is offered (``offer``)."""

    text: str
    offer: bool = False


@dataclass
class HistoryRow:
    """The history row as drawn by the app's run, below the live fragment: the live part refreshes only its caption
    (the button and its columns are not sent again every second), and reruns the app when the button should come
    or go.

    Streamlit lets a fragment write outside itself only where it wrote during the app's run (its first run, inline):
    ``in_app_run`` tells that run apart, ``reserved`` says it wrote.
    """

    note: HistoryNote | None
    caption: Any
    in_app_run: bool = True
    reserved: bool = False

    def refresh(self, note: HistoryNote | None) -> None:
        if (note is None) != (self.note is None) or (note is not None and self.note is not None
                                                      and note.offer != self.note.offer):  # fmt: skip
            st.rerun(scope="app")  # the relay went down or came back, older history appeared: redraw the row
        if note is None:
            return
        if not self.reserved and not self.in_app_run:
            st.rerun(scope="app")  # the app's run drew no chart, so its caption can't be written from here yet
        self.caption.caption(note.text)  # every run: Streamlit empties the slot a fragment wrote to before each
        self.note, self.reserved = note, True


def history_note(rt: Runtime, spec: ChartSpec, bars: int, older: list[Candle], *, live: bool) -> HistoryNote | None:
    """The range shown, and "Load older history" only when SQL holds older candles and the relay answers."""
    stream = (spec.symbol, spec.interval)
    first = older[0].open_time if older else _first_open_time(rt, stream, bars)
    if first is None:
        return None
    shown = f"Shown from {_when(first, spec.interval)}"
    if older:
        shown += f", including {len(older):,} older candles loaded from history (drag or scroll the chart to see them)"
    if not live:
        return HistoryNote(f"{shown}. Older history can be loaded when the relay answers again.")
    key = f"oldest:{spec.symbol}:{spec.interval}"
    oldest = st.session_state.get(key)
    if oldest is None:  # once known, SQL's oldest candle stays put: this rerun asks (cached 30 s) only until then
        try:
            oldest = st.session_state[key] = oldest_stored(spec.symbol, spec.interval)
        except RelayError as exc:
            return HistoryNote(f"{shown}. Older history is not available now: {exc}")
    if oldest is None or oldest >= first:
        return HistoryNote(f"{shown}. No older candles are stored for this stream.")
    return HistoryNote(f"{shown}. History is stored from {_when(oldest, spec.interval)}.", offer=True)


def history_row(
    rt: Runtime, spec: ChartSpec, bars: int, older: list[Candle], pages: list[int], note: HistoryNote | None
) -> HistoryRow:
    """Draw the history row (in the app's run, below the live part): the caption, and the button when offered."""
    if note is None:
        return HistoryRow(None, None)
    if not note.offer:
        caption = st.empty()
        caption.caption(note.text)
        return HistoryRow(note, caption)
    left, right = st.columns([1, 3], vertical_alignment="center")
    caption = right.empty()
    caption.caption(note.text)
    if left.button("Load older history", icon=":material/history:", help=f"{OLDER_PAGE} more closed candles"):
        stream = (spec.symbol, spec.interval)
        first = older[0].open_time if older else _first_open_time(rt, stream, bars)
        try:
            more = older_candles(spec.symbol, spec.interval, first, OLDER_PAGE) if first is not None else []
        except RelayError as exc:
            right.warning(f"Older history is not available now: {exc}")
            return HistoryRow(note, caption)
        if more and first is not None:
            pages.append(first)
            st.rerun(scope="app")
        right.info("No older candles are stored before the range shown.")
    return HistoryRow(note, caption)


def _when(open_time: int, interval: str) -> str:
    fmt = "%Y-%m-%d %H:%M:%S UTC" if interval.endswith("s") else "%Y-%m-%d %H:%M UTC"
    return time.strftime(fmt, time.gmtime(open_time / 1000))


def compare_view(page: LivePage, symbols: list[str], interval: str, tz: str, bars: int) -> None:
    """Several symbols' closes as % change over the same range, live."""
    rt = page.rt
    if not symbols:
        page.want(set())
        st.info("Choose symbols to compare.", icon=":material/stacked_line_chart:")
        return
    streams = {(s, interval) for s in symbols}
    page.want(streams)
    spec = CompareSpec(tuple(symbols), interval, tz)
    rt.feed.wait_loaded(sorted(streams), timeout=5.0)

    def draw(status: FeedStatus) -> None:
        rendered = rt.charts.compare(spec, bars)
        if rendered is None:
            if status.live:
                st.info(f"Loading {len(symbols)} symbols at {interval}…", icon=":material/hourglass_top:")
            return
        since = rendered.meta.get("since")
        span = f"since {_when(since, interval)}" if since is not None else ""
        st.markdown(
            f'<div class="cs-legend" data-testid="compare-legend"><span><b>% change</b> '
            f"<span class='cs-muted'>{escape(interval)} · last {bars} bars · {escape(span)}</span></span></div>",
            unsafe_allow_html=True,
        )
        live_figure(rendered.value, key="compare-chart", identity=(spec, bars), delta=ui_settings().delta)

    page.live(draw)


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
    """Price, change of the forming candle and its OHLC, above the chart (coloured by the one trend rule).

    Short markup (the details are ``<i>``): it is sent again with every live refresh.
    """
    if not last_two:
        return
    c = last_two[-1]
    ref = last_two[-2].close if len(last_two) > 1 else c.open
    chg = change_pct(ref, c.close)
    tag = " · resyncing…" if resyncing else ""
    cls = f"cs-{trend(chg)}"
    st.markdown(
        f'<div class="cs-legend" data-testid="chart-legend">'
        f"<span><b>{escape(pair_label(symbol))}</b> <span class='cs-muted'>{escape(interval)}{tag}</span></span>"
        f'<span class="cs-big {cls}-text" data-testid="last-price">{fmt_price(c.close)}</span>'
        f'<span class="cs-pill {cls}">{fmt_pct(chg)}</span>'
        f"<i><em>O</em>{fmt_price(c.open)}</i>"
        f"<i><em>H</em>{fmt_price(c.high)}</i>"
        f"<i><em>L</em>{fmt_price(c.low)}</i>"
        f"<i><em>C</em>{fmt_price(c.close)}</i>"
        f"<i><em>Vol</em>{fmt_compact(c.volume, 3)}</i>"
        f"<i><em>Trades</em>{c.trades:,}</i>"
        "</div>",
        unsafe_allow_html=True,
    )


main()
