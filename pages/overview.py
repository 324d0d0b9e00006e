"""Overview: a live tile per symbol the relay carries; a click opens its chart."""

from __future__ import annotations

import streamlit as st

from services.feed.status import FeedStatus
from services.ui.page import live_page
from services.ui.renders import overview_streams
from services.ui.runtime import Runtime

COLUMNS = 3


def main() -> None:
    page = live_page("overview")
    rt = page.rt
    symbols = page.symbols()
    page.want(overview_streams(symbols))
    st.markdown("## Markets")
    st.caption("Every symbol the relay carries, live. Click a tile for its chart.")
    rt.feed.wait_loaded([(symbols[0], "1s")], timeout=3.0)

    def draw(status: FeedStatus) -> None:
        if rt.feed.symbols and rt.feed.symbols != symbols:
            st.rerun()  # the relay's symbol list arrived or changed: redraw the whole page
        tiles(rt, symbols, waiting=not status.live)

    page.live(draw, extra=[f"<span>{len(symbols)} symbols</span>"])


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


main()
