"""The page styles the app adds to Streamlit's theme: tiles, status line, chart legend.

Colours come from ``.streamlit/config.toml`` (a dark and a light theme);
these rules use colours that read on both.
"""

from __future__ import annotations

import streamlit as st

CSS = """
<style>
a.cs-tile, a.cs-tile:hover { text-decoration: none !important; color: inherit !important; }
.cs-tile { display: block; border: 1px solid rgba(128,128,128,0.22); border-radius: 10px; padding: 12px 14px 10px;
  background: rgba(128,128,128,0.045); transition: border-color .15s, background .15s;
  font-variant-numeric: tabular-nums; }
a.cs-tile:hover { border-color: rgba(240,185,11,0.75); background: rgba(128,128,128,0.08); }
.cs-tile > span { display: block; }
.cs-tile > .cs-head, .cs-tile > .cs-foot { display: flex; }
.cs-head { display: flex; justify-content: space-between; align-items: center; }
.cs-pair { font-weight: 700; font-size: 1.02rem; letter-spacing: .01em; }
.cs-quote { opacity: .5; font-weight: 500; }
.cs-chg { display: flex; gap: 8px; align-items: center; font-size: .72rem; }
.cs-pill { font-size: .8rem; font-weight: 700; padding: 2px 8px; border-radius: 6px; }
.cs-up { color: #26a69a; background: rgba(38,166,154,0.14); }
.cs-down { color: #ef5350; background: rgba(239,83,80,0.14); }
.cs-tile > .cs-price { font-size: 1.65rem; font-weight: 700; margin: 4px 0 2px; line-height: 1.2; }
.cs-tick-up { color: #26a69a; } .cs-tick-down { color: #ef5350; }
.cs-spark { position: relative; margin: 2px -2px 4px; }
.cs-spark svg { display: block; }
.cs-foot { display: flex; justify-content: space-between; font-size: .76rem; opacity: .85; gap: 6px;
  white-space: nowrap; }
.cs-foot em { font-style: normal; opacity: .55; margin-right: 5px; }
.cs-status { display: flex; flex-wrap: wrap; gap: 18px; align-items: center; font-size: .85rem; opacity: .92; }
.cs-dot { display: inline-block; width: 8px; height: 8px; border-radius: 50%; margin-right: 6px; }
.cs-dot.live { background: #26a69a; box-shadow: 0 0 0 3px rgba(38,166,154,0.25); }
.cs-dot.down { background: #ef5350; box-shadow: 0 0 0 3px rgba(239,83,80,0.25); }
.cs-dot.wait { background: #f0b90b; box-shadow: 0 0 0 3px rgba(240,185,11,0.25); }
.cs-muted { opacity: .6; }
.cs-legend { font-size: .9rem; font-variant-numeric: tabular-nums; display: flex; flex-wrap: wrap; gap: 14px;
  align-items: baseline; }
.cs-legend .cs-big { font-size: 1.7rem; font-weight: 700; }
.cs-legend em { font-style: normal; opacity: .55; margin-right: 3px; }
</style>
"""


def apply_theme() -> None:
    """Add the app's styles to the page (every page, first thing)."""
    st.markdown(CSS, unsafe_allow_html=True)
