"""Candlestream: the Streamlit entry point (navigation) and the overview page.

``streamlit run app.py``; the candles and system pages live in ``pages/``.
"""

from __future__ import annotations

import streamlit as st

from services.session import (
    Runtime,
    autostart_banner,
    known_symbols,
    mark_entry,
    page_setup,
    runtime,
    session_queue,
    show_status,
)
from services.views import overview_streams

COLUMNS = 3


def overview() -> None:
    rt = runtime()
    q = session_queue()
    symbols = known_symbols(rt.feed)
    rt.feed.want(q, overview_streams(symbols), page="overview")
    page_setup()
    st.markdown("## Markets")
    st.caption("Every symbol the relay carries, live. Click a tile for its chart.")
    rt.feed.wait_loaded([(symbols[0], "1s")], timeout=3.0)

    @st.fragment(run_every=rt.settings.refresh_s)
    def live() -> None:
        drained = q.drain()
        status = show_status(rt, drained, extra=[f"<span>{len(symbols)} symbols</span>"])
        if rt.feed.symbols and rt.feed.symbols != symbols:
            st.rerun()  # the relay's symbol list arrived or changed: redraw the whole page
        tiles(rt, symbols, waiting=not status.live)

    live()


def tiles(rt: Runtime, symbols: list[str], *, waiting: bool) -> None:
    for start in range(0, len(symbols), COLUMNS):
        cols = st.columns(COLUMNS, gap="small")
        for col, symbol in zip(cols, symbols[start : start + COLUMNS], strict=False):
            rendered = rt.tiles.tile(symbol, href=f"candles?symbol={symbol}")
            with col:
                if rendered is None:
                    note = "waiting for the relay" if waiting else "loading…"
                    st.markdown(
                        f'<span class="cs-tile"><span class="cs-pair">{symbol}</span>'
                        f'<span class="cs-price cs-muted">—</span><span class="cs-muted">{note}</span></span>',
                        unsafe_allow_html=True,
                    )
                else:
                    st.markdown(rendered.value, unsafe_allow_html=True)


def main() -> None:
    st.set_page_config(page_title="Candlestream", page_icon=":material/candlestick_chart:", layout="wide")
    mark_entry()
    rt = runtime()
    nav = st.navigation(
        [
            st.Page(overview, title="Overview", icon=":material/dashboard:", default=True, url_path="overview"),
            st.Page("pages/candles.py", title="Candles", icon=":material/candlestick_chart:", url_path="candles"),
            st.Page("pages/system.py", title="System", icon=":material/monitor_heart:", url_path="system"),
        ],
        position="top",
    )
    autostart_banner(rt)
    nav.run()


main()
