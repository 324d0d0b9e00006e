"""How the live component's code reaches the browser: Plotly.js and the component's JS, as files in ``static/``.

Plotly.js itself comes from the ``plotly`` Python package: it is copied once
into the app's ``static/`` folder (served by ``server.enableStaticServing``)
and loaded by the browser once per page, as is the components' code, which
lives here as text and is written out (versioned by its hash) when it
changes. Streamlit loads each component from a small entry module named
after that version, registered as the asset folder of a component package
(:func:`register_asset_folder`); when Streamlit's internals refuse that, an
inline loader (:func:`loader`) fetches the same code. :func:`component`
gives the Streamlit component of either kind.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from typing import Any

import streamlit as st

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
  // Plotly's typed-array form {dtype, bdata} as a JS typed array (what a patch's tails are spliced into); a short
  // tail comes as a plain list (services/charts/delta.py encode_tail), spliced as it is
  if (Array.isArray(spec)) return spec;
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
function advance(root, data, setTriggerValue, whole, patched) {
  // What the component holds after `data`, or null when there is nothing to draw: a whole version replaces it;
  // a patch applies only on the version it was made from; a browser holding another asks for the whole one.
  const held = root.__csHeld || null;
  let next, counted;  // what it was sent, counted: tests and benchmarks read them
  if (data.base === undefined) {
    next = whole(data);
    counted = "fulls";
  } else {
    if (held && held.token === data.token) return null;  // already applied, or nothing changed since
    if (!held || held.token !== data.base || !data.patch) {  // missed an update, or a fresh mount
      root.dataset.asks = String(Number(root.dataset.asks || 0) + 1);
      if (setTriggerValue) setTriggerValue("resync", held ? held.token : null);  // ask for the whole version
      return null;
    }
    next = patched(held, data.patch);
    counted = "patches";
  }
  next.token = data.token == null ? null : data.token;
  root.__csHeld = next;
  root.dataset[counted] = String(Number(root.dataset[counted] || 0) + 1);
  return next;
}
function mount(parentElement, cls) {
  let root = parentElement.querySelector("." + cls);
  if (!root) {
    root = document.createElement("div");
    root.className = cls;
    parentElement.appendChild(root);
  }
  return root;
}
export function plot(component) {
  const { parentElement, setTriggerValue } = component;
  const data = payload(component.data);
  const root = mount(parentElement, "cs-plot");
  if (!data) return;
  const held = advance(root, data, setTriggerValue,
    (d) => ({ data: decodeTraces(d.figure.data), layout: d.figure.layout || {}, config: d.config || {} }),
    (h, p) => Object.assign(applyPatch(h, p), { config: h.config }));
  if (!held) return;
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
function splicedText(text, splices) {
  // services/charts/splice.py apply_text_patch (offsets into the old text: the last splice first)
  for (let k = splices.length - 1; k >= 0; k--) {
    const [start, end, insert] = splices[k];
    text = text.slice(0, start) + insert + text.slice(end);
  }
  return text;
}
export function cells(component) {
  const { parentElement, setTriggerValue } = component;
  const data = payload(component.data);
  const root = mount(parentElement, "cs-cells");
  if (!data) return;
  const before = root.__csHeld || null;
  const held = advance(root, data, setTriggerValue,
    (d) => ({ cells: d.cells, cls: d.cls || "" }),
    (h, p) => ({ cells: h.cells.map((t, i) => (p[String(i)] ? splicedText(t, p[String(i)]) : t)), cls: h.cls }));
  if (!held) return;
  if (!before || before.cls !== held.cls || before.cells.length !== held.cells.length) {
    root.className = "cs-cells " + held.cls;
    root.innerHTML = held.cells.map((c) => '<div class="cs-cell">' + c + "</div>").join("");
  } else {
    // only the cells that changed: the rest of the grid (and the pointer over it) is left alone
    held.cells.forEach((c, i) => { if (c !== before.cells[i]) root.children[i].innerHTML = c; });
  }
  root.dataset.token = held.token == null ? "" : String(held.token);
  root.dispatchEvent(new CustomEvent("candles:cells", { bubbles: true }));
}
"""

