"""Every page runs inside ``app.py``'s navigation, also when a deep link is a fresh server's first visit.

``app.py`` marks every full run; a page that finds no mark reruns through
``app.py`` (see :func:`require_entry`).
"""

from __future__ import annotations

import streamlit as st

_ENTRY_KEY = "_candlestream_entry"


def mark_entry() -> None:
    """Called by ``app.py`` on every full run: the pages know they run inside its navigation."""
    st.session_state[_ENTRY_KEY] = True


def require_entry() -> None:
    """Run the page through ``app.py``.

    Until ``st.navigation`` is first called in a process, Streamlit treats ``pages/`` as a legacy
    multipage directory, and a page asked for by path or hash (``/candles?…``) would run alone: no
    navigation bar, no wide layout. The server turns that mode off before its first session
    (``services/ui/server.py``); ``streamlit.testing``'s ``AppTest`` turns it back on for every
    test, so here it ends by hand (as ``st.navigation`` itself does) and the rerun goes through ``app.py``.
    """
    if not st.session_state.get(_ENTRY_KEY):
        from streamlit.runtime.pages_manager import PagesManager

        PagesManager.uses_pages_directory = False
        st.rerun()
