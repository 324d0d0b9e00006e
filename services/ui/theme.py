"""The page styles the app adds to Streamlit's theme: tiles, status line, chart legend, alert badges and tables.

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
.cs-flat { color: #8a919e; background: rgba(138,145,158,0.14); }
.cs-up-text { color: #26a69a; } .cs-down-text { color: #ef5350; } .cs-flat-text { color: inherit; }
.cs-tile > .cs-price { font-size: 1.65rem; font-weight: 700; margin: 4px 0 2px; line-height: 1.2; }
.cs-spark { position: relative; margin: 2px -2px 4px; }
.cs-spark svg { display: block; }
.cs-foot { display: flex; justify-content: space-between; font-size: .76rem; opacity: .85; gap: 6px;
  white-space: nowrap; }
.cs-foot em { font-style: normal; opacity: .55; margin-right: 5px; }
.cs-plot { width: 100%; }
.cs-cells { display: grid; gap: 1rem; }
.cs-cells.cs-cols-3 { grid-template-columns: repeat(3, minmax(0, 1fr)); }
.cs-status { display: flex; flex-wrap: wrap; gap: 18px; align-items: center; font-size: .85rem; opacity: .92; }
.cs-dot { display: inline-block; width: 8px; height: 8px; border-radius: 50%; margin-right: 6px; }
.cs-dot.live { background: #26a69a; box-shadow: 0 0 0 3px rgba(38,166,154,0.25); }
.cs-dot.down { background: #ef5350; box-shadow: 0 0 0 3px rgba(239,83,80,0.25); }
.cs-dot.wait { background: #f0b90b; box-shadow: 0 0 0 3px rgba(240,185,11,0.25); }
.cs-muted { opacity: .6; }
.cs-legend { font-size: .9rem; font-variant-numeric: tabular-nums; display: flex; flex-wrap: wrap; gap: 14px;
  align-items: baseline; }
.cs-legend .cs-big { font-size: 1.7rem; font-weight: 700; }
.cs-legend i { font-style: normal; }
.cs-legend em { font-style: normal; opacity: .55; margin-right: 3px; }
.cs-small { font-size: .8rem; }
.cs-badge { display: inline-block; font-size: .72rem; font-weight: 700; padding: 1px 8px; border-radius: 999px;
  letter-spacing: .02em; vertical-align: 1px; margin-left: 4px; }
.cs-badge-armed { color: #26a69a; background: rgba(38,166,154,0.15); }
.cs-badge-fired { color: #d49f00; background: rgba(240,185,11,0.16); }
.cs-badge-muted { color: rgba(128,128,128,0.95); background: rgba(128,128,128,0.14); }
.cs-rule { line-height: 1.5; padding: 2px 0 4px; } .cs-cond { font-size: 1rem; font-weight: 600; }
.cs-fires { font-variant-numeric: tabular-nums; line-height: 1.35; }
.cs-hint { font-size: .85rem; opacity: .75; padding-bottom: .55rem; }
.cs-field-error { color: #ef5350; font-size: .82rem; margin: -.4rem 0 .4rem; }
.cs-table { width: 100%; border-collapse: collapse; font-size: .85rem; font-variant-numeric: tabular-nums; }
.cs-table th { text-align: left; font-weight: 600; opacity: .6; font-size: .75rem; text-transform: uppercase;
  letter-spacing: .04em; padding: 6px 8px; border-bottom: 1px solid rgba(128,128,128,0.25); }
.cs-table td { padding: 7px 8px; border-bottom: 1px solid rgba(128,128,128,0.12); vertical-align: top; }
.cs-table tr:hover td { background: rgba(128,128,128,0.06); }
.cs-num { text-align: right; } .cs-nowrap { white-space: nowrap; }
.cs-table td.cs-msg { min-width: 200px; }
.cs-table td.cs-deliv { min-width: 230px; max-width: 320px; overflow-wrap: anywhere; }
/* Narrow screens: the chart controls share rows at their natural widths, without labels, so the chart stays on
   the first screen; the legend keeps price and change. */
@media (max-width: 640px) {
  .cs-cells.cs-cols-3 { grid-template-columns: minmax(0, 1fr); }
  .st-key-chart-controls [data-testid="stHorizontalBlock"] { flex-wrap: wrap; gap: .5rem; }
  .st-key-chart-controls [data-testid="stColumn"] { flex: 1 1 auto !important; width: auto !important;
    min-width: 0 !important; }
  .st-key-chart-controls [data-testid="stWidgetLabel"] { display: none; }
  .cs-legend { gap: 8px; }
  .cs-legend .cs-big { font-size: 1.3rem; }
  .cs-legend i { display: none; }
}
</style>
"""


def apply_theme() -> None:
    """Add the app's styles to the page (every page, first thing)."""
    st.markdown(CSS, unsafe_allow_html=True)
