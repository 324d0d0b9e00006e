"""Overview: a live tile per symbol the relay carries; a click opens its chart.

The tiles are one component that keeps them in the browser: after the first draw, each refresh sends only the
splices of what changed (services/ui/plot.py ``live_cells``).
"""

from __future__ import annotations

import streamlit as st

from services.feed.status import FeedStatus
from services.settings import ui_settings
from services.ui.page import live_page
from services.ui.plot import live_cells
from services.ui.renders import overview_streams

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
        grid = rt.tiles.grid(symbols, waiting=not status.live, columns=COLUMNS)
        live_cells(grid, key="tiles", identity=tuple(symbols), delta=ui_settings().delta)

    page.live(draw, extra=[f"<span>{len(symbols)} symbols</span>"])


main()
