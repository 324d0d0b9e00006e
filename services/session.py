"""Streamlit glue: the process's feed and renderers, the session's queue, shared page parts.

Process-wide (``st.cache_resource``): the autostart check, the :class:`Feed`
and the renderers. Per session (``st.cache_resource(scope="session")``): the
:class:`SessionQueue`, released with the session.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from backend.config import DEFAULT_INTERVALS, DEFAULT_SYMBOLS
from backend.models import now_ms
from services.autostart import AutostartResult, LocalBackend, ensure_relay
from services.feed import Drained, Feed, FeedStatus, SessionQueue
from services.fmt import fmt_ms
from services.settings import UiSettings, ui_settings
from services.views import TILE_CSS, ChartRenderer, RenderCache, TileRenderer


@dataclass
class Runtime:
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


# ---------------------------------------------------------------- page parts

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


def page_setup() -> None:
    st.markdown(TILE_CSS, unsafe_allow_html=True)


def known_symbols(feed: Feed) -> list[str]:
    """The relay's symbols (waiting briefly for the first list), else the default set."""
    return feed.wait_symbols(timeout=3.0) or list(DEFAULT_SYMBOLS)


def known_intervals(feed: Feed) -> list[str]:
    return list(feed.intervals) or list(DEFAULT_INTERVALS)


def page_latency_ms(drained: Drained) -> float | None:
    """Publish → this rerun, for the newest candle the session just took from its queue."""
    newest = max((c.emitted_at for c in drained.candles if c.emitted_at), default=0)
    return max(0.0, now_ms() - newest) if newest else None


def status_html(status: FeedStatus, *, page_ms: float | None = None, extra: Sequence[str] = ()) -> str:
    """The one-line connection status shown at the top of every page."""
    if status.live:
        lat = status.latency_ms
        parts = [
            '<span><span class="cs-dot live"></span><b>Live</b></span>',
            f'<span class="cs-muted">relay {escape(status.relay_url)}</span>',
            f"<span>feed latency <b>{fmt_ms(lat.get('p50'))}</b> p50 · {fmt_ms(lat.get('p99'))} p99</span>",
        ]
        if page_ms is not None:
            parts.append(f"<span>to this page <b>{fmt_ms(page_ms)}</b></span>")
    elif status.state == "connecting":
        parts = [
            f'<span><span class="cs-dot wait"></span>Connecting to the relay at {escape(status.relay_url)}…</span>'
        ]
    else:
        parts = ['<span><span class="cs-dot down"></span><b>Relay down</b></span>']
    parts.extend(extra)
    return f'<div class="cs-status" data-testid="feed-status">{"".join(parts)}</div>'


def relay_down_message(status: FeedStatus) -> str:
    """The plain sentence every page shows while the relay is unreachable."""
    since = ""
    if status.down_since and time.time() - status.down_since >= 1:
        since = f" for {_ago(time.time() - status.down_since)}"
    retry = ""
    if status.next_attempt_at:
        wait = status.next_attempt_at - time.time()
        retry = f" Next attempt in {wait:.0f} s;" if wait >= 1 else " Reconnecting now;"
    reason = f" ({status.error})" if status.error else ""
    return (
        f"**The relay at {status.relay_url} is not answering**{reason}{since}.{retry} "
        "this page reconnects and catches up by itself when it is back."
    )


def show_status(rt: Runtime, drained: Drained | None = None, *, extra: Sequence[str] = ()) -> FeedStatus:
    """Status line, and the relay-down message when it applies (call inside the live fragment)."""
    status = rt.feed.status()
    page_ms = page_latency_ms(drained) if drained is not None else None
    extra = [*extra, *autostart_note(rt)]
    st.markdown(status_html(status, page_ms=page_ms, extra=extra), unsafe_allow_html=True)
    if status.state == "down":
        st.error(relay_down_message(status), icon=":material/cloud_off:")
    if rt.settings.error:
        st.warning(rt.settings.error)
    return status


def autostart_banner(rt: Runtime) -> None:
    """A small note when this app started the backend itself (once per session as a toast, then in the status)."""
    a = rt.autostart
    if a.error:
        st.error(a.error, icon=":material/error:")
    elif a.started and not st.session_state.get("_autostart_toast"):
        st.session_state["_autostart_toast"] = True
        st.toast(a.message, icon=":material/rocket_launch:", duration="long")


def autostart_note(rt: Runtime) -> list[str]:
    a = rt.autostart
    if a.started and not a.error:
        return [
            f'<span class="cs-muted" title="{escape(a.message)}">local backend started by this app (pid {a.pid})</span>'
        ]
    return []


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def query_choice(name: str, options: Sequence[str], default: str) -> str:
    """A query parameter constrained to ``options`` (case-insensitive), else the default."""
    raw = st.query_params.get(name)
    if raw is None:
        return default
    for opt in options:
        if opt.lower() == str(raw).lower():
            return opt
    return default


def set_query(**values: str | None) -> None:
    """Write the view into the URL so it can be shared; None removes a parameter."""
    for name, value in values.items():
        if value is None or value == "":
            if name in st.query_params:
                del st.query_params[name]
        elif st.query_params.get(name) != value:
            st.query_params[name] = value