STATIC_IMPL = ROOT / "static" / "candlestream_plot.js"
_IMPL_VERSION = hashlib.sha256(_IMPL_JS.encode()).hexdigest()[:12]

# What each rerun sends, so kept short: load the code above once per page (from a Blob URL: Streamlit may serve
# static files as text/plain, after the platform's MIME table), then hand it this update (``N``: the component's
# function in it). The newline tells Streamlit this is code, not a file's path.
_LOADER = (
    "export default c=>{\nconst w=window;(w.__cs||=fetch(location.href.split(/[?#]/)[0].replace(/[^/]*$/,'')+"
    "'app/static/candlestream_plot.js?v=V').then(r=>r.text()).then(t=>import(URL.createObjectURL(new Blob([t],"
    "{type:'text/javascript'})))).catch(e=>{w.__cs=0;throw e})).then(m=>m.N(c),e=>{c.parentElement.textContent=e})}"
).replace("=V", "=" + _IMPL_VERSION)


def loader(name: str) -> str:
    """The loader of the component function ``name`` of the code above."""
    return _LOADER.replace("m.N(", f"m.{name}(")


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


COMPONENTS = ("plot", "cells")
PACKAGE = "candlestream"  # the components' names are "candlestream.plot" and "candlestream.cells"


def entry_js(name: str) -> str:
    """The module Streamlit loads for the component ``name``: the code above's function of that name, as its default.

    Named after the code's version, so a browser never keeps an older one (Streamlit serves these files as public).
    """
    return f"export {{ {name} as default }} from './{STATIC_IMPL.name}?v={_IMPL_VERSION}';\n"


def entry_name(name: str) -> str:
    return f"cs-{name}-{_IMPL_VERSION}.js"


def ensure_entries(folder: Path = STATIC_IMPL.parent) -> bool:
    """Write each component's entry module into ``static/`` (and remove the entries of other versions)."""
    try:
        for old in folder.glob("cs-*-*.js"):
            if old.name not in {entry_name(n) for n in COMPONENTS}:
                old.unlink(missing_ok=True)
        for n in COMPONENTS:
            target = folder / entry_name(n)
            if not target.exists() or target.read_text() != entry_js(n):
                tmp = target.with_suffix(".tmp")
                tmp.write_text(entry_js(n))
                tmp.replace(target)
        return True
    except OSError as exc:
        log.error("could not provide the components' entries in %s: %s", folder, exc)
        return False


def register_asset_folder(folder: Path = STATIC_IMPL.parent) -> bool:
    """Declare ``static/`` the components' asset folder, as an installed component package's pyproject.toml would.

    Then each rerun's element names its code's file (a few bytes) instead of carrying the loader (0.4 KB a
    second per live component, a tenth of a page's traffic). Streamlit has no public call for a component
    folder outside an installed package, so this uses its manifest types; when they change, the caller
    falls back to the loader.
    """
    try:
        from streamlit.components.v2.get_bidi_component_manager import get_bidi_component_manager
        from streamlit.components.v2.manifest_scanner import ComponentConfig, ComponentManifest

        manifest = ComponentManifest(PACKAGE, "1", [ComponentConfig(n, folder.name) for n in COMPONENTS])
        get_bidi_component_manager().register_from_manifest(manifest, folder.parent)
        return True
    except Exception as exc:  # Streamlit's internals moved: the loader still works
        log.warning("components served with an inline loader (%s: %s)", type(exc).__name__, exc)
        return False


@st.cache_resource(show_spinner=False)
def component(name: str = "plot") -> Any:
    """The component ``name`` of the code above: ``plot`` (a Plotly chart) or ``cells`` (a grid of HTML cells)."""
    ensure_plotly_js()
    # styled by the page (services/ui/theme.py): a css= here would be sent again with every rerun's element
    if ensure_impl_js() and ensure_entries() and register_asset_folder():
        return st.components.v2.component(f"{PACKAGE}.{name}", js=entry_name(name), isolate_styles=False)
    return st.components.v2.component(f"candlestream_{name}", js=loader(name), isolate_styles=False)
