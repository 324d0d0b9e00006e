"""System: the pipeline's and the relay's figures, and this Streamlit server's own listener.

The relay's ``/api/v1/stats`` and ``/ws/stats`` are polled once a second by the
process's feed worker while any session shows this page; reruns read the last
sample and do no I/O.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import streamlit as st

from backend.embedded import FALLBACK_LABEL
from services.charts.fmt import fmt_compact, fmt_int, fmt_ms, fmt_rate
from services.charts.rates import rates_figure_spec
from services.feed.feed import Feed
from services.feed.rest import StatsSample
from services.feed.status import FeedStatus
from services.ui.page import live_page
from services.ui.plot import encode_plot, live_plot
from services.ui.render_cache import RenderCache
from services.ui.runtime import Runtime

HISTORY_S = 300


@st.cache_resource
def _rates_cache() -> RenderCache:
    return RenderCache(min_age_s=0.5, max_entries=4)


def main() -> None:
    page = live_page("system")
    rt = page.rt
    page.want(set(), stats=True)
    st.markdown("## System")
    st.caption("Pipeline and relay figures from the relay's stats, and this Streamlit server's own listener.")

    def draw(status: FeedStatus) -> None:
        sample = rt.feed.stats
        if sample is None or (sample.stats is None and sample.ws_stats is None):
            if status.live:
                st.info("Waiting for the first figures from the relay…", icon=":material/hourglass_top:")
        else:
            if sample.error:
                st.warning(f"Some figures could not be read: {sample.error}")
            pipeline(sample, rt.feed)
            relay(sample)
        server(rt)

    page.live(draw, page_latency=False)


def _metric(col: Any, label: str, value: str, note: str | None = None, tip: str | None = None) -> None:
    """A bordered figure with an optional neutral note beneath (no arrow, no colour)."""
    col.metric(label, value, note, delta_color="off", delta_arrow="off", border=True, help=tip)


def _age(sample: StatsSample) -> str:
    return f"as of {fmt_ms(max(0, time.time() * 1000 - sample.at_ms))} ago"


def pipeline(sample: StatsSample, feed: Feed) -> None:
    ingest: dict[str, Any] | None = (sample.stats or {}).get("ingest")
    st.markdown(f"#### Pipeline <span class='cs-muted' style='font-size:.8rem'>{_age(sample)}</span>",
                unsafe_allow_html=True)  # fmt: skip
    if not ingest:
        st.info("No ingest process reports to this relay's Redis (is `python -m backend ingest` running?).")
        return
    embedded_server(ingest.get("redis_server"))
    late = ingest.get("late_trades") or {}
    rejected = ingest.get("rejected_trades") or {}
    cols = st.columns(6)
    clock = "live" if ingest.get("live") else ("event time" if ingest.get("feed") else "replay")
    _metric(cols[0], "Source", f"{ingest.get('source', '—')}", clock)
    _metric(cols[1], "Trades/s", fmt_rate(ingest.get("trades_per_s")))
    _metric(cols[2], "Candle updates/s", fmt_rate(ingest.get("updates_per_s")))
    _metric(cols[3], "Trades in", fmt_compact(ingest.get("trades_in")))
    _metric(cols[4], "Late trades", fmt_int(sum(late.values())))
    _metric(cols[5], "Rejected trades", fmt_int(sum(rejected.values())))
    cols = st.columns(6)
    _metric(
        cols[0], "Redis", "OK" if ingest.get("redis_ok") else "DOWN", f"{fmt_int(ingest.get('redis_errors'))} errors"
    )
    _metric(cols[1], "Database", "OK" if ingest.get("db_ok") else "DOWN", ingest.get("db_error") or None)
    _metric(cols[2], "DB pending", fmt_int(ingest.get("db_pending")))
    _metric(cols[3], "DB written", fmt_compact(ingest.get("db_written")))
    _metric(cols[4], "DB dropped", fmt_int(ingest.get("db_dropped")))
    receivers = ingest.get("publish_receivers")
    plural = "" if receivers == 1 else "s"
    heard = "no PUBLISH yet" if receivers is None else f"to {fmt_int(receivers)} receiver{plural}"
    _metric(
        cols[5],
        "Candles published",
        fmt_compact(ingest.get("candles_published")),
        heard,
        "PUBLISH receivers: how many subscribers (relays) Redis delivered the last PUBLISH to",
    )
    exchange_feed(ingest.get("feed"))
    rates = _rates(feed)
    if rates is not None:
        live_plot(rates.value, key="rates")
    left, right = st.columns(2)
    with left:
        st.markdown("**Late trades by symbol**")
        _table({"symbol": list(late), "late trades": list(late.values())}, "No late trades.")
    with right:
        st.markdown("**Rejected trades by reason**")
        _table({"reason": list(rejected), "trades": list(rejected.values())}, "No rejected trades.")


def exchange_feed(feed: dict[str, Any] | None) -> None:
    """A live exchange's connection: state, reconnects, lag, last trade, backfill (``exchange:<id>`` only)."""
    if not isinstance(feed, dict):
        return
    cols = st.columns(6)
    _metric(cols[0], "Exchange feed", str(feed.get("state", "—")), feed.get("error") or str(feed.get("exchange", "")))
    _metric(cols[1], "Reconnects", fmt_int(feed.get("reconnects")), f"{fmt_int(feed.get('disconnects'))} disconnects")
    _metric(cols[2], "Lag", fmt_ms(feed.get("lag_ms")), "trade → received")
    last = feed.get("last_trade_ms")
    _metric(cols[3], "Last trade", fmt_ms(max(0, time.time() * 1000 - last)) + " ago" if last else "—")
    _metric(cols[4], "Backfilled candles", fmt_compact(feed.get("backfill_candles")))
    _metric(
        cols[5],
        "Backfilled trades",
        fmt_compact(feed.get("backfill_trades")),
        f"{fmt_int(feed.get('backfill_requests'))} REST requests",
    )


