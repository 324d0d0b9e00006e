"""The status line at the top of every live page, and the plain message while the relay is down."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

import streamlit as st

from backend.models import now_ms
from services.charts.fmt import fmt_ms
from services.feed.queue import Drained
from services.feed.status import FeedStatus
from services.ui.runtime import Runtime


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
    extra = [*extra, *source_note(rt), *autostart_note(rt)]
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


def source_note(rt: Runtime) -> list[str]:
    """The ingest's source, and a live exchange feed's state, from the relay's latest stats."""
    sample = rt.feed.stats
    return source_status(sample.stats.get("ingest") if sample is not None and sample.stats else None)


def source_status(ingest: Mapping[str, Any] | None) -> list[str]:
    """The status line's part naming the source (and a feed's state) from the ingest's stats. Pure."""
    if not ingest:
        return []
    source = str(ingest.get("source", ""))
    text = escape(source)
    if source == "simulator":
        hint = "a synthetic market; for a real one: make run SOURCE=exchange:binance SYMBOLS=BTCUSDT,ETHUSDT"
        return [f'<span class="cs-muted" data-testid="source-status" title="{escape(hint)}">source {text}</span>']
    feed = ingest.get("feed")
    if isinstance(feed, Mapping):
        state = str(feed.get("state", ""))
        dot = "live" if state == "connected" else ("down" if state == "disconnected" else "wait")
        title = escape(str(feed.get("error") or f"{feed.get('reconnects', 0)} reconnects"))
        text += f' <span class="cs-dot {dot}"></span><span title="{title}">{escape(state)}</span>'
    return [f'<span class="cs-muted" data-testid="source-status">source {text}</span>']


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
