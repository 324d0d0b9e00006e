"""Candlestream: the Streamlit entry point, navigation only.

``streamlit run app.py``; a page is one file in ``pages/`` plus its line in the navigation below.
Streamlit runs this file for every session's run (``main``), and its server imports it once for
the ``st.App`` below: the dashboard's web server (``services/ui/server.py``).
"""

from __future__ import annotations

import streamlit as st
from starlette.middleware import Middleware

from services.ui.entry import mark_entry
from services.ui.routes import follow_deep_link, unknown_path_notice
from services.ui.runtime import runtime
from services.ui.server import NestedPathRedirect, is_script_run, no_legacy_pages_dir
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


if is_script_run(__name__):
    main()
else:
    no_legacy_pages_dir()
    app = st.App(__file__, middleware=[Middleware(NestedPathRedirect)])