def embedded_server(label: str | None) -> None:
    """Which embedded Redis the stack runs on, when it runs on one (``python -m backend run`` with no Redis URL)."""
    if not label:
        return
    if label == FALLBACK_LABEL:
        st.caption(
            f"Redis: {label}. It keeps everything in this machine's memory; for more, set `CANDLES_REDIS_URL` "
            "to a Redis, Valkey or Memurai server."
        )
    else:
        st.caption(f"Redis: {label}.")


def _rates(feed: Feed) -> Any:
    history = [s for s in list(feed.stats_history) if s.stats and s.stats.get("ingest")]
    history = [s for s in history if s.at_ms >= time.time() * 1000 - HISTORY_S * 1000]
    if len(history) < 2:
        return None

    def build() -> tuple[bytes, dict[str, Any]]:
        t = [s.at_ms for s in history]
        series = {
            "trades/s": [float((s.stats or {})["ingest"].get("trades_per_s") or 0) for s in history],
            "candle updates/s": [float((s.stats or {})["ingest"].get("updates_per_s") or 0) for s in history],
        }
        return encode_plot(rates_figure_spec(t, series), {"displayModeBar": False}), {}

    return _rates_cache().get("rates", history[-1].at_ms, build)


def relay(sample: StatsSample) -> None:
    ws = sample.ws_stats or (sample.stats or {}).get("relay") or {}
    st.markdown("#### Relay")
    if not ws:
        st.info("The relay did not report its WebSocket figures.")
        return
    redis = ws.get("redis") or {}
    cols = st.columns(6)
    _metric(cols[0], "Connections", fmt_int(ws.get("connections")))
    _metric(cols[1], "Streams subscribed", fmt_int(len(ws.get("subscriptions") or {})))
    _metric(cols[2], "Messages out", fmt_compact(ws.get("messages_out")), f"{fmt_compact(ws.get('messages_in'))} in")
    _metric(cols[3], "Coalesced", fmt_compact(ws.get("coalesced")))
    _metric(cols[4], "Dropped", fmt_int(ws.get("dropped")), f"{fmt_int(ws.get('slow_disconnects'))} slow disconnects")
    _metric(
        cols[5],
        "Redis (relay)",
        "OK" if redis.get("connected") else "DOWN",
        f"{fmt_int(redis.get('reconnects'))} reconnects",
    )
    subs = ws.get("subscriptions") or {}
    if subs:
        top = sorted(subs.items(), key=lambda kv: (-kv[1], kv[0]))[:24]
        with st.expander(f"Subscriptions per stream ({len(subs)})"):
            _table({"stream": [k for k, _ in top], "subscribers": [v for _, v in top]}, "")


def server(rt: Runtime) -> None:
    st.markdown("#### This Streamlit server")
    s = rt.feed.status()
    cols = st.columns(6)
    since = s.connected_since or s.down_since
    _metric(cols[0], "Listener", s.state.upper(), f"for {fmt_ms((time.time() - since) * 1000)}" if since else None)
    _metric(cols[1], "Sessions", fmt_int(s.sessions))
    _metric(cols[2], "Streams subscribed", fmt_int(s.streams))
    _metric(cols[3], "Candles received", fmt_compact(s.candles), f"{fmt_compact(s.frames)} frames")
    _metric(cols[4], "Reconnects", fmt_int(s.reconnects), f"{fmt_int(s.gaps)} seq gaps")
    _metric(cols[5], "Feed latency p99", fmt_ms(s.latency_ms.get("p99")), f"p50 {fmt_ms(s.latency_ms.get('p50'))}")
    rows = [q.info() for q in rt.feed.sessions()]
    st.markdown("**Session queues**")
    _table(
        {k: [r[k] for r in rows] for k in (rows[0] if rows else {})},
        "No sessions.",
    )
    st.caption(
        f"Renders built: {rt.charts.cache.builds:,} charts, {rt.tiles.cache.builds:,} tiles "
        f"(shared by all sessions; {rt.charts.cache.hits + rt.tiles.cache.hits:,} reuses). "
        f"Refresh every {rt.settings.refresh_s:g} s."
    )


def _table(columns: dict[str, list[Any]], empty: str) -> None:
    if not columns or not next(iter(columns.values()), []):
        if empty:
            st.caption(empty)
        return
    st.dataframe(pd.DataFrame(columns), hide_index=True, width="stretch")


main()
