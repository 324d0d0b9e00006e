"""Candlestream: the Streamlit entry point, navigation only.

``streamlit run app.py``; a page is one file in ``pages/`` plus its line in the navigation below.
"""

from __future__ import annotations

import streamlit as st

from services.ui.entry import mark_entry
from services.ui.routes import follow_deep_link, unknown_path_notice
from services.ui.runtime import runtime
from services.ui.status import autostart_banner


def main() -> None:
    st.set_page_config(page_title="Candlestream", page_icon=":material/candlestick_chart:", layout="wide")
    mark_entry()
    rt = runtime()
    pages = [
        st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True, url_path="overview"),
        st.Page("pages/candles.py", title="Candles", icon=":material/candlestick_chart:", url_path="candles"),
        st.Page("pages/alerts.py", title="Alerts", icon=":material/notifications:", url_path="alerts"),
        st.Page("pages/system.py", title="System", icon=":material/monitor_heart:", url_path="system"),
    ]
    found = follow_deep_link(pages)
    nav = st.navigation(pages, position="top")
    autostart_banner(rt)
    unknown_path_notice(found, pages)
    nav.run()


main()
