"""The session queue (bounded, coalescing, released), the stream book and the listener's frame handling."""

from __future__ import annotations

import json
import threading

import msgspec

from backend.backoff import Backoff
from backend.models import AlertEvent, encode_batch, encode_message
from services.charts.tiles import tile_data
from services.feed.book import StreamBook
from services.feed.feed import Feed
from services.feed.queue import SessionQueue
from services.ui.render_cache import RenderCache
from tests.dashboard_fixtures import T0, candle

BTC = ("BTCUSDT", "1m")
ETH = ("ETHUSDT", "1m")


def update(c, **changes):
    return msgspec.structs.replace(c, **changes)


# ---------------------------------------------------------------- SessionQueue


def test_queue_coalesces_by_symbol_interval_and_open_time() -> None:
    q = SessionQueue("s")
    forming = candle(0, closed=False, seq=1)
    q.put(forming)
    q.put(update(forming, close=105.0, seq=2))
    q.put(update(forming, close=106.0, seq=3, closed=True))
    q.put(candle(1, closed=False, seq=4))
    q.put(candle(0, symbol="ETHUSDT", seq=1))
    assert len(q) == 3
    out = q.drain()
    assert [(c.symbol, c.open_time, c.seq) for c in out.candles] == [
        ("BTCUSDT", T0, 3),
        ("BTCUSDT", T0 + 60_000, 4),
        ("ETHUSDT", T0, 1),
    ]
    assert out.candles[0].closed and out.candles[0].close == 106.0
    assert q.coalesced == 2 and len(q) == 0
    assert q.drain().candles == []


def test_queue_keeps_the_newer_seq_when_updates_arrive_out_of_order() -> None:
    q = SessionQueue("s")
    c = candle(0, seq=7)
    q.put(c)
    q.put(update(c, seq=6, close=1.0))
    assert q.drain().candles[0].seq == 7


def test_queue_is_bounded_and_marks_what_it_dropped_for_a_snapshot() -> None:
    q = SessionQueue("s", maxlen=3)
    for i in range(5):
        q.put(candle(i, symbol="ETHUSDT" if i == 0 else "BTCUSDT"))
    assert len(q) == 3
    out = q.drain()
    assert [c.open_time for c in out.candles] == [T0 + 2 * 60_000, T0 + 3 * 60_000, T0 + 4 * 60_000]
    assert out.resync == {ETH, BTC} and out.dropped == 2
    assert q.dropped == 2


def test_resync_marks_and_reconnect() -> None:
    q = SessionQueue("s")
    q.streams = frozenset({BTC, ETH})
    q.mark_resync([BTC])
    assert q.drain().resync == {BTC}
    q.mark_resync(reconnected=True)
    out = q.drain()
    assert out.reconnected and out.resync == {BTC, ETH}
    assert not q.drain().reconnected


def test_release_is_idempotent_and_stops_the_queue() -> None:
    released = []
    q = SessionQueue("s")
    q.on_close(released.append)
    q.put(candle(0))
    q.close()
    q.close()
    assert released == [q] and q.closed
    q.put(candle(1))
    assert len(q) == 0


def test_queue_is_thread_safe() -> None:
    q = SessionQueue("s", maxlen=10_000)
    seen: list[int] = []

    def produce(k: int) -> None:
        for i in range(500):
            q.put(candle(i, symbol=f"S{k}USDT"))

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        seen.append(len(q.drain().candles))
    seen.append(len(q.drain().candles))
    assert sum(seen) == 2000


# ---------------------------------------------------------------- StreamBook


def test_book_applies_updates_in_place_and_appends_new_candles() -> None:
    b = StreamBook(BTC, limit=3)
    assert b.apply(candle(0, closed=False, seq=1))
    assert b.apply(update(candle(0), seq=2))
    assert not b.apply(update(candle(0), seq=1, close=0.0)), "an older update never wins"
    for i in range(1, 70):
        b.apply(candle(i, seq=i + 2))
    assert len(b.rows) <= 3 + 64 and b.rows[-1].open_time == T0 + 69 * 60_000
    assert [r.open_time for r in b.rows] == sorted(r.open_time for r in b.rows)


