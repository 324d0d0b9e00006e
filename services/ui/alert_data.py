"""Alert rules and fired alerts from the relay's REST API, cached for every session of the process.

Each list is fetched again when the listener has seen a new alert (its ``seen`` key moves) or after a
short TTL (rule changes made elsewhere, delivery results), never on every rerun: between two changes a
page's live fragment reads the cached answer and does no I/O. Actions (create, enable, delete) go to the
relay at once and then :func:`forget` drops the cached lists.
"""

from __future__ import annotations

import streamlit as st

from backend.models import AlertRule
from services.charts.marks import AlertMark, marks_of
from services.client import EventsPage, RelayClient
from services.feed.book import Stream
from services.feed.feed import Feed
from services.ui.runtime import runtime

RULES_TTL_S = 5.0
EVENTS_TTL_S = 5.0
MARKS_TTL_S = 60.0  # the markers follow the listener's alerts; the TTL only covers a missed one
MARKS_LIMIT = 500

Seen = tuple[int, int]


def alerts_seen(feed: Feed, stream: Stream | None = None) -> Seen:
    """How many alerts (of ``stream``, or of all) the listener holds, and the newest one's time: a cache key."""
    with feed.state.lock:
        alerts = list(feed.listener.alerts)
    if stream is not None:
        alerts = [a for a in alerts if (a.symbol, a.interval) == stream]
    return len(alerts), max((a.fired_at for a in alerts), default=0)


def client() -> RelayClient:
    return runtime().feed.client


@st.cache_data(ttl=RULES_TTL_S, max_entries=16, show_spinner=False)
def rules(seen: Seen) -> list[AlertRule]:
    """Every rule, oldest first (raises :class:`~services.client.RelayError`; errors are not cached)."""
    return client().alert_rules()


@st.cache_data(ttl=EVENTS_TTL_S, max_entries=128, show_spinner=False)
def events(seen: Seen, *, rule_id: int | None, symbol: str | None, cursor: str | None, limit: int = 50) -> EventsPage:
    """One page of fired alerts, newest first, for the history's filters."""
    return client().alert_events(rule_id=rule_id, symbol=symbol, cursor=cursor, limit=limit)


def stream_marks(feed: Feed, stream: Stream) -> tuple[AlertMark, ...]:
    """The markers of the alerts fired on one stream (the newest :data:`MARKS_LIMIT`), for its chart."""
    return _stream_marks(stream[0], stream[1], alerts_seen(feed, stream))


@st.cache_data(ttl=MARKS_TTL_S, max_entries=256, show_spinner=False)
def _stream_marks(symbol: str, interval: str, seen: Seen) -> tuple[AlertMark, ...]:
    return marks_of(client().alert_events(symbol=symbol, interval=interval, limit=MARKS_LIMIT).items)


def forget() -> None:
    """Drop the cached lists after a change made here, so the next draw shows it."""
    rules.clear()
    events.clear()
    _stream_marks.clear()
