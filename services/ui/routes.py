"""Deep links: every page's own URL opens that page; an unknown path opens the overview with a quiet notice.

Streamlit's navigation serves the default page at ``/`` only (its ``url_path``
is always ``""``), so ``/overview`` — the path ``app.py`` declares for it — and
any unknown path get a "Page not found" modal over an inert page. Streamlit has
no hook for this (streamlit/streamlit#8860, #9992), so before ``st.navigation``
resolves the URL, :func:`follow_deep_link` rewrites the run's intended page
name with :func:`route` (pure): the query string is left alone. The server's
part (``services/ui/server.py``) makes this hold on a fresh server's first visit
too, and brings a nested path (``/a/b``) here as one name (``a/b``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import streamlit as st
from streamlit.navigation.page import StreamlitPage
from streamlit.runtime.scriptrunner import get_script_run_ctx


@dataclass(frozen=True)
class Route:
    """Where a requested URL path leads: a page's ``url_path`` (``""`` is the default page) and what was unknown."""

    page: str
    unknown: str | None = None


def route(requested: str | None, paths: Sequence[str], default: str) -> Route:
    """The page a requested URL path opens: its own (case-insensitive), the default's for ``/`` and its own path,
    else the default, naming what was asked for."""
    name = (requested or "").strip().strip("/")
    if not name:
        return Route("")
    for path in paths:
        if path.lower() == name.lower():
            return Route("" if path == default else path)
    return Route("", unknown=name)


def follow_deep_link(pages: Sequence[StreamlitPage]) -> Route:
    """Point this run at the page its URL names (call just before ``st.navigation``); a click in the navigation
    names its page by hash and is left to Streamlit."""
    ctx = get_script_run_ctx()
    if ctx is None:
        return Route("")
    manager = ctx.pages_manager
    if manager.intended_page_script_hash:
        return Route("")
    default = next((p._url_path for p in pages if p._default), "")  # url_path reads "" for the default page
    found = route(manager.intended_page_name, [p._url_path for p in pages], default)
    manager.set_script_intent("", found.page)
    return found


def unknown_path_notice(found: Route, pages: Sequence[StreamlitPage]) -> None:
    """A quiet line above the overview when the link named no page (never Streamlit's modal)."""
    if found.unknown is None:
        return
    asked = found.unknown.replace("`", "")[:80]
    titles = ", ".join(p.title for p in pages)
    with st.container(key="unknown-path"):
        st.caption(f":material/info: There is no page at `/{asked}`, so this is the overview. Pages: {titles}.")
