"""A live Plotly chart that updates in place: zoom and pan survive every update.

``st.plotly_chart`` gives a chart a new identity whenever its figure changes,
so the browser mounts a new plot on each update and the user's zoom is lost.
This small ``st.components.v2`` component keeps one plot per ``key`` and
calls ``Plotly.react`` on it with each new figure; with a stable
``layout.uirevision`` Plotly keeps what the user zoomed, panned or hid.

A live chart (:func:`live_figure`) is sent whole once; after that the browser
keeps the figure and each rerun sends only what changed since the version it
holds (a patch from :mod:`services.charts.delta`, a few hundred bytes for a
moving candle). Every version has a token; a patch names the token it applies
to, and a browser holding another one (it missed an update, or the plot was
mounted afresh) asks for the whole figure again.

Plotly.js itself comes from the ``plotly`` Python package: it is copied once
into the app's ``static/`` folder (served by ``server.enableStaticServing``)
and loaded by the browser once per page.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import shutil
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from services.charts.delta import figure_patch

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
STATIC_PLOTLY = ROOT / "static" / "plotly.min.js"

# The component's code proper: served from ``static/`` and loaded once per page, because an inline
# ``js=`` is sent again with every rerun's element (6 KB a second per open chart).
_IMPL_JS = r"""
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
function typedArray(spec) {
  // Plotly's typed-array form {dtype, bdata} as a JS typed array (what a patch's tails are spliced into)
  const bin = atob(spec.bdata);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  // u1 (a volume bar's up/down) as plain numbers: Plotly's colour scales take no Uint8Array
  return spec.dtype === "u1" ? Array.from(bytes) : new Float64Array(bytes.buffer);
}
function isTyped(v) { return v && typeof v === "object" && typeof v.bdata === "string" && typeof v.dtype === "string"; }
function decodeTraces(data) {
  return (data || []).map((t) => {
    const out = {};
    for (const [k, v] of Object.entries(t)) {
      if (isTyped(v)) out[k] = typedArray(v);
      else if (v && typeof v === "object" && !Array.isArray(v)) {
        out[k] = {};
        for (const [kk, vv] of Object.entries(v)) out[k][kk] = isTyped(vv) ? typedArray(vv) : vv;
      } else out[k] = v;
    }
    return out;
  });
}
function spliced(old, drop, keep, tail) {
  if (Array.isArray(old)) return old.slice(drop, drop + keep).concat(tail);
  const out = new old.constructor(keep + tail.length);
  out.set(old.subarray(drop, drop + keep), 0);
  out.set(tail, keep);
  return out;
}
function patchedValue(old, p) {
  // services/charts/delta.py patched_value
  if ("$set" in p) return p.$set;
  if ("$merge" in p) {
    const out = Object.assign({}, old);
    for (const [k, v] of Object.entries(p.$merge)) out[k] = patchedValue(old[k], v);
    return out;
  }
  const out = old.slice();
  for (const [i, v] of Object.entries(p.$items)) out[Number(i)] = patchedValue(old[Number(i)], v);
  return out;
}
function applyPatch(held, patch) {
  // services/charts/delta.py apply_patch, on decoded arrays
  const data = held.data.map((trace, i) => {
    const p = patch.traces[String(i)];
    if (!p) return trace;
    const out = Object.assign({}, trace);
    for (const [path, tail] of Object.entries(p.tail)) {
      const [a, b] = path.split(".");
      if (b === undefined) out[a] = spliced(trace[a], p.drop, p.keep, typedArray(tail));
      else out[a] = Object.assign({}, out[a], { [b]: spliced(trace[a][b], p.drop, p.keep, typedArray(tail)) });
    }
    return Object.assign(out, p.set);
  });
  const layout = Object.assign({}, held.layout);
  for (const k of patch.layout_removed) delete layout[k];
  for (const [k, p] of Object.entries(patch.layout)) layout[k] = patchedValue(layout[k], p);
  return { data, layout };
}
export default function (component) {
  const { parentElement, setTriggerValue } = component;
  const data = payload(component.data);
  let root = parentElement.querySelector(".cs-plot");
  if (!root) {
    root = document.createElement("div");
    root.className = "cs-plot";
    parentElement.appendChild(root);
  }
  if (!data) return;
  // what this plot holds: a full figure replaces it; a patch applies only on the version it was made from
  let held = root.__csHeld || null;
  const counted = data.figure ? "fulls" : "patches";  // what this plot was sent: tests and benchmarks read them
  if (data.figure) {
    held = { token: data.token == null ? null : data.token, data: decodeTraces(data.figure.data),
             layout: data.figure.layout || {}, config: data.config || {} };
  } else if (data.token != null) {
    if (held && held.token === data.token) return;  // already applied, or nothing changed since
    if (!held || held.token !== data.base || !data.patch) {  // missed an update, or a fresh mount
      root.dataset.asks = String(Number(root.dataset.asks || 0) + 1);
      if (setTriggerValue) setTriggerValue("resync", held ? held.token : null);  // ask for the whole figure
      return;
    }
    held = Object.assign(applyPatch(held, data.patch), { token: data.token, config: held.config });
  } else return;
  root.__csHeld = held;
  root.dataset[counted] = String(Number(root.dataset[counted] || 0) + 1);
  const layout = held.layout;
  root.style.height = (layout.height ? layout.height : 450) + "px";
  const meta = layout.meta || {};
  // Plotly writes into what it is given (uids, autoranges): give it copies, as a freshly parsed figure would be
  loadPlotly()
    .then((Plotly) => Plotly.react(root, structuredClone(held.data), themed(structuredClone(layout), parentElement),
                                   Object.assign({ responsive: true, displaylogo: false }, held.config)))
    .then(() => {
      root.dataset.renderedAt = String(Date.now());
      root.dataset.token = held.token == null ? "" : String(held.token);
      if (meta.event_time != null) root.dataset.eventTime = String(meta.event_time);
      if (meta.seq != null) root.dataset.seq = String(meta.seq);
      root.dispatchEvent(new CustomEvent("candles:drawn", { detail: meta, bubbles: true }));
    })
    .catch((err) => { root.textContent = "The chart could not be drawn: " + err; });
}
"""

STATIC_IMPL = ROOT / "static" / "candlestream_plot.js"
_IMPL_VERSION = hashlib.sha256(_IMPL_JS.encode()).hexdigest()[:12]

# What each rerun sends: load the code above once per page (from a Blob URL: Streamlit serves static files as
# text/plain), then hand it every update in order.
_JS = (
    r"""export default function (c) {
  const w = window, u = location.href.split(/[?#]/)[0].replace(/[^/]*$/, "") + "app/static/candlestream_plot.js?v=V";
  w.__csPlot = w.__csPlot || fetch(u).then((r) => r.ok ? r.text() : Promise.reject(new Error("HTTP " + r.status)))
    .then((t) => import(URL.createObjectURL(new Blob([t], { type: "text/javascript" })))).then((m) => m.default)
    .catch((e) => { w.__csPlot = null; throw e; });
  w.__csPlot.then((d) => d(c), (e) => { c.parentElement.textContent = "The chart could not be drawn: " + e; });
}"""
).replace("=V", "=" + _IMPL_VERSION)

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


def ensure_impl_js(target: Path = STATIC_IMPL) -> Path | None:
    """Write the component's code into ``static/`` when missing or different."""
    try:
        if not target.exists() or target.read_text() != _IMPL_JS:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp")
            tmp.write_text(_IMPL_JS)
            tmp.replace(target)
        return target
    except OSError as exc:
        log.error("could not provide the chart's code at %s: %s", target, exc)
        return None


@st.cache_resource(show_spinner=False)
def _component() -> Any:
    ensure_plotly_js()
    ensure_impl_js()
    return st.components.v2.component("candlestream_plot", js=_JS, css=_CSS, isolate_styles=False)


def encode_plot(figure: dict[str, Any], config: dict[str, Any] | None = None, token: int | None = None) -> bytes:
    """A figure and its Plotly config as the bytes :func:`live_plot` sends (encode once, send to many)."""
    body: dict[str, Any] = {"figure": figure, "config": config or {}}
    if token is not None:
        body["token"] = token
    return _json(body)


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def live_plot(plot: bytes, *, key: str) -> None:
    """Draw an :func:`encode_plot` payload in the plot kept under ``key``, updating it in place.

    Bytes go to the browser as they are: a session's rerun neither serialises nor hashes the figure again.
    """
    _component()(data=plot, key=key, height="content")


@dataclass(frozen=True, eq=False)
class PlotFrame:
    """One version of a live figure, shared by every session: a token naming it, the figure, its full payload."""

    token: int
    figure: dict[str, Any]
    full: bytes


_tokens = itertools.count(1)


def plot_frame(figure: dict[str, Any], config: dict[str, Any] | None = None) -> PlotFrame:
    """A new version of a live figure (tokens are unique in the process: a browser can name what it holds)."""
    token = next(_tokens)
    return PlotFrame(token, figure, encode_plot(figure, config, token))


class PatchCache:
    """Encoded patches per (held token, new token): sessions a refresh apart share them, as they share figures."""

    def __init__(self, max_entries: int = 512) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[int, int], bytes | None] = OrderedDict()
        self._guard = threading.Lock()

    def update(self, held: PlotFrame | None, frame: PlotFrame) -> bytes:
        """What a browser holding ``held`` gets to show ``frame``: nothing new, a patch, or the whole figure."""
        if held is None:
            return frame.full
        if held.token == frame.token:
            return _json({"base": frame.token, "token": frame.token})
        key = (held.token, frame.token)
        with self._guard:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key] or frame.full
        patch = figure_patch(held.figure, frame.figure)
        encoded = None if patch is None else _json({"base": held.token, "token": frame.token, "patch": patch})
        if encoded is not None and len(encoded) * 2 > len(frame.full):
            encoded = None  # most of the figure changed: the whole figure is as cheap and simpler to apply
        with self._guard:
            self._entries[key] = encoded
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return encoded or frame.full


PATCHES = PatchCache()


def live_figure(frame: PlotFrame, *, key: str, identity: Hashable, delta: bool = True) -> None:
    """Draw ``frame`` in the plot kept under ``key``, sending only what changed since this session's last one.

    The session remembers which frame it sent last for ``identity`` (what the chart shows: symbol, interval,
    indicators, range, view); another identity, ``delta=False``, or the browser asking (it missed an update,
    or the plot was mounted afresh) sends the whole figure once.
    """
    state_key = f"plot-held:{key}"
    last = st.session_state.get(state_key)
    held = last[1] if delta and last is not None and last[0] == identity else None
    payload = PATCHES.update(held, frame)
    st.session_state[state_key] = (identity, frame)

    def resync() -> None:
        st.session_state.pop(state_key, None)

    _component()(data=payload, key=key, height="content", on_resync_change=resync)
