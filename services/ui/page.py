"""What every live page does: one call for the setup each page would repeat, one for its live part.

A live page runs inside ``app.py``'s navigation, uses the process's runtime
and its session's queue, adds the app's styles and says which streams it
wants; its live part is a fragment that reruns on a timer: drain the
session's queue (no I/O), show the status line, draw.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import streamlit as st

from backend.config import DEFAULT_INTERVALS, DEFAULT_SYMBOLS
from services.feed.book import Stream
from services.feed.queue import SessionQueue
from services.feed.status import FeedStatus
from services.ui.entry import require_entry
from services.ui.runtime import Runtime, runtime, session_queue
from services.ui.status import show_status
from services.ui.theme import apply_theme


@dataclass(frozen=True)
class LivePage:
    """One run of a live page: its name (shown in the session table), the runtime, the session's queue."""

    name: str
    rt: Runtime
    queue: SessionQueue

    def want(self, streams: Iterable[Stream], *, stats: bool = True) -> None:
        """The streams (and the relay's stats: the status line shows the source) this page shows."""
        self.rt.feed.want(self.queue, streams, stats=stats, page=self.name)

    def symbols(self) -> list[str]:
        """The relay's symbols (waiting briefly for the first list), else the default set."""
        return self.rt.feed.wait_symbols(timeout=3.0) or list(DEFAULT_SYMBOLS)

    def intervals(self) -> list[str]:
        return list(self.rt.feed.intervals) or list(DEFAULT_INTERVALS)

    def live(self, draw: Callable[[FeedStatus], None], *, extra: Sequence[str] = (), page_latency: bool = True) -> None:
        """Draw the live part now and on every refresh: drain the queue, the status line, then ``draw(status)``.

        ``page_latency`` adds "to this page" (publish → this rerun) to the status line.
        """
        rt, q = self.rt, self.queue

        @st.fragment(run_every=rt.settings.refresh_s)
        def live() -> None:
            drained = q.drain()
            for alert in drained.alerts:  # fired while this page was open: whatever page it is
                st.toast(f"**Alert** · {alert.message}", icon=":material/notifications_active:")
            draw(show_status(rt, drained if page_latency else None, extra=extra))

        live()


def live_page(name: str) -> LivePage:
    """The shared setup of a live page, first thing in its script."""
    require_entry()
    rt = runtime()
    page = LivePage(name, rt, session_queue())
    apply_theme()
    return page
