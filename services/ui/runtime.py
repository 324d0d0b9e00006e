"""The process's runtime and the session's queue, kept by Streamlit's resource cache.

Process-wide (``st.cache_resource``): the autostart check, the
:class:`~services.feed.feed.Feed` and the shared renderers. Per session
(``st.cache_resource(scope="session")``): the
:class:`~services.feed.queue.SessionQueue`, released with the session.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from services.autostart import AutostartResult, LocalBackend, ensure_relay
from services.feed.feed import Feed
from services.feed.queue import SessionQueue
from services.settings import UiSettings, ui_settings
from services.ui.render_cache import RenderCache
from services.ui.renders import ChartRenderer, TileRenderer


@dataclass
class Runtime:
    """What every session of the process shares: settings, the feed, the renderers, the autostarted backend."""

    settings: UiSettings
    feed: Feed
    charts: ChartRenderer
    tiles: TileRenderer
    autostart: AutostartResult
    backend: LocalBackend | None

    def close(self) -> None:
        self.feed.stop(timeout=2.0)
        if self.backend is not None:
            self.backend.stop()


def runtime() -> Runtime:
    """The process's runtime for the current settings (one per relay address)."""
    s = ui_settings()
    return _runtime(s.relay_url, s.token, s.refresh_s, s.autostart, s.error)


def _close_runtime(rt: Runtime) -> None:
    rt.close()


@st.cache_resource(show_spinner="Looking for the relay…", on_release=_close_runtime)
def _runtime(relay_url: str, token: str | None, refresh_s: float, autostart: bool, error: str | None) -> Runtime:
    """Once per server process: start a local backend if needed, then the listener."""
    settings = UiSettings(relay_url, token, refresh_s, autostart, error)
    result, backend = ensure_relay(settings.relay_url, settings.token, enabled=settings.autostart)
    feed = Feed(settings.relay_url, settings.token).start()
    return Runtime(
        settings,
        feed,
        ChartRenderer(feed, RenderCache(min_age_s=min(0.25, settings.refresh_s / 4))),
        TileRenderer(feed, RenderCache(min_age_s=min(0.25, settings.refresh_s / 4))),
        result,
        backend,
    )


def _release_queue(q: SessionQueue) -> None:
    q.close()


@st.cache_resource(scope="session", on_release=_release_queue, show_spinner=False, validate=lambda q: not q.closed)
def session_queue() -> SessionQueue:
    """This session's queue, registered with the feed; released (idempotently) when the session ends."""
    ctx = get_script_run_ctx()
    session_id = ctx.session_id if ctx is not None else uuid.uuid4().hex
    return runtime().feed.register(session_id)
