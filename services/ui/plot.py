"""A live Plotly chart that updates in place: zoom and pan survive every update.

``st.plotly_chart`` gives a chart a new identity whenever its figure changes,
so the browser mounts a new plot on each update and the user's zoom is lost.
This small ``st.components.v2`` component keeps one plot per ``key`` and
calls ``Plotly.react`` on it with each new figure; with a stable
``layout.uirevision`` Plotly keeps what the user zoomed, panned or hid.

Plotly.js itself comes from the ``plotly`` Python package: it is copied once
into the app's ``static/`` folder (served by ``server.enableStaticServing``)
and loaded by the browser once per page.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import streamlit as st

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
STATIC_PLOTLY = ROOT / "static" / "plotly.min.js"

_JS = r"""
function plotlyUrl() {
  const base = window.location.href.split(/[?#]/)[0].replace(/[^/]*$/, "");
  return base + "app/static/plotly.min.js";
}
function loadPlotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!window.__candlesPlotly) {
    // served as text/plain by Streamlit's static route: run it from a Blob URL
    window.__candlesPlotly = fetch(plotlyUrl())
      .then((r) => { if (!r.ok) throw new Error("plotly.min.js: HTTP " + r.status); return r.text(); })
      .then((code) => new Promise((resolve, reject) => {
        const s = document.createElement("script");
        s.src = URL.createObjectURL(new Blob([code], { type: "text/javascript" }));
        s.onload = () => resolve(window.Plotly);
        s.onerror = reject;
        document.head.appendChild(s);
      }));
    window.__candlesPlotly.catch(() => { window.__candlesPlotly = null; });
  }
  return window.__candlesPlotly;
}
function themed(layout, el) {
  const cs = getComputedStyle(el);
  const app = document.querySelector(".stApp") || document.body;
  const bg = getComputedStyle(app).backgroundColor;
  const font = Object.assign({}, layout.font || {}, { color: cs.color });
  const hover = Object.assign({ bgcolor: bg, bordercolor: "rgba(128,128,128,0.5)" }, layout.hoverlabel || {});
  hover.font = Object.assign({}, hover.font || {}, { color: cs.color });
  const modebar = { bgcolor: "rgba(0,0,0,0)", color: "rgba(128,128,128,0.7)", activecolor: cs.color };
  return Object.assign({}, layout, { font, hoverlabel: hover, modebar, autosize: true, width: undefined });
}
function payload(data) {
  // a prebuilt figure arrives as UTF-8 JSON bytes (built once per update, shared by every session)
  if (data instanceof Uint8Array || data instanceof ArrayBuffer) return JSON.parse(new TextDecoder().decode(data));
  return data;
}
export default function (component) {
  const { parentElement } = component;
  const data = payload(component.data);
  let root = parentElement.querySelector(".cs-plot");
  if (!root) {
    root = document.createElement("div");
    root.className = "cs-plot";
    parentElement.appendChild(root);
  }
  const fig = data && data.figure;
  if (!fig) return;
  root.style.height = (fig.layout && fig.layout.height ? fig.layout.height : 450) + "px";
  const meta = (fig.layout && fig.layout.meta) || {};
  loadPlotly()
    .then((Plotly) => Plotly.react(root, fig.data, themed(fig.layout || {}, parentElement),
                                   Object.assign({ responsive: true, displaylogo: false }, data.config || {})))
    .then(() => {
      root.dataset.renderedAt = String(Date.now());
      if (meta.event_time != null) root.dataset.eventTime = String(meta.event_time);
      if (meta.seq != null) root.dataset.seq = String(meta.seq);
      root.dispatchEvent(new CustomEvent("candles:drawn", { detail: meta, bubbles: true }));
    })
    .catch((err) => { root.textContent = "The chart could not be drawn: " + err; });
}
"""

_CSS = ".cs-plot { width: 100%; }"

CANDLES_CONFIG: dict[str, Any] = {
    "displaylogo": False,
    "scrollZoom": True,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d", "toImage"],
}


def ensure_plotly_js(target: Path = STATIC_PLOTLY) -> Path | None:
    """Copy plotly.min.js from the plotly package into ``static/`` when missing or stale."""
    import plotly

    source = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
    try:
        if not target.exists() or target.stat().st_size != source.stat().st_size:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp")
            shutil.copyfile(source, tmp)
            tmp.replace(target)
        return target
    except OSError as exc:
        log.error("could not provide plotly.min.js at %s: %s", target, exc)
        return None


@st.cache_resource(show_spinner=False)
def _component() -> Any:
    ensure_plotly_js()
    return st.components.v2.component("candlestream_plot", js=_JS, css=_CSS, isolate_styles=False)


def encode_plot(figure: dict[str, Any], config: dict[str, Any] | None = None) -> bytes:
    """A figure and its Plotly config as the bytes :func:`live_plot` sends (encode once, send to many)."""
    return json.dumps({"figure": figure, "config": config or {}}, separators=(",", ":")).encode()


def live_plot(plot: bytes, *, key: str) -> None:
    """Draw an :func:`encode_plot` payload in the plot kept under ``key``, updating it in place.

    Bytes go to the browser as they are: a session's rerun neither serialises nor hashes the figure again.
    """
    _component()(data=plot, key=key, height="content")
