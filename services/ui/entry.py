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

    On a fresh server, Streamlit's first script run still treats ``pages/`` as a legacy multipage
    directory, and a deep link (``/candles?…``) would run the page alone: no navigation bar, no
    wide layout. That mode ends for the process when ``st.navigation`` is first called (here: by
    hand, as ``st.navigation`` itself does), and the rerun goes through ``app.py``.
    """
    if not st.session_state.get(_ENTRY_KEY):
        from streamlit.runtime.pages_manager import PagesManager

        PagesManager.uses_pages_directory = False
        st.rerun()