def test_book_snapshot_merges_what_arrived_while_it_was_fetched() -> None:
    b = StreamBook(BTC)
    b.begin_snapshot()
    live = [update(candle(2, closed=True), seq=30), candle(3, closed=False, seq=31)]
    for c in live:
        b.apply(c)
    snapshot = [candle(0, seq=10), candle(1, seq=20), candle(2, closed=False, seq=29)]
    b.load_snapshot(snapshot)
    assert b.loaded and b.synced
    assert [(r.open_time - T0) // 60_000 for r in b.rows] == [0, 1, 2, 3]
    assert b.rows[2].seq == 30 and b.rows[2].closed
    assert b.tail(2) == b.rows[-2:]
    assert b.tail(since_open_time=T0 + 60_000) == b.rows[1:]


def test_a_patch_snapshot_fills_a_hole_and_keeps_older_rows() -> None:
    b = StreamBook(BTC)
    b.load_snapshot([candle(i, seq=i + 1) for i in range(10)])
    b.apply(candle(11, closed=False, seq=14))  # candle 10 went missing
    b.begin_snapshot()
    b.merge_snapshot([candle(9, seq=10), candle(10, seq=12), update(candle(11), closed=False, seq=13)])
    assert [(r.open_time - T0) // 60_000 for r in b.rows] == list(range(12))
    assert b.rows[-1].seq == 14, "the newer live update stays"
    assert b.synced


# ---------------------------------------------------------------- Feed frame handling (no network)


def feed_with(*streams):
    feed = Feed("http://127.0.0.1:9")
    q = feed.register("session-1")
    feed.want(q, set(streams), page="test")
    for s in streams:
        feed.book(s).load_snapshot([])
    return feed, q


def test_frames_reach_the_books_and_the_queues_of_sessions_that_want_them() -> None:
    feed, q = feed_with(BTC)
    other = feed.register("session-2")
    feed.want(other, {ETH})
    feed.book(ETH).load_snapshot([])
    feed.listener.handle_frame(encode_batch([candle(0, seq=1), candle(0, symbol="ETHUSDT", seq=1)]))
    feed.listener.handle_frame(encode_message(candle(1, seq=2)))  # a single object is a frame too
    assert [c.seq for c in q.drain().candles] == [1, 2]
    assert [c.symbol for c in other.drain().candles] == ["ETHUSDT"]
    assert len(feed.book(BTC).rows) == 2


def test_a_seq_gap_marks_the_stream_for_a_fresh_snapshot() -> None:
    feed, q = feed_with(BTC)
    feed.listener.handle_frame(encode_batch([candle(0, seq=1), candle(1, seq=2)]))
    q.drain()
    feed.listener.handle_frame(encode_batch([candle(3, seq=5)]))
    out = q.drain()
    assert out.resync == {BTC}
    assert feed.listener.gaps == 1 and not feed.book(BTC).synced
    assert feed.state.streams.snapshot_due[BTC] == 2 + 5, "a gap fetches what the hole can span, not the whole book"
    feed.listener.handle_frame(encode_batch([candle(3, seq=6)]))
    assert q.drain().resync == frozenset(), "one gap, one resync"


def test_duplicates_are_ignored_and_a_restart_is_a_gap() -> None:
    feed, q = feed_with(BTC)
    feed.listener.handle_frame(encode_batch([candle(0, seq=1), candle(1, seq=2)]))
    feed.listener.handle_frame(encode_batch([candle(1, seq=2)]))
    assert len(q.drain().candles) == 2 and feed.listener.gaps == 0
    feed.listener.handle_frame(encode_batch([candle(2, seq=1)]))  # newer candle, seq back to 1: ingest restarted
    assert q.drain().resync == {BTC}


def test_control_messages() -> None:
    feed, q = feed_with(BTC)
    feed.listener.handle_frame(json.dumps({"type": "subscribed", "streams": ["BTCUSDT:1m"]}))
    feed.listener.handle_frame(json.dumps({"type": "error", "code": "bad", "message": "nope"}))
    assert q.drain().candles == []
    feed.listener.handle_frame(json.dumps({"type": "resync", "reason": "redis_reconnected"}))
    assert q.drain().resync == {BTC} and feed.listener.resyncs == 1
    assert [m["type"] for m in feed.listener.control] == ["subscribed", "error", "resync"]


def test_streams_follow_the_sessions_and_released_sessions_leave() -> None:
    feed, q = feed_with(BTC, ETH)
    assert feed.book(BTC) is not None
    feed.want(q, {ETH})
    assert feed.book(BTC) is None, "nobody wants BTC any more"
    q.close()
    assert feed.sessions() == [] and feed.book(ETH) is None
    q.close()
    feed.release(q)  # idempotent from either side


def test_backoff_grows_with_jitter_and_resets() -> None:
    b = Backoff(0.5, 4.0)
    delays = [b.next_delay() for _ in range(6)]
    assert 0.25 <= delays[0] <= 0.5 and all(2.0 <= d <= 4.0 for d in delays[4:])
    b.reset()
    assert b.next_delay() <= 0.5


# ---------------------------------------------------------------- shared renders


def test_render_cache_builds_once_per_version_and_throttles() -> None:
    cache = RenderCache(min_age_s=60)
    calls = []

    def build():
        calls.append(1)
        return len(calls), {}

    assert cache.get("k", 1, build).value == 1
    assert cache.get("k", 1, build).value == 1
    assert cache.get("k", 2, build).value == 1, "too young to rebuild"
    cache.min_age_s = 0
    assert cache.get("k", 2, build).value == 2
    assert cache.get("k", 3, build, synced=False).value == 2, "keeps the complete picture while resyncing"


def test_render_cache_shares_one_build_between_threads() -> None:
    cache = RenderCache(min_age_s=0)
    calls = []
    gate = threading.Event()

    def build():
        calls.append(1)
        gate.wait(1)
        return "fig", {}

    threads = [threading.Thread(target=cache.get, args=("k", 1, build)) for _ in range(8)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert len(calls) == 1


def test_tile_data_change_since_the_first_candle_and_sparkline() -> None:
    hourly = [candle(i, interval="1h", open_=100.0 + i, close=101.0 + i) for i in range(3)]
    t1 = hourly[-1].open_time
    secs = [candle(i, interval="1s", open_=102.0, close=103.0 + (i % 2), t0=t1) for i in range(20)]
    hourly[-1] = update(hourly[-1], event_time=secs[-1].event_time - 1)  # the 1s candle has the newest trade
    now = t1 + 20_000
    t = tile_data("BTCUSDT", {"1h": hourly, "1s": secs, "1m": []}, now=now)
    assert t.price == secs[-1].close
    assert t.change_pct == (secs[-1].close / 100.0 - 1) * 100
    assert t.change_label.startswith("since ")
    assert t.quote_volume == sum(c.quote_volume for c in hourly)
    assert len(t.spark) == 20 and t.spark_label == "last 20s"
    assert t.trend == "up"  # 100 → 104 since the first hourly open: the pill, the price and the line are green


def test_alerts_reach_every_session_and_the_recent_list() -> None:
    feed, q = feed_with(BTC)
    other = feed.register("other")
    alert = AlertEvent(rule_id=1, symbol="SOLUSDT", interval="5m", kind="price_above", threshold=240.0,
                       value=241.0, message="SOLUSDT is above 240", fired_at=1)  # fmt: skip
    feed.listener.handle_frame(encode_batch([alert, candle(0, seq=1)]))
    assert [a.message for a in q.drain().alerts] == ["SOLUSDT is above 240"]
    assert [a.message for a in other.drain().alerts] == ["SOLUSDT is above 240"]
    assert q.drain().alerts == []
    assert list(feed.listener.alerts) == [alert]
    feed.listener.handle_frame(encode_batch([alert] * 25))
    assert len(q.drain().alerts) == 20  # bounded between two reruns


def test_the_status_line_names_the_source_and_a_feeds_state() -> None:
    from services.ui.status import source_status

    assert source_status(None) == []
    assert source_status({"source": "exchange:binance", "feed": {"state": "connected", "reconnects": 2}}) == [
        '<span class="cs-muted" data-testid="source-status">source exchange:binance <span class="cs-dot live">'
        '</span><span title="2 reconnects">connected</span></span>'
    ]
    (down,) = source_status({"source": "exchange:kraken", "feed": {"state": "disconnected", "error": "no message"}})
    assert "cs-dot down" in down and 'title="no message">disconnected<' in down
    (sim,) = source_status({"source": "simulator"})
    assert sim.endswith(">source simulator</span>") and "make run SOURCE=exchange:binance" in sim


def test_one_missing_seq_is_a_gap_and_the_next_seq_is_not() -> None:
    feed, q = feed_with(BTC)
    feed.listener.handle_frame(encode_batch([candle(0, seq=1), candle(0, seq=2), candle(1, seq=3)]))
    assert q.drain().resync == frozenset() and feed.listener.gaps == 0  # 1, 2, 3: consecutive
    feed.listener.handle_frame(encode_batch([candle(1, seq=5)]))  # exactly one (4) went missing
    assert q.drain().resync == {BTC}
    assert feed.listener.gaps == 1
    feed.listener.handle_frame(encode_batch([candle(1, seq=6), candle(2, seq=7)]))
    assert q.drain().resync == frozenset() and feed.listener.gaps == 1


def test_a_duplicate_in_a_frame_does_not_hide_what_follows_it_and_gaps_add_up() -> None:
    feed, q = feed_with(BTC)
    feed.listener.handle_frame(encode_batch([candle(0, seq=1), candle(0, seq=2)]))
    feed.listener.handle_frame(encode_batch([candle(0, seq=2), candle(1, seq=3)]))  # a duplicate, then the next one
    assert [c.seq for c in q.drain().candles] == [2, 3]  # seq 1 and 2 are one candle: the queue keeps the newer
    feed.listener.handle_frame(encode_batch([candle(2, seq=5)]))
    feed.listener.handle_frame(encode_batch([candle(3, seq=8)]))
    assert feed.listener.gaps == 2
