"""The app's live component: a Plotly chart, or a grid of HTML cells (the overview's tiles), updated in place.

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

The overview's tiles go the same way (:func:`live_cells`): the grid's HTML
is sent once, then only the splices of the tiles' text that changed
(:mod:`services.charts.splice`): a price, a pill, a sparkline's end.

How the component's code and Plotly.js reach the browser is
:mod:`services.ui.component_code`'s.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import streamlit as st

from services.charts.delta import figure_patch
from services.charts.splice import cells_patch
from services.ui.component_code import component

CANDLES_CONFIG: dict[str, Any] = {
    "displaylogo": False,
    "scrollZoom": True,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d", "toImage"],
}


def encode_plot(figure: dict[str, Any], config: dict[str, Any] | None = None) -> bytes:
    """A figure and its Plotly config as the bytes :func:`live_plot` sends (encode once, send to many)."""
    return _json({"figure": figure, "config": config or {}})


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def live_plot(plot: bytes, *, key: str) -> None:
    """Draw an :func:`encode_plot` payload in the plot kept under ``key``, updating it in place.

    Bytes go to the browser as they are: a session's rerun neither serialises nor hashes the figure again.
    """
    component()(data=plot, key=key, height="content")


@dataclass(frozen=True, eq=False)
class Frame:
    """One version of what a live component shows, shared by every session: a token naming it, the content a patch
    is computed from (a figure, the cells), and its whole payload."""

    token: int
    content: Any
    full: bytes


PlotFrame = Frame  # a live figure's version (content: the figure)

_tokens = itertools.count(1)


def new_frame(content: Any, body: dict[str, Any]) -> Frame:
    """A new version (tokens are unique in the process: a browser can name what it holds); ``body`` is its payload."""
    token = next(_tokens)
    return Frame(token, content, _json({**body, "token": token}))


def plot_frame(figure: dict[str, Any], config: dict[str, Any] | None = None) -> Frame:
    """A new version of a live figure."""
    return new_frame(figure, {"figure": figure, "config": config or {}})


class PatchCache:
    """Encoded patches per (held token, new token): sessions a refresh apart share them, as they share frames.

    ``diff(old content, new content)`` is the patch, or None: send the whole frame.
    """

    def __init__(self, diff: Callable[[Any, Any], Any] = figure_patch, max_entries: int = 512) -> None:
        self.diff = diff
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[int, int], bytes | None] = OrderedDict()
        self._guard = threading.Lock()

    def update(self, held: Frame | None, frame: Frame) -> bytes:
        """What a browser holding ``held`` gets to show ``frame``: nothing new, a patch, or the whole frame."""
        if held is None:
            return frame.full
        if held.token == frame.token:
            return _json({"base": frame.token, "token": frame.token})
        key = (held.token, frame.token)
        with self._guard:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key] or frame.full
        patch = self.diff(held.content, frame.content)
        encoded = None if patch is None else _json({"base": held.token, "token": frame.token, "patch": patch})
        if encoded is not None and len(encoded) * 2 > len(frame.full):
            encoded = None  # most of it changed: the whole frame is as cheap and simpler to apply
        with self._guard:
            self._entries[key] = encoded
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return encoded or frame.full


PATCHES = PatchCache()


def send_frame(frame: Frame, *, key: str, identity: Hashable, delta: bool, name: str, patches: PatchCache) -> None:
    """Show ``frame`` in the component ``name`` kept under ``key``, sending only what changed since this session's
    last one.

    The session remembers which frame it sent last for ``identity`` (what the component shows: for a chart its
    symbol, interval, indicators, range, view); another identity, ``delta=False``, or the browser asking (it missed
    an update, or the component was mounted afresh) sends the whole frame once.
    """
    state_key = f"plot-held:{key}"
    last = st.session_state.get(state_key)
    held = last[1] if delta and last is not None and last[0] == identity else None
    payload = patches.update(held, frame)
    st.session_state[state_key] = (identity, frame)

    def resync() -> None:
        st.session_state.pop(state_key, None)

    component(name)(data=payload, key=key, height="content", on_resync_change=resync)


def live_figure(frame: Frame, *, key: str, identity: Hashable, delta: bool = True) -> None:
    """Draw the figure ``frame`` in the plot kept under ``key`` (see :func:`send_frame`)."""
    send_frame(frame, key=key, identity=identity, delta=delta, name="plot", patches=PATCHES)


def _cells_diff(old: tuple[tuple[str, ...], str], new: tuple[tuple[str, ...], str]) -> dict[str, Any] | None:
    return cells_patch(old[0], new[0]) if old[1] == new[1] else None


CELL_PATCHES = PatchCache(_cells_diff)


def cells_frame(cells: Sequence[str], cls: str = "") -> Frame:
    """A new version of a grid of HTML cells (``cls``: the grid's class, e.g. ``cs-cols-3``).

    Sent as ASCII (other characters as character references), so that the splices' offsets count the same
    characters in Python and in the browser's JavaScript (UTF-16).
    """
    text = tuple(c.encode("ascii", "xmlcharrefreplace").decode() for c in cells)
    return new_frame((text, cls), {"cells": list(text), "cls": cls})


def live_cells(frame: Frame, *, key: str, identity: Hashable, delta: bool = True) -> None:
    """Show the cells ``frame`` in the grid kept under ``key``: once whole, then the splices of what changed."""
    send_frame(frame, key=key, identity=identity, delta=delta, name="cells", patches=CELL_PATCHES)
